"""The OpenAPI document checked against the app with schemathesis: no input makes it fail (no 5xx)."""

from __future__ import annotations

import warnings
from pathlib import Path

import hypothesis
import pytest
import schemathesis

with warnings.catch_warnings():  # starlette would rather its test client used httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import tarry
from tarry._server import create_app
from tests.server.conftest import define

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    folder: Path = tmp_path_factory.mktemp("openapi")
    app = tarry.Tarry("schema", database_url="sqlite:///" + str(folder / "schema.db"))
    define(app)
    with TestClient(create_app(app, worker=False)) as client:  # runs the lifespan: the app is started
        yield client


def test_no_generated_request_makes_the_server_fail(client: TestClient) -> None:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        if op.path == "/api/v1/stream":  # never ends while its client listens: tests/server/test_stream.py
            continue

        @hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck),
                             database=None)  # fmt: skip
        @hypothesis.given(case=op.as_strategy())
        def check(case: schemathesis.Case) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs.pop("url", None)
            response = client.request(kwargs.pop("method"), case.formatted_path, **kwargs)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {kwargs} -> {response.status_code}")

        check()
    assert failures == []
