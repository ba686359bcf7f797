"""The reading commands (runs, run, cancel, functions) on a database that is not there: a clear message, a
non-zero exit, nothing created; the one rule that picks the database, in every combination; and what
``tarry functions`` and ``tarry runs`` show."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tarry._app import DEFAULT_DATABASE_URL
from tests.cli.commands import error_lines, free_port, run, seed_waiting_run, start, stop, wait_healthy

#: every command that reads the database of --app APP (or --database-url URL) and must never create one
READERS = [("runs",), ("run", "some-run"), ("cancel", "some-run"), ("functions",)]
NO_DATABASE = "error: no Tarry database at {where} (start the app or run tarry migrate)"


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + str(path)


def app_file(folder: Path, database_url: str | None = None) -> str:
    """An app in ``folder`` (its own folder: importing it writes __pycache__ there); its APP spec."""
    folder.mkdir(parents=True, exist_ok=True)
    given = "" if database_url is None else f", database_url={database_url!r}"
    (folder / "shop.py").write_text(
        "import tarry\n\n"
        f"app = tarry.Tarry('shop'{given})\n\n\n"
        "@app.function(trigger='cli/start')\n"
        "async def waiter(ctx: tarry.Context) -> None:\n"
        "    await ctx.step.wait_for_event('w', event='cli/never', timeout='1d')\n\n\n"
        "@app.function(trigger=['shop/*', 'shop/order'], retries=1, concurrency=tarry.Concurrency(limit=2))\n"
        "async def limited(ctx: tarry.Context) -> None:\n"
        "    return None\n"
    )
    return str(folder / "shop.py") + ":app"


def isolated(tmp_path: Path) -> dict[str, str]:
    """An environment whose home and config folders are under ``tmp_path`` (where a key file would go)."""
    home = tmp_path / "home"
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def with_app(command: tuple[str, ...], spec: str) -> tuple[str, ...]:
    return (*command, "--app", spec)


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_the_apps_missing_database_is_said_and_not_created(tmp_path: Path, command: tuple[str, ...]) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    spec = app_file(tmp_path / "code", sqlite_url(empty / "shop.db"))
    result = run(*with_app(command, spec), env=isolated(tmp_path), cwd=empty)
    assert result.returncode == 1, result
    assert error_lines(result) == [NO_DATABASE.format(where=empty / "shop.db")]
    assert list(empty.iterdir()) == [] and not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_the_default_database_is_read_never_created(tmp_path: Path, command: tuple[str, ...]) -> None:
    empty = tmp_path / "work"
    empty.mkdir()
    spec = app_file(tmp_path / "code")  # no database_url=: the default, in the working directory
    args = with_app(command, spec) if command[0] == "functions" else command
    result = run(*args, env=isolated(tmp_path), cwd=empty)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"database: {DEFAULT_DATABASE_URL}"
    assert error_lines(result) == [NO_DATABASE.format(where=".tarry/tarry.db")]
    assert list(empty.iterdir()) == [] and not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_missing_database_url_is_said_and_not_created(tmp_path: Path, command: tuple[str, ...]) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    spec = app_file(tmp_path / "code", sqlite_url(tmp_path / "elsewhere.db"))
    missing = empty / "nothing" / "here.db"
    result = run(*with_app(command, spec), "--database-url", sqlite_url(missing), env=isolated(tmp_path), cwd=empty)
    assert result.returncode == 1
    assert error_lines(result) == [NO_DATABASE.format(where=missing)]
    assert list(empty.iterdir()) == [] and not (tmp_path / "elsewhere.db").exists()


@pytest.fixture
def empty_postgres(postgres_template: tuple[str, str]) -> Iterator[str]:
    """A PostgreSQL database without Tarry's schema."""
    admin, _ = postgres_template
    database = f"tarry_cli_reading_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    yield admin.rpartition("/")[0] + "/" + database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_postgresql_without_the_schema_gets_none(empty_postgres: str, tmp_path: Path, command: tuple[str, ...]) -> None:
    spec = app_file(tmp_path / "code", empty_postgres)  # the app's own database
    for flags in ((), ("--database-url", empty_postgres)):
        result = run(*with_app(command, spec), *flags, env=isolated(tmp_path), cwd=tmp_path)
        assert result.returncode == 1, result
        assert error_lines(result) == [NO_DATABASE.format(where=empty_postgres.split("@")[-1])]
    with psycopg.connect(empty_postgres) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    assert not (tmp_path / "home").exists()


# -- the one rule ------------------------------------------------------------------


@pytest.mark.parametrize("in_code", [True, False], ids=["code", "no-code"])
@pytest.mark.parametrize("in_env", [True, False], ids=["env", "no-env"])
@pytest.mark.parametrize("flag", [True, False], ids=["flag", "no-flag"])
def test_the_database_rule_in_every_combination(tmp_path: Path, in_code: bool, in_env: bool, flag: bool) -> None:
    urls = {name: sqlite_url(tmp_path / f"{name}.db") for name in ("code", "env", "flag")}
    work = tmp_path / "work"
    work.mkdir()
    default = sqlite_url(work / ".tarry" / "tarry.db")
    expected, source = (
        (urls["flag"], "--database-url") if flag
        else (urls["code"], "code") if in_code
        else (urls["env"], "env") if in_env
        else (default, "default")
    )  # fmt: skip
    run_id = seed_waiting_run(expected)
    spec = app_file(tmp_path / "code", urls["code"] if in_code else None)
    env = {"TARRY_DATABASE_URL": urls["env"]} if in_env else {}
    flags = ("--database-url", urls["flag"]) if flag else ()
    result = run("runs", "--app", spec, *flags, env=env, cwd=work)
    assert result.returncode == 0 and run_id in result.stdout, result
    overridden = urls["code"] if in_code else urls["env"] if in_env else DEFAULT_DATABASE_URL
    by = "the app's database_url=" if in_code else "TARRY_DATABASE_URL" if in_env else "the default"
    shown = DEFAULT_DATABASE_URL if source == "default" else expected
    line = f"database: {shown}" + (f" (from --database-url, not {by} {overridden})" if flag else "")
    assert result.stderr.splitlines() == [line]
    for name, url in urls.items():  # the others were neither read nor created
        assert url == expected or not (tmp_path / f"{name}.db").exists(), name


