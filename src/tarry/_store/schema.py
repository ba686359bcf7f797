"""What a database must hold to be opened without creating anything: Tarry's schema, up to date.

The reading commands open a store this way, so a wrong URL or a fresh folder
gives a clear "no Tarry database" rather than a new, empty database.
"""

from __future__ import annotations

from tarry._errors import StoreError
from tarry._store.queries import load_migrations


def require_schema(dialect: str, where: str, present: bool, applied: list[int]) -> None:
    """Raise ``StoreError`` unless the migrations table is ``present`` with every migration ``applied``."""
    if not present:
        raise StoreError(f"no Tarry database at {where} (start the app or run tarry migrate)")
    known = [version for version, _, _ in load_migrations(dialect)]
    missing = sorted(set(known) - set(applied))
    if missing:
        latest = max(applied, default=0)
        raise StoreError(
            f"the Tarry database at {where} is at schema version {latest}, this Tarry needs {known[-1]}: "
            "run tarry migrate"
        )
