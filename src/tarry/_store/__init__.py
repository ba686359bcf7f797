"""Durable state behind one narrow async protocol; ``open_store`` picks the dialect by URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from tarry._store.base import Store
from tarry._store.urls import redact_url

SCHEMES = ("sqlite", "postgresql", "postgres")


def check_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` names a store Tarry knows (the error never shows a password)."""
    if not isinstance(url, str) or "://" not in url:
        shown = redact_url(url) if isinstance(url, str) else url
        raise ValueError(f"invalid database URL {shown!r}: expected sqlite:///path.db or postgresql://...")
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"invalid database URL {redact_url(url)!r}: unknown scheme {scheme!r} (use sqlite:// or postgresql://)"
        )


def open_store(url: str, *, create: bool = True) -> Store:
    """The store for ``url`` (not yet opened).

    Without ``create``, opening it neither creates the database nor migrates its schema: it fails
    unless the database exists and holds Tarry's schema at this version (for reading commands)."""
    check_url(url)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tarry._store.sqlite import SQLiteStore

        return SQLiteStore(url, create=create)
    from tarry._store.postgres import PostgresStore

    return PostgresStore(url, create=create)


__all__ = ["SCHEMES", "Store", "check_url", "open_store", "redact_url"]
