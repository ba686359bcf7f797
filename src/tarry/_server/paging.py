"""The pages of the JSON API's lists: ``limit``, and cursors that are opaque, tamper-evident and bound to
their list.

A cursor holds the position after a page's last item (a keyset position, never an offset, so a page
costs the same however deep it is) and the name of the list that issued it: JSON, then an HMAC of it
under a key derived from the app's signing key, both base64url. A cursor the server did not issue —
garbled, forged, or another list's — is refused with a ``ValueError`` (a 400) saying what to pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from starlette.requests import Request

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_CURSOR = 2048  # characters: a position is a few ids and numbers
_MAC_BYTES = 16


def limit_of(request: Request) -> int:
    """The ``limit`` parameter: an integer from 1 to ``MAX_LIMIT`` (default ``DEFAULT_LIMIT``)."""
    text = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"invalid limit {text[:40]!r}: an integer from 1 to {MAX_LIMIT}")
    return int(text)


class Cursors:
    """Issues and reads the cursors of one app (``key``: its signing key)."""

    def __init__(self, key: bytes) -> None:
        self._key = hmac.new(key, b"tarry list cursors", hashlib.sha256).digest()

    def issue(self, kind: str, position: Any) -> str:
        """The cursor of the page after ``position`` in the list ``kind``."""
        body = json.dumps([kind, position], separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._mac(body))

    def read(self, kind: str, request: Request) -> Any:
        """The position of the request's ``cursor`` (None without one); ``ValueError`` unless this server
        issued it for the list ``kind``."""
        cursor = request.query_params.get("cursor") or None
        if cursor is None:
            return None
        refused = ValueError(
            f"invalid cursor {cursor[:40]!r}: pass the next_cursor of the previous page of this list, unchanged"
        )
        text, dot, mac = cursor.partition(".")
        if not dot or len(cursor) > MAX_CURSOR:
            raise refused
        try:
            body, given = _unb64(text), _unb64(mac)
        except (binascii.Error, ValueError):
            raise refused from None
        if not hmac.compare_digest(given, self._mac(body)):
            raise refused
        issued_for, position = json.loads(body)
        if issued_for != kind:
            raise ValueError(f"invalid cursor: it is a cursor of the list of {issued_for}, not of {kind}")
        return position

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """``text`` decoded; ``ValueError`` unless it is exactly what ``_b64`` makes (one text per cursor)."""
    if not text.isascii():
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not as issued")
    return data
