"""``serve``'s keys: each at least 16 characters; ``/metrics`` behind a bearer key, open in ``dev``."""

from __future__ import annotations

import httpx
import pytest

import tarry
from tarry._server import create_app
from tests.server.conftest import EVENT_KEY_1, SIGNING_KEY
from tests.server.test_http import Served

LONG = "x" * 16


@pytest.mark.parametrize(
    ("event_keys", "api_key", "setting"),
    [
        ([LONG, "short"], LONG, "TARRY_EVENT_KEYS: key 2 has 5 characters"),
        (["y" * 15], LONG, "TARRY_EVENT_KEYS: key 1 has 15 characters"),
        ([LONG], "z" * 15, "TARRY_SIGNING_KEY has 15 characters"),
    ],
)
def test_serve_refuses_keys_shorter_than_16_characters(
    app: tarry.Tarry, event_keys: list[str], api_key: str, setting: str
) -> None:
    with pytest.raises(ValueError, match=f"{setting}.*at least 16") as refused:
        create_app(app, mode="serve", event_keys=event_keys, api_key=api_key)
    assert "short" not in str(refused.value) and "z" * 15 not in str(refused.value), "the key itself is not shown"
    create_app(app, mode="serve", event_keys=[LONG], api_key=LONG)  # 16 is enough


def test_a_short_metrics_key_is_refused(app: tarry.Tarry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARRY_METRICS_KEY", "m" * 15)
    with pytest.raises(ValueError, match=r"TARRY_METRICS_KEY has 15 characters.*at least 16"):
        create_app(app, mode="serve", event_keys=[LONG], api_key=LONG)


async def test_serve_guards_metrics_with_the_signing_key(secured: Served) -> None:
    _, client = secured
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"authorization": f"Bearer {EVENT_KEY_1}"})
    assert wrong.status_code == 401 and "TARRY_SIGNING_KEY" in wrong.json()["error"]
    ok = await client.get("/metrics", headers={"authorization": f"Bearer {SIGNING_KEY}"})
    assert ok.status_code == 200 and "tarry_runs" in ok.text


async def test_serve_guards_metrics_with_its_own_key_when_set(
    app: tarry.Tarry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARRY_METRICS_KEY", "metrics-key-for-prometheus")
    server = create_app(app, mode="serve", event_keys=[EVENT_KEY_1], api_key=SIGNING_KEY, manage=False)
    async with app, httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://t") as client:
        signing = await client.get("/metrics", headers={"authorization": f"Bearer {SIGNING_KEY}"})
        assert signing.status_code == 401 and "TARRY_METRICS_KEY" in signing.json()["error"]
        ok = await client.get("/metrics", headers={"authorization": "Bearer metrics-key-for-prometheus"})
        assert ok.status_code == 200
        api = await client.get("/api/v1/runs", headers={"authorization": "Bearer metrics-key-for-prometheus"})
        assert api.status_code == 401, "the metrics key opens only /metrics"


async def test_dev_metrics_stay_open(served: Served) -> None:
    _, client = served
    assert (await client.get("/metrics")).status_code == 200
