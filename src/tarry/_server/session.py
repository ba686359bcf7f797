"""Who may call ``/api``: the bearer key of servers, or a dashboard signed in with its own key.

In ``serve`` the dashboard's session is a cookie ``<id>.<expiry ms>.<HMAC>`` signed with a key derived
from the dashboard key, and its CSRF token an HMAC of the session id: nothing is stored, and changing the
dashboard key signs everyone out. ``dev`` is open; its page's token is one random value per process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import urlsafe_b64encode
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from tarry._server.json import error

COOKIE = "tarry_session"
CSRF_HEADER = "x-tarry-csrf"
LIFETIME_MS = 12 * 3600 * 1000  # a session lasts 12 hours, then the page asks for the key again
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(digest).rstrip(b"=").decode()


def same_secret(given: str | None, expected: str) -> bool:
    """Constant time, whatever the lengths (both sides are hashed to one length first)."""
    if given is None:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


class Sessions:
    """Dashboard sessions of ``serve``: the key check, the signed cookie and the token bound to it."""

    def __init__(self, dashboard_key: str, now_ms: Callable[[], int]) -> None:
        secret = dashboard_key.encode()
        self._key = dashboard_key
        self._cookie_key = hmac.new(secret, b"tarry dashboard session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"tarry dashboard csrf", hashlib.sha256).digest()
        self._now_ms = now_ms

    def is_key(self, given: str) -> bool:
        return same_secret(given, self._key)

    def new_cookie(self) -> str:
        """A new session's cookie value: a random id and its expiry, signed."""
        payload = f"{secrets.token_urlsafe(18)}.{self._now_ms() + LIFETIME_MS}"
        return f"{payload}.{_mac(self._cookie_key, payload)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The id of the session a cookie value opens, or ``None``: missing, tampered with, expired."""
        if not cookie or len(cookie) > 200:
            return None
        payload, _, signature = cookie.rpartition(".")
        session, _, expires = payload.partition(".")
        if not session or not expires.isdigit() or not same_secret(signature, _mac(self._cookie_key, payload)):
            return None
        return session if int(expires) > self._now_ms() else None

    def csrf_token(self, session: str) -> str:
        return _mac(self._csrf_key, session)


class Access:
    """The check in front of every ``/api`` route (``refusal``) and the token of the page at ``/``."""

    def __init__(self, *, bearer_key: str | None, sessions: Sessions | None) -> None:
        self.bearer_key = bearer_key  # None: dev, open
        self.sessions = sessions  # None: no dashboard sign-in (dev, or serve without a dashboard key)
        self.dev_token = secrets.token_urlsafe(32)

    def page_token(self, request: Request) -> str | None:
        """The CSRF token for the page ``request`` asks for; ``None`` in serve when it is not signed in."""
        if self.bearer_key is None:
            return self.dev_token
        session = self.sessions.session_id(request.cookies.get(COOKIE)) if self.sessions else None
        return None if session is None or self.sessions is None else self.sessions.csrf_token(session)

    def refusal(self, request: Request) -> Response | None:
        """``None`` if the request may go on, else the ``401`` or ``403`` that refuses it."""
        unsafe = request.method not in SAFE_METHODS
        given = request.headers.get(CSRF_HEADER)
        if self.bearer_key is None:
            if unsafe and given is not None and not same_secret(given, self.dev_token):
                return error(403, "the CSRF token in X-Tarry-CSRF is not this server's: reload the dashboard")
            return None
        if same_secret(request.headers.get("authorization"), f"Bearer {self.bearer_key}"):
            return None  # a server: no cookie, no CSRF token
        session = self.sessions.session_id(request.cookies.get(COOKIE)) if self.sessions else None
        if session is None or self.sessions is None:
            dashboard = ", or a dashboard session (sign in at /)" if self.sessions else ""
            return error(401, f"this route needs Authorization: Bearer <TARRY_SIGNING_KEY>{dashboard}")
        if unsafe and not same_secret(given, self.sessions.csrf_token(session)):
            said = "is missing" if given is None else "is wrong"
            return error(403, f"the CSRF token {said}: a dashboard request that changes something must carry "
                              "the page's token in X-Tarry-CSRF (reload the dashboard)")  # fmt: skip
        return None
