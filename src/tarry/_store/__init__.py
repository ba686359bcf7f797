"""Durable state behind one narrow async protocol; ``open_store`` picks the dialect by URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from tarry._store.base import Store

SCHEMES = ("sqlite", "postgresql", "postgres")


def check_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` names a store Tarry knows."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"invalid database URL {url!r}: expected sqlite:///path.db or postgresql://...")
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(f"invalid database URL {url!r}: unknown scheme {scheme!r} (use sqlite:// or postgresql://)")


def open_store(url: str) -> Store:
    """The store for ``url`` (not yet opened)."""
    check_url(url)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tarry._store.sqlite import SQLiteStore

        return SQLiteStore(url)
    from tarry._store.postgres import PostgresStore

    return PostgresStore(url)


__all__ = ["SCHEMES", "Store", "check_url", "open_store"]
