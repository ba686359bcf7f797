"""A database password is never printed: not in banners, command output, errors, nor ``repr``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

import tarry
from tests.cli.commands import APP, free_port, run, start, stop, wait_healthy

SECRET = "hunter2-s3cret"
REFUSED = [  # PostgreSQL URLs of a server that is not there, each carrying the password
    f"postgresql://root:{SECRET}@127.0.0.1:1/nowhere",
    f"postgresql://root@127.0.0.1:1/nowhere?password={SECRET}",
    f"postgresql://root@127.0.0.1:1/nowhere?sslmode=disable&password={SECRET}&sslpassword={SECRET}",
    f"postgres://root:{SECRET}@127.0.0.1:1/nowhere",
]


def test_repr_hides_the_password() -> None:
    for url in REFUSED:
        app = tarry.Tarry("x", database_url=url)
        assert SECRET not in repr(app) and "***" in repr(app)
    assert repr(tarry.Tarry("x", database_url="sqlite:///:memory:")) == "<Tarry 'x' 'sqlite:///:memory:'>"


@pytest.mark.parametrize("url", REFUSED)
def test_a_store_error_hides_the_password(url: str) -> None:
    app = tarry.Tarry("x", database_url=url)
    with pytest.raises(tarry.StoreError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/nowhere") as info:
        asyncio.run(app.start())
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("where", ["user", "query"])
def test_libpqs_own_message_echoing_the_url_is_scrubbed(where: str) -> None:
    bad = "s3cret%ZZtoken"  # an invalid percent-escape: libpq quotes the token back in its error
    url = (
        f"postgresql://root:{bad}@127.0.0.1:1/nowhere"
        if where == "user"
        else f"postgresql://root@127.0.0.1:1/nowhere?password={bad}"
    )
    with pytest.raises(tarry.StoreError) as info:
        asyncio.run(tarry.Tarry("x", database_url=url).start())
    assert "s3cret" not in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "url",
    [f"mysql://root:{SECRET}@db/x", f"sqlite://root:{SECRET}@somehost/x.db", f"root:{SECRET}@db/x",
     f"sqlite:///x.db?synchronous=bogus&password={SECRET}"],
)  # fmt: skip
def test_a_bad_url_error_hides_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="invalid database URL") as info:
        asyncio.run(tarry.Tarry("x", database_url=url).start())  # the URL is checked, then the SQLite path
    assert SECRET not in str(info.value)
    result = run("migrate", "--database-url", url)
    assert result.returncode == 1 and "invalid database URL" in result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.parametrize("command", [("migrate",), ("runs",), ("run", "r"), ("cancel", "r"), ("dev", APP),
                                     ("worker", APP)], ids=lambda c: c[0])  # fmt: skip
def test_no_command_prints_the_password(command: tuple[str, ...], url: str) -> None:
    extra = ("--port", str(free_port())) if command[0] == "dev" else ()
    result = run(*command, *extra, "--database-url", url)
    assert result.returncode == 1 and "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere" in result.stderr
    assert result.stderr.splitlines()[0].startswith("database: postgres")
    assert SECRET not in result.stderr + result.stdout


def test_the_environments_url_is_hidden_too() -> None:
    result = run("runs", env={"TARRY_DATABASE_URL": REFUSED[0]})
    assert result.returncode == 1 and result.stderr.splitlines()[0] == (
        "database: postgresql://root:***@127.0.0.1:1/nowhere"
    )
    assert SECRET not in result.stderr + result.stdout


@pytest.fixture
def postgres_with_password(postgres_template: tuple[str, str]) -> Iterator[str]:
    """A migrated database, reached by a URL that carries a password (the local server trusts any)."""
    admin, template = postgres_template
    database = f"tarry_cli_secret_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    server = urlsplit(admin)
    yield f"postgresql://{server.username}:{SECRET}@{server.hostname}:{server.port or 5432}/{database}?password={SECRET}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_banners_and_output_hide_the_password(postgres_with_password: str, tmp_path: Path) -> None:
    url = postgres_with_password
    printed = []
    port = free_port()
    dev = start("dev", APP, "--port", str(port), "--database-url", url, cwd=tmp_path)
    wait_healthy(dev, port)
    printed.append(stop(dev))
    worker = start("worker", APP, "--database-url", url, cwd=tmp_path)
    assert worker.stdout is not None and "Tarry worker" in worker.stdout.readline()
    printed.append(stop(worker))
    port = free_port()
    env = {"TARRY_EVENT_KEYS": "event-key-0123456789", "TARRY_SIGNING_KEY": "signing-key-0123456789"}
    serve = start("serve", APP, "--host", "127.0.0.1", "--port", str(port), "--database-url", url, env=env,
                  cwd=tmp_path)  # fmt: skip
    wait_healthy(serve, port)
    printed.append(stop(serve))
    for command in (("migrate",), ("runs",), ("run", "nope"), ("cancel", "nope")):
        result = run(*command, "--database-url", url)
        printed.append((result.stdout, result.stderr))
    text = "\n".join(out + err for out, err in printed)
    assert text.count("database: postgresql://") == 7 and "Tarry dev server" in text and "migrated" in text
    assert "***" in text and SECRET not in text, text
