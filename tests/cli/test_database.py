"""Which database a command uses (one rule everywhere), and reading commands that create nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tarry._app import DEFAULT_DATABASE_URL
from tarry._store.queries import load_migrations
from tests.cli.commands import error_lines, free_port, run, seed_waiting_run, start, stop

READERS = [("runs",), ("run", "some-run"), ("cancel", "some-run")]


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + str(path)


def app_file(folder: Path, database_url: str) -> Path:
    path = folder / "myapp.py"
    path.write_text(
        "import tarry\n\n"
        f"app = tarry.Tarry('mine', database_url={database_url!r})\n\n\n"
        "@app.function(trigger='cli/start')\n"
        "async def waiter(ctx: tarry.Context) -> None:\n"
        "    await ctx.step.wait_for_event('w', event='cli/never', timeout='1d')\n"
    )
    return path


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_reading_command_never_creates_a_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nothing" / "here.db"
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    result = run(*command, "--database-url", sqlite_url(missing), env=env, cwd=tmp_path)
    assert result.returncode == 1, result
    assert error_lines(result) == [f"error: no Tarry database at {missing} (start the app or run tarry migrate)"]
    assert list(tmp_path.iterdir()) == []  # no database, no folder for it, no signing key


def test_without_an_app_or_url_the_default_is_read_not_created(tmp_path: Path) -> None:
    result = run("runs", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "database: sqlite:///.tarry/tarry.db"
    assert "no Tarry database at .tarry/tarry.db (start the app or run tarry migrate)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_reading_command_creates_no_signing_key(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cli.db")
    run_id = seed_waiting_run(url)
    (tmp_path / "cli.db.key").unlink()
    assert run("runs", "--database-url", url).returncode == 0
    assert run("run", run_id, "--database-url", url).returncode == 0
    assert run("cancel", run_id, "--database-url", url).stdout.strip() == "cancelled"
    assert not (tmp_path / "cli.db.key").exists()


def test_a_file_without_tarrys_schema_is_no_tarry_database(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    result = run("runs", "--database-url", sqlite_url(other))
    assert result.returncode == 1 and f"no Tarry database at {other}" in result.stderr
    with sqlite3.connect(other) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["notes"]


def test_an_older_schema_says_run_tarry_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    *older, _ = load_migrations("sqlite")
    with sqlite3.connect(path) as conn:  # a database an older Tarry made: all migrations but the last
        conn.execute("CREATE TABLE tarry_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "applied_at INTEGER NOT NULL)")  # fmt: skip
        for version, name, sql in older:
            conn.executescript(sql)
            conn.execute("INSERT INTO tarry_migrations VALUES (?, ?, 0)", (version, name))
    result = run("runs", "--database-url", sqlite_url(path))
    assert result.returncode == 1 and "run tarry migrate" in result.stderr and "schema version" in result.stderr
    assert len(error_lines(result)) == 1
    assert run("migrate", "--database-url", sqlite_url(path)).returncode == 0
    assert run("runs", "--database-url", sqlite_url(path)).stdout.strip() == "no runs"


@pytest.fixture
def empty_postgres(postgres_template: tuple[str, str]) -> Iterator[str]:
    """A PostgreSQL database without Tarry's schema."""
    admin, _ = postgres_template
    database = f"tarry_cli_empty_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    yield admin.rpartition("/")[0] + "/" + database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_reading_command_never_creates_the_postgresql_schema(empty_postgres: str, command: tuple[str, ...],
                                                              tmp_path: Path) -> None:  # fmt: skip
    home = tmp_path / "home"
    result = run(*command, "--database-url", empty_postgres, env={"HOME": str(home), "XDG_CONFIG_HOME": str(home)})
    where = empty_postgres.split("@")[-1]
    assert result.returncode == 1 and error_lines(result) == [
        f"error: no Tarry database at {where} (start the app or run tarry migrate)"
    ]
    with psycopg.connect(empty_postgres) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    assert not home.exists()
    assert run("migrate", "--database-url", empty_postgres).returncode == 0
    assert run("runs", "--database-url", empty_postgres).stdout.strip() == "no runs"


