"""The dashboard of serve: its own key, a signed session cookie, a CSRF token on every state-changing call."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.server.conftest import EVENT_KEY_1, SIGNING_KEY, define
from tests.server.test_http import JSON, started

DASHBOARD_KEY = "dashboard-key-for-people"
Console = tuple[tarry.Tarry, httpx.AsyncClient]


def serve_app(app: tarry.Tarry, *, dashboard_key: str | None = None) -> Starlette:
    return create_app(app, mode="serve", event_keys=[EVENT_KEY_1], api_key=SIGNING_KEY, manage=False,
                      dashboard_key=dashboard_key)  # fmt: skip


@pytest.fixture
async def console(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[Console]:
    """serve with a dashboard key, over plain http."""
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = serve_app(app, dashboard_key=DASHBOARD_KEY)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def sign_in(client: httpx.AsyncClient) -> tuple[str, str]:
    """Sign in with the dashboard key: (the cookie's value, the page's CSRF token)."""
    response = await client.post("/dashboard/sign-in", data={"key": DASHBOARD_KEY})
    assert response.status_code == 303, response.text
    [cookie] = response.headers.get_list("set-cookie")
    value = cookie.split(";")[0].removeprefix("tarry_session=")
    page = await client.get("/", headers={"cookie": f"tarry_session={value}"})
    return value, csrf_of(page.text)


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="tarry-csrf" content="([^"]+)">', page)
    assert match, "the page carries its CSRF token"
    return match.group(1)


def session(cookie: str, token: str | None = None) -> dict[str, str]:
    headers = {"cookie": f"tarry_session={cookie}"}
    return headers if token is None else {**headers, "x-tarry-csrf": token}


# -- turning the dashboard on ---------------------------------------------------------


async def test_without_a_dashboard_key_serve_says_the_dashboard_is_off_and_how_to_enable_it(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    app = make_app()
    async with app:
        transport = httpx.ASGITransport(app=serve_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/")
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
            assert "dashboard is off" in page.text and "set TARRY_DASHBOARD_KEY (at least 16 characters)" in page.text
            assert "tarry-csrf" not in page.text and 'id="signin"' not in page.text
            assert (await client.get("/static/app.js")).status_code == 200
            refused = await client.post("/dashboard/sign-in", data={"key": SIGNING_KEY})
            assert refused.status_code == 404 and "set-cookie" not in refused.headers
            bearer = await client.get("/api/v1/runs", headers={"authorization": f"Bearer {SIGNING_KEY}"})
            assert bearer.status_code == 200, "servers keep the API"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("d" * 15, r"TARRY_DASHBOARD_KEY has 15 characters; it must have at least 16"),
        (SIGNING_KEY, r"TARRY_DASHBOARD_KEY must differ from TARRY_SIGNING_KEY"),
        (EVENT_KEY_1, r"TARRY_DASHBOARD_KEY must differ from TARRY_EVENT_KEYS"),
    ],
)
def test_a_short_dashboard_key_or_one_shared_with_another_key_is_refused(
    app: tarry.Tarry, key: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        serve_app(app, dashboard_key=key)
    assert key not in str(refused.value), "the key itself is not shown"
    serve_app(app, dashboard_key="d" * 16)  # 16 is enough


def test_dev_takes_no_dashboard_key(app: tarry.Tarry) -> None:
    with pytest.raises(ValueError, match="dashboard_key is for mode='serve'"):
        create_app(app, dashboard_key=DASHBOARD_KEY)


# -- signing in --------------------------------------------------------------------------


async def test_without_a_session_the_page_is_the_sign_in_form(console: Console) -> None:
    _, client = console
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form id="signin" class="stack" method="post" action="/dashboard/sign-in">' in page.text
    assert re.search(r'<input name="key" type="password"[^>]*>', page.text)
    assert '<button type="submit">' in page.text and "signin-error" not in page.text
    assert "tarry-csrf" not in page.text and "/static/app.js" not in page.text, "no dashboard before signing in"
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]  # fmt: skip
    assert "http" not in page.text.split("<body")[1], "no external assets"


@pytest.mark.parametrize("wrong", ["not-the-dashboard-key", "", DASHBOARD_KEY[:-1], DASHBOARD_KEY + "x"])
async def test_a_wrong_key_is_401_with_the_sign_in_page_saying_so(console: Console, wrong: str) -> None:
    _, client = console
    for response in (await client.post("/dashboard/sign-in", data={"key": wrong}),
                     await client.post("/dashboard/sign-in", json={"key": wrong})):  # fmt: skip
        assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
        assert (
            '<p id="signin-error" class="notice error" role="alert">That dashboard key is wrong.</p>' in response.text
        )
        assert 'id="signin"' in response.text and "set-cookie" not in response.headers
    assert 'id="signin"' in (await client.get("/")).text, "still signed out"


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (b"", {}, '"key": required'),
        (b"password=x", {"content-type": "application/x-www-form-urlencoded"}, '"key": required'),
        (b'{"key": 7}', JSON, '"key": required, the dashboard key (a string)'),
        (b"[1]", JSON, "JSON object"),
        (b"{nope", JSON, "malformed JSON"),
        (b"key=\xff", {"content-type": "application/x-www-form-urlencoded"}, "not UTF-8"),
    ],
)
async def test_a_sign_in_without_a_key_field_is_400_naming_it(
    console: Console, body: bytes, headers: dict[str, str], problem: str
) -> None:
    _, client = console
    response = await client.post("/dashboard/sign-in", content=body, headers=headers)
    assert response.status_code == 400 and problem in response.json()["error"]
    assert "set-cookie" not in response.headers


async def test_the_right_key_sets_an_http_only_strict_cookie_without_secure_over_http(console: Console) -> None:
    _, client = console
    for response in (await client.post("/dashboard/sign-in", data={"key": DASHBOARD_KEY}),
                     await client.post("/dashboard/sign-in", json={"key": DASHBOARD_KEY})):  # fmt: skip
        assert response.status_code == 303 and response.headers["location"] == "/"
        [cookie] = response.headers.get_list("set-cookie")
        name_value, *attributes = cookie.split("; ")
        assert name_value.startswith("tarry_session=") and len(name_value) > 40
        assert attributes == ["HttpOnly", "SameSite=Strict", "Path=/"], "no Secure over http, no Domain, no Max-Age"
    first, _ = await sign_in(client)
    second, _ = await sign_in(client)
    assert first != second, "each sign-in is a new session"


async def test_over_https_the_cookie_is_secure(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    async with app:
        transport = httpx.ASGITransport(app=serve_app(app, dashboard_key=DASHBOARD_KEY))
        async with httpx.AsyncClient(transport=transport, base_url="https://console.example") as client:
            response = await client.post("/dashboard/sign-in", data={"key": DASHBOARD_KEY},
                                         headers={"origin": "https://console.example"})  # fmt: skip
            assert response.status_code == 303
            [cookie] = response.headers.get_list("set-cookie")
            assert cookie.split("; ")[1:] == ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"]
            assert (await client.get("/api/v1/runs")).status_code == 200, "the client's jar sends it back over https"
            signed_out = await client.post("/dashboard/sign-out", data={"csrf": csrf_of((await client.get("/")).text)})
            assert signed_out.status_code == 303 and signed_out.headers["set-cookie"].endswith("; Max-Age=0; Secure")


async def test_the_session_opens_the_page_and_reads_the_api(console: Console) -> None:
    app, client = console
    placed = await client.post(f"/e/{EVENT_KEY_1}", json={"name": "order/placed", "data": {"id": "1"}})
    run = await started(app, placed.json()["ids"][0])
    cookie, token = await sign_in(client)
    page = await client.get("/", headers=session(cookie))
    assert page.status_code == 200 and "/static/app.js" in page.text and 'data-mode="serve"' in page.text
    assert "{{" not in page.text, "every placeholder is filled"
    assert f'<input type="hidden" name="csrf" value="{token}">' in page.text, "the sign-out form carries the token"
    assert page.headers["cache-control"] == "no-store"
    runs = await client.get("/api/v1/runs", headers=session(cookie))
    assert runs.status_code == 200 and [r["id"] for r in runs.json()["runs"]] == [run.id]
    one = await client.get(f"/api/v1/runs/{run.id}", headers=session(cookie))
    assert one.status_code == 200 and one.json()["status"] == "waiting"
    for path in ("/api/v1/events", "/api/v1/waits", "/api/v1/functions", "/api/v1/buffers"):
        assert (await client.get(path, headers=session(cookie))).status_code == 200, path


async def test_a_page_with_its_token_changes_things_and_without_it_changes_nothing(console: Console) -> None:
    app, client = console
    placed = await client.post(f"/e/{EVENT_KEY_1}", json={"name": "order/placed", "data": {"id": "2"}})
    run = await started(app, placed.json()["ids"][0])
    cookie, token = await sign_in(client)
    other_cookie, other_token = await sign_in(client)
    assert token != other_token, "the token is bound to its session"
    same_origin = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    for headers, said in ((session(cookie), "is missing"), (session(cookie, "wrong"), "is wrong"),
                          (session(cookie, other_token), "is wrong"), (session(cookie, ""), "is wrong"),
                          (session(cookie, SIGNING_KEY), "is wrong"), (session(cookie, DASHBOARD_KEY), "is wrong")):  # fmt: skip
        for path, body in ((f"/api/v1/runs/{run.id}/cancel", None), ("/api/v1/events", {"name": "a/b"}),
                           ("/api/v1/runs/cancel", {"function_id": "order"}), ("/api/v1/notify/order-2", {})):  # fmt: skip
            refused = await client.post(path, json=body, headers={**headers, **same_origin})
            assert refused.status_code == 403, (path, headers)
            assert f"the CSRF token {said}" in refused.json()["error"] and "X-Tarry-CSRF" in refused.json()["error"]
    assert (await app.get_run(run.id)).status == "waiting"
    assert [e.event.name for e in await app.engine.store.list_events(None, 10)] == ["order/placed"]
    sent = await client.post("/api/v1/events", json={"name": "from/dashboard"}, headers={**session(cookie, token),
                                                                                           **same_origin})  # fmt: skip
    assert sent.status_code == 200
    cancelled = await client.post(f"/api/v1/runs/{run.id}/cancel", headers={**session(other_cookie, other_token),
                                                                               **same_origin})  # fmt: skip
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": True}
    assert (await app.get_run(run.id)).status == "cancelled"


async def test_servers_with_the_bearer_key_need_no_cookie_nor_token(console: Console) -> None:
    _, client = console
    bearer = {"authorization": f"Bearer {SIGNING_KEY}"}
    assert (await client.post("/api/v1/events", json={"name": "from/a-server"}, headers=bearer)).status_code == 200
    assert (await client.post("/api/v1/events", json={"name": "x"}, headers={**bearer, "x-tarry-csrf": "z"})
            ).status_code == 200  # fmt: skip
    refused = await client.get("/api/v1/runs")
    assert refused.status_code == 401
    assert "Bearer <TARRY_SIGNING_KEY>" in refused.json()["error"] and "sign in at /" in refused.json()["error"]


async def test_the_signing_key_is_not_a_dashboard_key_and_the_dashboard_key_is_not_a_bearer_key(
    console: Console,
) -> None:
    _, client = console
    refused = await client.post("/dashboard/sign-in", data={"key": SIGNING_KEY})
    assert refused.status_code == 401 and "That dashboard key is wrong." in refused.text
    assert (await client.post("/dashboard/sign-in", data={"key": EVENT_KEY_1})).status_code == 401
    for headers in ({"authorization": f"Bearer {DASHBOARD_KEY}"}, {"authorization": DASHBOARD_KEY},
                    {"cookie": f"tarry_session={DASHBOARD_KEY}"}):  # fmt: skip
        assert (await client.get("/api/v1/runs", headers=headers)).status_code == 401, headers
        assert (await client.post("/api/v1/events", json={"name": "x"}, headers=headers)).status_code == 401
    assert (await client.get("/metrics", headers={"authorization": f"Bearer {DASHBOARD_KEY}"})).status_code == 401
    cookie, _ = await sign_in(client)
    assert (await client.get("/metrics", headers=session(cookie))).status_code == 401, "the session opens /api only"


async def test_a_tampered_cookie_is_refused(console: Console) -> None:
    _, client = console
    cookie, _ = await sign_in(client)
    session_id, expires, signature = cookie.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    other = session_id[:-1] + ("x" if session_id[-1] != "x" else "y")  # never the id itself
    for forged in (f"{session_id}.{expires}.{flipped}",  # another signature
                   f"{session_id}.{int(expires) + 3_600_000}.{signature}",  # a later expiry
                   f"{other}.{expires}.{signature}",  # another session
                   f"{session_id}.{expires}", f"{session_id}.{expires}.", "..", "garbage", "",
                   f"{session_id}.-1.{signature}", f"{cookie}.{signature}", "x" * 5000):  # fmt: skip
        assert (await client.get("/api/v1/runs", headers=session(forged))).status_code == 401, forged
        page = await client.get("/", headers=session(forged))
        assert page.status_code == 200 and 'id="signin"' in page.text and "tarry-csrf" not in page.text
    assert (await client.get("/api/v1/runs", headers=session(cookie))).status_code == 200


async def test_a_session_expires_after_12_hours(
    console: Console, clock_of: Callable[[tarry.Tarry], VirtualClock]
) -> None:
    app, client = console
    cookie, token = await sign_in(client)
    clock = clock_of(app)
    await clock.advance("11h59m")
    assert (await client.get("/api/v1/runs", headers=session(cookie))).status_code == 200
    await clock.advance("1m")
    assert (await client.get("/api/v1/runs", headers=session(cookie))).status_code == 401
    posted = await client.post("/api/v1/events", json={"name": "late"}, headers=session(cookie, token))
    assert posted.status_code == 401
    assert 'id="signin"' in (await client.get("/", headers=session(cookie))).text
    fresh, _ = await sign_in(client)
    assert (await client.get("/api/v1/runs", headers=session(fresh))).status_code == 200


async def test_changing_the_dashboard_key_signs_everyone_out(console: Console) -> None:
    app, client = console
    cookie, _ = await sign_in(client)
    restarted = serve_app(app, dashboard_key="another-dashboard-key")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=restarted),
                                 base_url="http://testserver") as other:  # fmt: skip
        assert (await other.get("/api/v1/runs", headers=session(cookie))).status_code == 401
    again = serve_app(app, dashboard_key=DASHBOARD_KEY)  # the same key, another process: still signed in
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=again),
                                 base_url="http://testserver") as same:  # fmt: skip
        assert (await same.get("/api/v1/runs", headers=session(cookie))).status_code == 200


async def test_signing_out_clears_the_cookie(console: Console) -> None:
    _, client = console
    cookie, token = await sign_in(client)
    refused = await client.post("/dashboard/sign-out", headers=session(cookie))
    assert refused.status_code == 403 and "CSRF token" in refused.json()["error"]
    wrong = await client.post("/dashboard/sign-out", data={"csrf": "wrong"}, headers=session(cookie))
    assert wrong.status_code == 403
    for done in (await client.post("/dashboard/sign-out", data={"csrf": token}, headers=session(cookie)),
                 await client.post("/dashboard/sign-out", headers=session(cookie, token)),
                 await client.post("/dashboard/sign-out")):  # fmt: skip  # without a session: nothing to check
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert done.headers["set-cookie"] == "tarry_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    client.cookies.clear()
    assert 'id="signin"' in (await client.get("/")).text


# -- dev: open, but the page's token must be its own ---------------------------------------


async def test_dev_pages_carry_a_token_and_a_wrong_one_is_refused(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = create_app(app, manage=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver") as c:
            page = await c.get("/")
            token = csrf_of(page.text)
            assert page.status_code == 200 and len(token) >= 32 and 'data-mode="dev"' in page.text
            assert "sign-out" not in page.text and "{{" not in page.text
            assert csrf_of((await c.get("/")).text) == token, "one token per process"
            other = create_app(app, manage=False)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://testserver") as o:
                assert csrf_of((await o.get("/")).text) != token
            placed = await c.post("/e/k", json={"name": "order/placed", "data": {"id": "3"}})
            run = await started(app, placed.json()["ids"][0])
            for wrong in ("wrong", "", token[:-1]):
                for path in (f"/api/v1/runs/{run.id}/cancel", "/api/v1/events"):
                    refused = await c.post(path, json={"name": "a/b"}, headers={"x-tarry-csrf": wrong})
                    assert refused.status_code == 403 and "CSRF token" in refused.json()["error"], path
            assert (await app.get_run(run.id)).status == "waiting"
            assert len(await app.engine.store.list_events(None, 10)) == 1
            assert (await c.post("/api/v1/events", json={"name": "a/b"}, headers={"x-tarry-csrf": token})
                    ).status_code == 200  # fmt: skip
            assert (await c.post("/api/v1/events", json={"name": "a/b"})).status_code == 200, "servers send none"
            assert (await c.post("/dashboard/sign-in", data={"key": "x"})).status_code == 404


# -- cross-site forms -------------------------------------------------------------------------

CROSS_SITE = [
    {"origin": "http://evil.example"},
    {"sec-fetch-site": "cross-site"},
    {"origin": "http://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"},
]


@pytest.mark.parametrize("mode", ["dev", "serve"])
@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_form_post_to_any_state_changing_route_is_refused(
    make_app: Callable[..., tarry.Tarry], mode: str, headers: dict[str, str]
) -> None:
    """Every POST route of the app, found in its route list, so a route added later is covered too."""
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = serve_app(app, dashboard_key=DASHBOARD_KEY) if mode == "serve" else create_app(app, manage=False)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            key = EVENT_KEY_1 if mode == "serve" else "k"
            placed = await client.post(f"/e/{key}", json={"name": "order/placed", "data": {"id": "7"}})
            run = await started(app, placed.json()["ids"][0])
            credentials: dict[str, str] = {}
            if mode == "serve":  # a browser would not even send the SameSite=Strict cookie; the guard is first anyway
                cookie, token = await sign_in(client)
                credentials = session(cookie, token)
            values = {"event_key": key, "run_id": run.id, "key": "order-7", "event_id": placed.json()["ids"][0]}
            posts = [r.path for r in server.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
            assert {"/dashboard/sign-in", "/dashboard/sign-out", "/api/v1/events", "/e/{event_key}"} <= set(posts)
            form = {"name": "evil/event", "key": DASHBOARD_KEY, "function_id": "order", "csrf": credentials.get(
                "x-tarry-csrf", "")}  # fmt: skip
            for path in posts:
                if path.startswith("/resume/"):
                    continue  # its token is the credential: meant to be followed from mail and other sites
                url = re.sub(r"{(\w+)(:\w+)?}", lambda m: values.get(m.group(1), "x"), path)
                response = await client.post(url, data=form, headers={**headers, **credentials})
                assert response.status_code == 403, (url, response.text)
                assert "is refused" in response.json()["error"] and "set-cookie" not in response.headers, url
            assert [e.event.name for e in await app.engine.store.list_events(None, 10)] == ["order/placed"]
            assert (await app.get_run(run.id)).status == "waiting"
            if mode == "serve":
                assert (await client.get("/api/v1/runs", headers=credentials)).status_code == 200, "still signed in"


async def test_a_same_origin_form_post_without_the_header_changes_nothing(console: Console) -> None:
    """A form cannot set X-Tarry-CSRF: even from the server's own origin, it is refused (403 in serve)."""
    app, client = console
    placed = await client.post(f"/e/{EVENT_KEY_1}", json={"name": "order/placed", "data": {"id": "8"}})
    run = await started(app, placed.json()["ids"][0])
    cookie, token = await sign_in(client)
    same = {"origin": "http://testserver", "sec-fetch-site": "same-origin", **session(cookie)}
    response = await client.post(f"/api/v1/runs/{run.id}/cancel", data={"x-tarry-csrf": token}, headers=same)
    assert response.status_code == 403 and "CSRF token is missing" in response.json()["error"]
    assert (await app.get_run(run.id)).status == "waiting"
