"""Shared fixtures: an app on a fresh SQLite file with a VirtualClock, and the same on PostgreSQL.

The PostgreSQL half runs against TARRY_TEST_POSTGRES_URL; without it the tests
that need it fail, unless TARRY_TEST_POSTGRES=off says to run SQLite only.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry._store import redact_url
from tarry.testing import VirtualClock

LIMIT = 10  # real seconds one engine call may take in a test
POSTGRES_ENV = "TARRY_TEST_POSTGRES_URL"  # e.g. postgresql://root@127.0.0.1:5432/postgres (an admin database)
POSTGRES_SWITCH = "TARRY_TEST_POSTGRES"  # "off": run the SQLite half only, saying so
KEPT = (POSTGRES_ENV, POSTGRES_SWITCH, "TARRY_SCREENSHOTS_DIR")  # the test run's own settings
_databases = itertools.count()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TARRY_* setting of the developer's shell reaches a test (the app reads TARRY_DATABASE_URL...)."""
    for name in list(os.environ):
        if name.startswith("TARRY_") and name not in KEPT:
            monkeypatch.delenv(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get(POSTGRES_SWITCH, "").lower() == "off":  # said last too, where -q still shows it
        terminalreporter.write_line(f"the PostgreSQL half was NOT run ({POSTGRES_SWITCH}=off)", yellow=True)


def pytest_report_header() -> str:
    if os.environ.get(POSTGRES_SWITCH, "").lower() == "off":
        return f"PostgreSQL: the PostgreSQL half is NOT run ({POSTGRES_SWITCH}=off)"
    admin = os.environ.get(POSTGRES_ENV)
    return f"PostgreSQL: {redact_url(admin) if admin else f'{POSTGRES_ENV} is not set: the PostgreSQL half will fail'}"


def sqlite_url(folder: Path) -> str:
    return "sqlite:///" + str(folder.resolve() / "tarry.db")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    """(admin URL, template database): migrated once per session, cloned for each test.

    Unset or unreachable, the PostgreSQL half fails; it is skipped only when
    TARRY_TEST_POSTGRES=off asks for that (``./scripts/test`` sets the URL).
    """
    if os.environ.get(POSTGRES_SWITCH, "").lower() == "off":
        pytest.skip(f"{POSTGRES_SWITCH}=off: the PostgreSQL half is not run")
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.fail(
            f"the PostgreSQL half of the suite needs {POSTGRES_ENV} (e.g. postgresql://root@127.0.0.1:5432/postgres); "
            f"set {POSTGRES_SWITCH}=off to run the SQLite half only",
            pytrace=False,
        )
    import psycopg

    template = f"tarry_template_{os.getpid()}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
            conn.execute(f'CREATE DATABASE "{template}"')
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}") from exc

    async def migrate() -> None:
        app = tarry.Tarry("template", database_url=_database_url(admin, template))
        await app.start(worker=False)
        await app.close()

    asyncio.run(migrate())
    yield admin, template
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


def _database_url(admin: str, database: str) -> str:
    base, _, _ = admin.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every behaviour test runs on both stores."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    import psycopg

    admin, template = request.getfixturevalue("postgres_template")
    database = f"tarry_test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    yield _database_url(admin, database)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def make_app(db_url: str, clock: VirtualClock) -> Callable[..., tarry.Tarry]:
    def make(**options: Any) -> tarry.Tarry:
        options.setdefault("database_url", db_url)
        options.setdefault("clock", clock)
        return tarry.Tarry("test", **options)

    return make


@pytest.fixture
def app(make_app: Callable[..., tarry.Tarry]) -> tarry.Tarry:
    """An app not yet started: register functions, then ``async with app``."""
    return make_app()


@pytest.fixture
async def running(app: tarry.Tarry) -> AsyncIterator[tarry.Tarry]:
    """The same app, started with its worker (register functions before using it)."""
    async with app:
        yield app


async def start_run(app: tarry.Tarry, event: tarry.Event, function_id: str | None = None) -> tarry.Run:
    """Send ``event``, wait until idle, and return the one run it started (of ``function_id``)."""
    [event_id] = await app.send(event)
    await app.idle(timeout=LIMIT)
    runs = [r for r in await app.runs_for_event(event_id) if function_id is None or r.function_id == function_id]
    assert len(runs) == 1, runs
    return runs[0]
