"""Refuse state-changing requests that a web page on another site could make a browser send.

An ASGI middleware, so it covers every route, present and future. Server-to-server
callers (curl, SDKs, ``tarry send``, webhooks) send neither ``Origin`` nor
``Sec-Fetch-*`` and pass. ``/resume/{token}`` is left to its token (see docs/server.md).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tarry._server.json import error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_ROUTES = ("/resume/",)  # the token in the path is the credential
JSON_ROUTES = ("/e/", "/api/", "/fn/")  # in dev, their POSTs must be JSON, even empty ones
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, *, require_json: bool) -> None:
        self.app = app
        self.require_json = require_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            refused = self.refusal(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if path.startswith(TOKEN_ROUTES):
            return None
        headers = Headers(scope=scope)
        site = headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site"):
            return error(403, f"a {scope['method']} from another site is refused (Sec-Fetch-Site: {site}): "
                              "state-changing requests must come from this server's own pages or from a server")  # fmt: skip
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, headers.get("host", "")):
            return error(403, f"a {scope['method']} from the origin {origin[:100]!r} is refused: "
                              "state-changing requests must come from this server's own origin or from a server")  # fmt: skip
        if self.require_json and scope["method"] == "POST" and path.startswith(JSON_ROUTES):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return error(415, "send the body as Content-Type: application/json (also when it is empty)")
        return None


def same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names the host the request was sent to (scheme aside: a proxy may end TLS)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False  # includes "null": a sandboxed frame, a file, a redirect across origins
    return (parts.hostname.lower(), str(port or _DEFAULT_PORTS[parts.scheme])) == _host_port(host, parts.scheme)


def _host_port(host: str, scheme: str) -> tuple[str, str]:
    host = host.lower()
    if host.startswith("["):  # an IPv6 literal
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, port or _DEFAULT_PORTS[scheme]
