"""Bad input to the run lists and lookups of the API: each store answers as the other does, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

import tarry
from tarry._server import create_app

Client = tuple[tarry.Tarry, httpx.AsyncClient]


@pytest.fixture
async def client(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[Client]:
    app = make_app(base_url="http://testserver")

    @app.function(trigger="r/done")
    async def done(ctx: tarry.Context) -> int:
        return 1

    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await app.send(tarry.Event("r/done"))
            await app.idle(timeout=10)
            yield app, http


NUL_REQUESTS = [
    ("/api/v1/runs", {"function": "a\x00b"}),
    ("/api/v1/runs", {"event_id": "a\x00b"}),
    ("/api/v1/events", {"name": "a\x00b"}),
    ("/api/v1/waits", {"run_id": "a\x00b"}),
    ("/api/v1/buffers", {"function_id": "a\x00b"}),
    ("/api/v1/runs/a%00b", {}),
    ("/api/v1/events/a%00b", {}),
    ("/api/v1/events/a%00b/runs", {}),
]


@pytest.mark.parametrize(("path", "params"), NUL_REQUESTS, ids=[f"{p}?{','.join(q)}" for p, q in NUL_REQUESTS])
async def test_a_nul_character_in_an_id_or_filter_is_no_server_error(client: Client, path: str,
                                                                     params: dict[str, str]) -> None:  # fmt: skip
    """No id or name the engine stores holds a NUL (events refuse it), so such a filter matches nothing, or
    is a 400 naming the field: on SQLite it is an empty list or a 404; PostgreSQL must answer the same."""
    _, http = client
    response = await http.get(path, params=params)
    assert response.status_code in (200, 400, 404), (response.status_code, response.text)
    if response.status_code == 200:
        body = response.json()
        assert all(value == [] for key, value in body.items() if isinstance(value, list)), body


async def test_the_library_lookups_with_a_nul_character_find_nothing(client: Client) -> None:
    """``get_run``, ``cancel_run``, ``runs_for_event`` and ``list_runs`` of an id holding a NUL: nothing found
    (as on SQLite) or a ``ValueError`` naming the field, not a store error."""
    app, _ = client
    assert await app.get_run("a\x00b") is None
    assert await app.cancel_run("a\x00b") is False
    assert await app.runs_for_event("a\x00b") == []
    with pytest.raises(ValueError, match="no such run"):  # §10: an unknown run is a ValueError
        await app.rerun("a\x00b")
    assert await app.cancel_runs(function_id="a\x00b") == 0
    assert await app.rerun_runs(function_id="a\x00b") == []
    for field in ("function_id", "event_id"):
        try:
            found = await app.list_runs(**{field: "a\x00b"})
        except ValueError as exc:
            assert field in str(exc) and not isinstance(exc, tarry.StoreError)
        else:
            assert found == []


NUL_POSTS = [
    ("/api/v1/runs/a%00b/rerun", b""),
    ("/api/v1/runs/a%00b/cancel", b""),
    ("/api/v1/runs/cancel", b'{"function_id": "a\\u0000b"}'),
    ("/api/v1/runs/rerun", b'{"function_id": "a\\u0000b"}'),
]


@pytest.mark.parametrize(("path", "body"), NUL_POSTS, ids=[p for p, _ in NUL_POSTS])
async def test_a_rerun_or_cancel_naming_a_nul_character_is_no_server_error(client: Client, path: str,
                                                                           body: bytes) -> None:  # fmt: skip
    """An unknown run is a 404; a bulk filter that can match nothing acts on nothing (or is a 400)."""
    _, http = client
    response = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 404), (response.status_code, response.text)
    if response.status_code == 200:
        assert response.json() in ({"cancelled": 0}, {"run_ids": []}, {"cancelled": False}), response.text
