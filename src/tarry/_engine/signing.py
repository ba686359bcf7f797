"""Resume tokens: derived from a secret kept outside the database, so a copy of it opens nothing.

The secret is ``TARRY_SIGNING_KEY`` when set, else a key generated once and
kept in a file: beside the SQLite database (``<file>.key``), or in the
user's config folder for an in-memory or PostgreSQL store. A token is the
HMAC of the run and step ids: a replayed run re-derives the same URL, and
the database holds only the token's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from tarry._errors import StoreError


def key_file(database_url: str) -> Path:
    if urlsplit(database_url).scheme == "sqlite":
        from tarry._store.sqlite import sqlite_path

        path, _ = sqlite_path(database_url)
        if path != ":memory:":
            return Path(path + ".key")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "tarry" / "signing.key"


def load_signing_key(database_url: str, *, create: bool = True, given: str | None = None) -> bytes:
    """The secret for resume tokens: ``given`` (read by ``tarry serve`` from its key file), else
    ``TARRY_SIGNING_KEY``, else a key file (created on first use).

    Without ``create`` (a command that only reads), a missing key file stays missing and the key is
    empty: nothing was signed with a key that does not exist yet, and a read signs nothing."""
    configured = given or os.environ.get("TARRY_SIGNING_KEY")
    if configured:
        return configured.encode()
    path = key_file(database_url)
    if not create and not path.exists():
        return b""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
        key = path.read_text().strip()
    except OSError as exc:
        raise StoreError(f"cannot keep the resume signing key in {str(path)!r}: {exc}; set TARRY_SIGNING_KEY") from exc
    if not key:
        raise StoreError(f"the resume signing key file {str(path)!r} is empty; delete it or set TARRY_SIGNING_KEY")
    return key.encode()


def derive_token(key: bytes, run_id: str, step_id: str) -> str:
    """256 bits, URL-safe: the same for the same run and step, unguessable without the key."""
    digest = hmac.new(key, f"{run_id}\n{step_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
