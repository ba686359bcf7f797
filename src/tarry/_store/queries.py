"""Load named SQL queries (``-- name: x`` headings) and migration files of a dialect."""

from __future__ import annotations

import re
from importlib import resources

_HEADING = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files("tarry._store").joinpath("sql", dialect, "queries.sql").read_text("utf-8")
    parts = _HEADING.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice in {dialect}/queries.sql")
        queries[name] = body.strip()
    return queries


def load_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in version order."""
    folder = resources.files("tarry._store").joinpath("sql", dialect, "migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found)
