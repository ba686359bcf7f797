"""The dashboard's own routes: the page at ``/`` (or, in ``serve``, its sign-in page), signing in and out.

The page carries its CSRF token in ``<meta name="tarry-csrf">``; ``session.Access`` checks it on the API.
The session cookie is HttpOnly, SameSite=Strict, and Secure when the request came over HTTPS.
"""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tarry._server.json import error
from tarry._server.routes import BodyRefused, parse, read_body
from tarry._server.session import COOKIE, CSRF_HEADER, Access, same_secret

log = logging.getLogger("tarry.server")

WRONG_KEY = '<p id="signin-error" class="notice error" role="alert">That dashboard key is wrong.</p>'
SIGN_OUT = (
    '<form id="sign-out" method="post" action="/dashboard/sign-out">'
    '<input type="hidden" name="csrf" value="{{CSRF}}"><button type="submit">Sign out</button></form>'
)
PAGE_HEADERS = {  # the page holds a CSRF token: never cached, never framed by another site
    "Cache-Control": "no-store",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _file(*parts: str) -> str:
    return resources.files("tarry._server").joinpath(*parts).read_text("utf-8")


def _signin_page(*, wrong: bool, status: int) -> Response:
    page = _file("templates", "signin.html").replace("{{ERROR}}", WRONG_KEY if wrong else "")
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


class Dashboard:
    """The handlers of ``/``, ``POST /dashboard/sign-in`` and ``POST /dashboard/sign-out``."""

    def __init__(self, mode: str, access: Access) -> None:
        self.mode = mode
        self.access = access

    async def page(self, request: Request) -> Response:
        if self.mode == "serve" and self.access.sessions is None:
            return HTMLResponse(_file("templates", "dashboard-off.html"), status_code=404, headers=PAGE_HEADERS)
        token = self.access.page_token(request)
        if token is None:
            return _signin_page(wrong=False, status=200)
        sign_out = SIGN_OUT.replace("{{CSRF}}", token) if self.mode == "serve" else ""
        page = _file("static", "index.html").replace("{{SIGN_OUT}}", sign_out)
        return HTMLResponse(page.replace("{{MODE}}", self.mode).replace("{{CSRF}}", token), headers=PAGE_HEADERS)

    async def sign_in(self, request: Request) -> Response:
        sessions = self.access.sessions
        if sessions is None:
            return error(404, "this server has no dashboard sign-in: set TARRY_DASHBOARD_KEY (at least 16 characters)")
        try:
            fields = await _fields(request)
        except BodyRefused as exc:
            return error(exc.status, str(exc))
        except ValueError as exc:
            return error(400, str(exc))
        key = fields.get("key")
        if not isinstance(key, str):
            return error(400, '"key": required, the dashboard key (a string), as a form field or in a JSON object')
        if not sessions.is_key(key):
            log.warning("dashboard sign-in with a wrong key from %s", request.client.host if request.client else "?")
            return _signin_page(wrong=True, status=401)
        response = RedirectResponse("/", status_code=303)
        response.headers.append("set-cookie", _cookie(sessions.new_cookie(), request))
        return response

    async def sign_out(self, request: Request) -> Response:
        sessions = self.access.sessions
        if sessions is None:
            return error(404, "this server has no dashboard sign-in")
        session = sessions.session_id(request.cookies.get(COOKIE))
        if session is not None:
            try:
                given = request.headers.get(CSRF_HEADER) or (await _fields(request)).get("csrf")
            except (BodyRefused, ValueError):
                given = None
            if not isinstance(given, str) or not same_secret(given, sessions.csrf_token(session)):
                return error(403, "signing out needs the page's CSRF token (X-Tarry-CSRF or a csrf form field)")
        response = RedirectResponse("/", status_code=303)
        response.headers.append("set-cookie", _cookie("", request, clear=True))
        return response


async def _fields(request: Request) -> dict[str, object]:
    """The fields of a form-encoded or JSON-object body (``ValueError`` saying what is wrong)."""
    body = await read_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        value = parse(body) if body else {}
        if not isinstance(value, dict):
            raise ValueError("the body must be a JSON object")
        return value
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
    except UnicodeDecodeError:
        raise ValueError("the form body is not UTF-8") from None


def _cookie(value: str, request: Request, *, clear: bool = False) -> str:
    """The ``Set-Cookie`` value; ``Secure`` when the request came over HTTPS (also through a trusted proxy)."""
    parts = [f"{COOKIE}={value}", "HttpOnly", "SameSite=Strict", "Path=/"]
    if clear:
        parts.append("Max-Age=0")
    if request.url.scheme == "https":
        parts.append("Secure")
    return "; ".join(parts)


__all__ = ["Dashboard"]