def test_app_reads_the_apps_own_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "mine.db")
    run_id = seed_waiting_run(url)
    spec = f"{app_file(tmp_path, url)}:app"
    elsewhere = {"TARRY_DATABASE_URL": sqlite_url(tmp_path / "elsewhere.db")}
    listed = run("runs", "--app", spec, env=elsewhere)
    assert listed.returncode == 0 and run_id in listed.stdout, listed
    assert listed.stderr.splitlines()[0] == f"database: {url}"
    shown = run("run", run_id, "--app", spec, env=elsewhere)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == run_id
    assert run("cancel", run_id, "--app", spec, env=elsewhere).stdout.strip() == "cancelled"
    assert not (tmp_path / "elsewhere.db").exists()


def test_database_url_overrides_the_apps(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "other.db")
    run_id = seed_waiting_run(url)
    spec = f"{app_file(tmp_path, sqlite_url(tmp_path / 'mine.db'))}:app"
    listed = run("runs", "--app", spec, "--database-url", url)
    assert listed.returncode == 0 and run_id in listed.stdout
    mine = sqlite_url(tmp_path / "mine.db")
    assert listed.stderr.splitlines()[0] == f"database: {url} (from --database-url, not the app's database_url= {mine})"
    assert not (tmp_path / "mine.db").exists()


def test_the_apps_database_url_beats_the_environment_in_dev_and_worker(tmp_path: Path) -> None:
    mine = sqlite_url(tmp_path / "mine.db")
    spec = f"{app_file(tmp_path, mine)}:app"
    env = {"TARRY_DATABASE_URL": sqlite_url(tmp_path / "env.db")}
    port = free_port()
    dev = start("dev", spec, "--port", str(port), env=env)
    assert dev.stderr is not None and dev.stderr.readline().strip() == f"database: {mine}"
    stop(dev)
    worker = start("worker", spec, env=env)
    assert worker.stderr is not None and worker.stderr.readline().strip() == f"database: {mine}"
    assert worker.stdout is not None and "Tarry worker for 'mine'" in worker.stdout.readline()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert (tmp_path / "mine.db").exists() and not (tmp_path / "env.db").exists()
    overridden = sqlite_url(tmp_path / "flag.db")
    migrated = run("migrate", "--app", spec, "--database-url", overridden, env=env)
    assert migrated.returncode == 0
    assert (
        migrated.stderr.strip() == f"database: {overridden} (from --database-url, not the app's database_url= {mine})"
    )
    assert (tmp_path / "flag.db").exists() and not (tmp_path / "env.db").exists()


def test_without_database_url_the_environment_is_the_default(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "env.db")
    run_id = seed_waiting_run(url)
    listed = run("runs", env={"TARRY_DATABASE_URL": url})
    assert listed.returncode == 0 and run_id in listed.stdout
    assert listed.stderr.strip() == f"database: {url}"


@pytest.mark.parametrize("command", [("migrate",), ("runs",), ("run", "x"), ("cancel", "x")], ids=lambda c: c[0])
def test_every_command_names_its_database_on_stderr(tmp_path: Path, command: tuple[str, ...]) -> None:
    url = sqlite_url(tmp_path / "named.db")
    if command[0] != "migrate":
        assert run("migrate", "--database-url", url).returncode == 0
    result = run(*command, "--database-url", url)
    assert (
        result.stderr.splitlines()[0]
        == f"database: {url} (from --database-url, not the default {DEFAULT_DATABASE_URL})"
    )
    assert all(url not in line for line in result.stdout.splitlines() if command[0] != "migrate")


def test_serve_names_its_database_on_stderr(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "serve.db")
    env = {"TARRY_EVENT_KEYS": "event-key-0123456789", "TARRY_SIGNING_KEY": "signing-key-0123456789"}
    port = free_port()
    server = start("serve", f"{app_file(tmp_path, url)}:app", "--port", str(port), "--host", "127.0.0.1", env=env)
    assert server.stderr is not None and server.stderr.readline().strip() == f"database: {url}"
    stop(server)
