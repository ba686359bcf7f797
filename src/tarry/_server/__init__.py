"""The ASGI app of ``tarry dev`` and ``tarry serve``: a route list over one Tarry app.

``dev`` is open (it binds to 127.0.0.1); ``serve`` accepts only the event
keys it is given on ``/e/{key}`` and requires ``Authorization: Bearer
<signing key>`` on ``/api``. The dashboard's page holds no data: in
``serve`` its script asks for the key and sends it with every API call.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tarry._app import Tarry
from tarry._server import openapi, routes
from tarry._server.json import error

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ServerConfig:
    mode: str  # "dev" | "serve"
    event_keys: frozenset[str] | None  # None: any key (dev)
    api_key: str | None  # None: the API is open (dev)


def create_app(
    app: Tarry, *, mode: str = "dev", event_keys: list[str] | None = None, api_key: str | None = None,
    worker: bool = True, manage: bool = True, allowed_hosts: list[str] | None = None,
) -> Starlette:  # fmt: skip
    """The ASGI app. With ``manage``, it starts the Tarry app (and a worker) and closes it with the server.

    ``allowed_hosts`` limits the ``Host`` header (``tarry dev`` passes its loopback names, so a web
    page cannot reach the open dev API through DNS rebinding). In ``dev``, POSTs to ``/e`` and
    ``/api`` must be JSON: a cross-site form cannot send that without the browser asking first.
    """
    if mode not in ("dev", "serve"):
        raise ValueError(f"invalid mode {mode!r}: 'dev' or 'serve'")
    if mode == "serve":
        keys = [k.strip() for k in event_keys or [] if k.strip()]
        if not keys:
            raise ValueError("tarry serve needs event keys: set TARRY_EVENT_KEYS (comma-separated)")
        if not api_key:
            raise ValueError("tarry serve needs a signing key for its API and dashboard: set TARRY_SIGNING_KEY")
        config = ServerConfig(mode, frozenset(keys), api_key)
    else:
        config = ServerConfig(mode, None, None)

    def secured(handler: Handler) -> Handler:
        if config.api_key is None:
            return json_only(handler)
        expected = f"Bearer {config.api_key}".encode()

        async def check(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error(401, "this API needs Authorization: Bearer <TARRY_SIGNING_KEY>")
            return await handler(request)

        return check

    def json_only(handler: Handler) -> Handler:
        if config.mode != "dev":
            return handler

        async def check(request: Request) -> Response:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if request.method == "POST" and kind != "application/json" and request.headers.get("content-length") != "0":
                return error(415, "send the body as Content-Type: application/json")
            return await handler(request)

        return check

    document = openapi.document(secured=config.api_key is not None)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def dashboard(request: Request) -> Response:
        page = resources.files("tarry._server").joinpath("static", "index.html").read_text("utf-8")
        return HTMLResponse(page.replace("{{MODE}}", config.mode))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage:
            await app.start(worker=worker)
        try:
            yield
        finally:
            if manage:
                await app.close()

    static = StaticFiles(directory=str(resources.files("tarry._server").joinpath("static")))
    server = Starlette(
        routes=[
            Route("/e/{event_key}", json_only(routes.send_events), methods=["POST"]),
            Route("/resume/{token}", routes.resume, methods=["GET", "POST", "HEAD"]),
            Route("/api/v1/notify/{key}", secured(routes.notify), methods=["POST"]),
            Route("/api/v1/runs", secured(routes.list_runs), methods=["GET"]),
            Route("/api/v1/runs/{run_id}", secured(routes.get_run), methods=["GET"]),
            Route("/api/v1/runs/{run_id}/cancel", secured(routes.cancel_run), methods=["POST"]),
            Route("/api/v1/events", secured(routes.list_events), methods=["GET"]),
            Route("/api/v1/events", secured(routes.post_events), methods=["POST"]),
            Route("/api/v1/events/{event_id}/runs", secured(routes.event_runs), methods=["GET"]),
            Route("/api/v1/waits", secured(routes.list_waits), methods=["GET"]),
            Route("/api/v1/dead-letters", secured(routes.list_dead_letters), methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/", dashboard, methods=["GET"]),
            Mount("/static", static, name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else [],
    )
    server.state.tarry = app
    server.state.config = config
    return server


__all__ = ["ServerConfig", "create_app"]