def test_the_flag_over_the_same_url_says_only_where_it_came_from(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "same.db")
    seed_waiting_run(url)
    result = run("runs", "--app", app_file(tmp_path / "code", url), "--database-url", url)
    assert result.returncode == 0 and result.stderr.splitlines() == [f"database: {url} (from --database-url)"]


def test_dev_serve_and_worker_take_the_flag_over_the_apps_own(tmp_path: Path) -> None:
    mine, flag = sqlite_url(tmp_path / "mine.db"), sqlite_url(tmp_path / "flag.db")
    spec = app_file(tmp_path / "code", mine)
    env = {"TARRY_DATABASE_URL": sqlite_url(tmp_path / "env.db")}
    line = f"database: {flag} (from --database-url, not the app's database_url= {mine})"
    port = free_port()
    dev = start("dev", spec, "--port", str(port), "--database-url", flag, env=env, cwd=tmp_path)
    wait_healthy(dev, port)
    assert stop(dev)[1].splitlines()[0] == line
    keys = {"TARRY_EVENT_KEYS": "event-key-0123456789", "TARRY_SIGNING_KEY": "signing-key-0123456789"}
    port = free_port()
    serve = start("serve", spec, "--host", "127.0.0.1", "--port", str(port), "--database-url", flag,
                  env={**env, **keys}, cwd=tmp_path)  # fmt: skip
    wait_healthy(serve, port)
    assert stop(serve)[1].splitlines()[0] == line
    worker = start("worker", spec, "--database-url", flag, env=env, cwd=tmp_path)
    assert worker.stderr is not None and worker.stderr.readline().strip() == line
    assert worker.stdout is not None and "Tarry worker for 'shop'" in worker.stdout.readline()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert (tmp_path / "flag.db").exists()
    assert not (tmp_path / "mine.db").exists() and not (tmp_path / "env.db").exists()


# -- what the reading commands show ---------------------------------------------------


def test_functions_lists_the_apps_functions(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shop.db")
    assert run("migrate", "--database-url", url).returncode == 0
    spec = app_file(tmp_path / "code", url)
    listed = run("functions", "--app", spec)
    assert listed.returncode == 0, listed
    assert listed.stderr.splitlines() == [f"database: {url}"]
    assert listed.stdout.splitlines() == [
        f"{'limited':<24}  shop/order, shop/*  retries=1  concurrency",
        f"{'waiter':<24}  cli/start  retries=4",
    ]
    as_json = json.loads(run("functions", "--app", spec, "--json").stdout)
    assert as_json["functions"][0] == {
        "id": "limited", "triggers": [{"event": "shop/order"}, {"event": "shop/*"}], "retries": 1,
        "options": {"concurrency": [{"limit": 2, "key": None, "scope": "function"}]},
    }  # fmt: skip
    assert [f["id"] for f in as_json["functions"]] == ["limited", "waiter"]


def test_functions_shows_filters_and_failure_handlers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shop.db")
    assert run("migrate", "--database-url", url).returncode == 0
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "shop.py").write_text(
        "import tarry\n\n"
        f"app = tarry.Tarry('shop', database_url={url!r})\n\n\n"
        "async def refund(ctx: tarry.Context) -> None:\n"
        "    return None\n\n\n"
        "@app.function(trigger=[tarry.Trigger('shop/*', if_exp='event.data.vip')], on_failure=refund)\n"
        "async def vip(ctx: tarry.Context) -> None:\n"
        "    return None\n"
    )
    listed = run("functions", "--app", str(folder / "shop.py") + ":app")
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines() == [
        f"{'vip':<24}  shop/* if event.data.vip  retries=4  on_failure",
        f'{"vip-failure":<24}  tarry/function.failed if event.data.function_id == "vip"  retries=4',
    ]


def test_functions_needs_the_app(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shop.db")
    assert run("migrate", "--database-url", url).returncode == 0
    result = run("functions", "--database-url", url)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "Error: tarry functions needs --app APP: a function's triggers and options are defined in the app's code, "
        "not in its database"
    ]


def test_runs_filters_by_status_event_and_time(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shop.db")
    run_id = seed_waiting_run(url)

    def listed(*flags: str) -> list[str]:
        result = run("runs", "--database-url", url, *flags)
        assert result.returncode == 0, result
        return [line.split()[0] for line in result.stdout.splitlines() if line != "no runs"]

    assert listed() == [run_id]
    assert listed("--status", "waiting", "--status", "failed") == [run_id]
    assert listed("--status", "failed") == []
    assert listed("--function", "waiter", "--created-after", "2000-01-01T00:00:00Z") == [run_id]
    assert listed("--created-before", "2000-01-01T00:00:00+02:00") == []
    assert listed("--event-id", "nope") == []
    bad = run("runs", "--database-url", url, "--created-after", "2024-05-01T09:00:00")
    assert bad.returncode == 2 and "is not an ISO 8601 time with its offset" in bad.stderr
    assert "Traceback" not in bad.stderr
