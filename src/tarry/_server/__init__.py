"""The ASGI app of ``tarry dev`` and ``tarry serve``: a route list over one Tarry app.

``dev`` is open (it binds to 127.0.0.1); ``serve`` accepts only the event
keys it is given on ``/e/{key}`` and requires ``Authorization: Bearer
<signing key>`` on ``/api`` (and a bearer key on ``/metrics``). The dashboard's page holds no data: in
``serve`` its script asks for the key and sends it with every API call.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tarry._app import Tarry
from tarry._server import openapi, routes
from tarry._server.guard import CrossSiteGuard
from tarry._server.json import error
from tarry._server.serving import listen, server_config

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("tarry.server")


MIN_KEY = 16  # characters of a key in serve: short keys can be guessed


@dataclass(frozen=True)
class ServerConfig:
    mode: str  # "dev" | "serve"
    event_keys: frozenset[str] | None  # None: any key (dev)
    api_key: str | None  # None: the API is open (dev)
    metrics_key: str | None = None  # None: /metrics is open (dev)


def create_app(
    app: Tarry, *, mode: str = "dev", event_keys: list[str] | None = None, api_key: str | None = None,
    worker: bool = True, manage: bool = True, allowed_hosts: list[str] | None = None, metrics_key: str | None = None,
) -> Starlette:  # fmt: skip
    """The ASGI app. With ``manage``, it starts the Tarry app (and a worker) and closes it with the server.

    ``allowed_hosts`` limits the ``Host`` header (``tarry dev`` passes its loopback names, so a web
    page cannot reach the open dev API through DNS rebinding). Every state-changing request from
    another site is refused (``guard``); in ``dev``, POSTs to ``/e`` and ``/api`` must also be JSON.
    In ``serve``, ``/metrics`` needs ``metrics_key`` (default: ``TARRY_METRICS_KEY``, else the signing key).
    """
    if mode not in ("dev", "serve"):
        raise ValueError(f"invalid mode {mode!r}: 'dev' or 'serve'")
    if mode == "serve":
        keys = [k.strip() for k in event_keys or [] if k.strip()]
        if not keys:
            raise ValueError("tarry serve needs event keys: set TARRY_EVENT_KEYS (comma-separated)")
        if not api_key:
            raise ValueError("tarry serve needs a signing key for its API and dashboard: set TARRY_SIGNING_KEY")
        for index, key in enumerate(keys):
            if len(key) < MIN_KEY:
                raise ValueError(f"TARRY_EVENT_KEYS: key {index + 1} has {len(key)} characters; "
                                 f"each event key must have at least {MIN_KEY}")  # fmt: skip
        if len(api_key) < MIN_KEY:
            raise ValueError(f"TARRY_SIGNING_KEY has {len(api_key)} characters; it must have at least {MIN_KEY}")
        metrics_key = metrics_key or os.environ.get("TARRY_METRICS_KEY") or api_key
        if len(metrics_key) < MIN_KEY:
            raise ValueError(f"TARRY_METRICS_KEY has {len(metrics_key)} characters; it must have at least {MIN_KEY}")
        config = ServerConfig(mode, frozenset(keys), api_key, metrics_key)
    else:
        config = ServerConfig(mode, None, None)

    def bearer(handler: Handler, key: str | None, setting: str) -> Handler:
        if key is None:
            return handler
        expected = f"Bearer {key}".encode()

        async def check(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error(401, f"this route needs Authorization: Bearer <{setting}>")
            return await handler(request)

        return check

    def secured(handler: Handler) -> Handler:
        return bearer(handler, config.api_key, "TARRY_SIGNING_KEY")

    metrics_setting = "TARRY_METRICS_KEY" if config.metrics_key != config.api_key else "TARRY_SIGNING_KEY"

    async def client_gone(request: Request, exc: Exception) -> Response:
        log.info("%s %s: the client went away before its request was read", request.method, request.url.path)
        return Response(status_code=400)  # no one reads it

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
            Route("/e/{event_key}", routes.send_events, methods=["POST"]),
            Route("/resume/{token}", routes.resume, methods=["GET", "POST", "HEAD"]),
            Route("/api/v1/notify/{key}", secured(routes.notify), methods=["POST"]),
            Route("/api/v1/runs", secured(routes.list_runs), methods=["GET"]),
            Route("/api/v1/runs/cancel", secured(routes.cancel_runs), methods=["POST"]),
            Route("/api/v1/runs/rerun", secured(routes.rerun_runs), methods=["POST"]),
            Route("/api/v1/runs/{run_id}", secured(routes.get_run), methods=["GET"]),
            Route("/api/v1/runs/{run_id}/cancel", secured(routes.cancel_run), methods=["POST"]),
            Route("/api/v1/runs/{run_id}/rerun", secured(routes.rerun_run), methods=["POST"]),
            Route("/api/v1/events", secured(routes.list_events), methods=["GET"]),
            Route("/api/v1/events", secured(routes.post_events), methods=["POST"]),
            Route("/api/v1/events/{event_id}", secured(routes.get_event), methods=["GET"]),
            Route("/api/v1/events/{event_id}/runs", secured(routes.event_runs), methods=["GET"]),
            Route("/api/v1/waits", secured(routes.list_waits), methods=["GET"]),
            Route("/api/v1/dead-letters", secured(routes.list_dead_letters), methods=["GET"]),
            Route("/api/v1/buffers", secured(routes.list_buffers), methods=["GET"]),
            Route("/api/v1/functions", secured(routes.list_functions), methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", bearer(routes.metrics, config.metrics_key, metrics_setting), methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/", dashboard, methods=["GET"]),
            Mount("/static", static, name="static"),
        ],
        lifespan=lifespan,
        middleware=[
            *([Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []),
            Middleware(CrossSiteGuard, require_json=config.mode == "dev"),
        ],
        exception_handlers={ClientDisconnect: client_gone},
    )
    server.state.tarry = app
    server.state.config = config
    return server


__all__ = ["ServerConfig", "create_app", "listen", "server_config"]
