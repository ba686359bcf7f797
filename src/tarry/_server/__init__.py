"""The ASGI app of ``tarry dev`` and ``tarry serve``: a route list over one Tarry app.

``dev`` is open (it binds to 127.0.0.1); ``serve`` accepts only the event
keys it is given on ``/e/{key}`` and requires ``Authorization: Bearer
<signing key>`` on ``/api`` (and a bearer key on ``/metrics``), or the cookie of a
dashboard signed in with the dashboard key (``dashboard``, ``session``).
"""

from __future__ import annotations

import asyncio
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
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tarry._app import Tarry
from tarry._sdk.driver import Calls, signing_key
from tarry._sdk.sync import RESYNC_S, request_syncs
from tarry._server import openapi, routes
from tarry._server.dashboard import Dashboard
from tarry._server.guard import CrossSiteGuard
from tarry._server.json import error
from tarry._server.serving import listen, server_config
from tarry._server.session import Access, Sessions
from tarry._server.stream import Streams

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("tarry.server")


MIN_KEY = 16  # characters of a key in serve: short keys can be guessed


@dataclass(frozen=True)
class ServerConfig:
    mode: str  # "dev" | "serve"
    event_keys: frozenset[str] | None  # None: any key (dev)
    api_key: str | None  # None: the API is open (dev)
    metrics_key: str | None = None  # None: /metrics is open (dev)
    dashboard_key: str | None = None  # None: no dashboard in serve; dev's is open


def create_app(
    app: Tarry, *, mode: str = "dev", event_keys: list[str] | None = None, api_key: str | None = None,
    worker: bool = True, manage: bool = True, allowed_hosts: list[str] | None = None, metrics_key: str | None = None,
    dashboard_key: str | None = None, sdk_urls: list[str] | None = None,
) -> Starlette:  # fmt: skip
    """The ASGI app. With ``manage``, it starts the Tarry app (and a worker) and closes it with the server.

    ``allowed_hosts`` limits the ``Host`` header (``tarry dev`` passes its loopback names, so a web
    page cannot reach the open dev API through DNS rebinding). Every state-changing request from
    another site is refused (``guard``); in ``dev``, POSTs to ``/e`` and ``/api`` must also be JSON.
    In ``serve``, ``/metrics`` needs ``metrics_key`` (default: ``TARRY_METRICS_KEY``, else the signing key),
    and the dashboard at ``/`` is served only with a ``dashboard_key`` (``TARRY_DASHBOARD_KEY``), which
    signs its users in; it is never a bearer key, nor is the signing key a dashboard key.
    ``sdk_urls``: Inngest SDK endpoints asked to sync once the server runs (``tarry dev --sdk-url``); in
    serve, ``POST /fn/register`` takes only syncs signed with ``INNGEST_SIGNING_KEY`` (API §13).
    """
    if mode not in ("dev", "serve"):
        raise ValueError(f"invalid mode {mode!r}: 'dev' or 'serve'")
    if mode == "serve":
        keys = [k.strip() for k in event_keys or [] if k.strip()]
        if not keys:
            raise ValueError("tarry serve needs event keys: set TARRY_EVENT_KEYS (comma-separated)")
        if not api_key:
            raise ValueError("tarry serve needs a signing key for its API and resume URLs: set TARRY_SIGNING_KEY")
        for index, key in enumerate(keys):
            if len(key) < MIN_KEY:
                raise ValueError(f"TARRY_EVENT_KEYS: key {index + 1} has {len(key)} characters; "
                                 f"each event key must have at least {MIN_KEY}")  # fmt: skip
        if len(api_key) < MIN_KEY:
            raise ValueError(f"TARRY_SIGNING_KEY has {len(api_key)} characters; it must have at least {MIN_KEY}")
        metrics_key = metrics_key or os.environ.get("TARRY_METRICS_KEY") or api_key
        if len(metrics_key) < MIN_KEY:
            raise ValueError(f"TARRY_METRICS_KEY has {len(metrics_key)} characters; it must have at least {MIN_KEY}")
        if dashboard_key is not None:
            if len(dashboard_key) < MIN_KEY:
                raise ValueError(f"TARRY_DASHBOARD_KEY has {len(dashboard_key)} characters; "
                                 f"it must have at least {MIN_KEY}")  # fmt: skip
            for setting, other in (("TARRY_SIGNING_KEY", api_key), ("TARRY_METRICS_KEY", metrics_key),
                                   *(("TARRY_EVENT_KEYS", key) for key in keys)):  # fmt: skip
                if hmac.compare_digest(dashboard_key.encode(), other.encode()):
                    raise ValueError(f"TARRY_DASHBOARD_KEY must differ from {setting}: "
                                     "each key opens one door")  # fmt: skip
        config = ServerConfig(mode, frozenset(keys), api_key, metrics_key, dashboard_key=dashboard_key)
    else:
        if dashboard_key is not None:
            raise ValueError("dashboard_key is for mode='serve': the dashboard of dev is open (it binds to 127.0.0.1)")
        config = ServerConfig(mode, None, None)
    sdk_key = signing_key()  # ValueError for a key that is not in the SDK's form
    sessions = Sessions(config.dashboard_key, app.clock.now_ms) if config.dashboard_key else None
    access = Access(bearer_key=config.api_key, sessions=sessions)
    dashboard = Dashboard(config.mode, access)
    streams = Streams()

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
        """The signing key as a bearer key (servers), or a dashboard session (with its CSRF token on POSTs)."""

        async def check(request: Request) -> Response:
            refused = access.refusal(request)
            return refused if refused is not None else await handler(request)

        return check

    metrics_setting = "TARRY_METRICS_KEY" if config.metrics_key != config.api_key else "TARRY_SIGNING_KEY"

    async def client_gone(request: Request, exc: Exception) -> Response:
        log.info("%s %s: the client went away before its request was read", request.method, request.url.path)
        return Response(status_code=400)  # no one reads it

    document = openapi.document(secured=config.api_key is not None)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage:
            await app.start(worker=worker)
            app.engine.sdk = Calls.from_environment(signed=config.mode == "serve")
        syncing = None
        if sdk_urls:  # asked once the server listens: each SDK answers with its POST /fn/register
            kind = "cloud" if config.mode == "serve" else "dev"
            again = RESYNC_S if config.mode == "dev" else None  # dev: a reloaded SDK app is synced again
            syncing = asyncio.ensure_future(request_syncs(list(sdk_urls), kind, lambda line: log.warning("%s", line),
                                                          again))  # fmt: skip
        try:
            yield
        finally:
            if syncing is not None:
                syncing.cancel()
            if manage:
                await app.close()

    static = StaticFiles(directory=str(resources.files("tarry._server").joinpath("static")))
    server = Starlette(
        routes=[
            Route("/e/{event_key}", routes.send_events, methods=["POST"]),
            Route("/fn/register", routes.register_sdk, methods=["POST"]),
            Route("/resume/{token}", routes.resume, methods=["GET", "POST", "HEAD"]),
            Route("/api/v1/notify/{key}", secured(routes.notify), methods=["POST"]),
            Route("/api/v1/runs", secured(routes.list_runs), methods=["GET"]),
            Route("/api/v1/runs/cancel", secured(routes.cancel_runs), methods=["POST"]),
            Route("/api/v1/runs/rerun", secured(routes.rerun_runs), methods=["POST"]),
            Route("/api/v1/runs/counts", secured(routes.count_runs), methods=["GET"]),
            Route("/api/v1/runs/{run_id}", secured(routes.get_run), methods=["GET"]),
            Route("/api/v1/runs/{run_id}/output", secured(routes.run_output), methods=["GET"]),
            Route("/api/v1/runs/{run_id}/steps/{step_id:path}/output", secured(routes.step_output), methods=["GET"]),
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
            Route("/api/v1/stream", secured(streams.stream), methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", bearer(routes.metrics, config.metrics_key, metrics_setting), methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/", dashboard.page, methods=["GET"]),
            Route("/dashboard/sign-in", dashboard.sign_in, methods=["POST"]),
            Route("/dashboard/sign-out", dashboard.sign_out, methods=["POST"]),
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
    server.state.sdk_key = sdk_key  # INNGEST_SIGNING_KEY: the syncs serve takes, and its calls to the SDKs
    return server


__all__ = ["ServerConfig", "create_app", "listen", "server_config"]
