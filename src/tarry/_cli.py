"""The ``tarry`` command: one function per command, one error handler.

User mistakes (a wrong APP, bad JSON, an unreachable server, a bad database
URL) print one line and exit non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click

from tarry import __version__, _serde
from tarry._app import DEFAULT_DATABASE_URL, Tarry
from tarry._errors import TarryError
from tarry._model import Run, RunStatus

T = TypeVar("T")


class UserError(click.ClickException):
    """A mistake of the user's: one line, exit 1."""


def load_app(spec: str) -> Tarry:
    """``module:attribute`` or ``path/to/file.py:attribute`` -> the Tarry app it names."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise UserError(f"APP {spec!r} must be module:attribute or path/to/file.py:attribute")
    try:
        if target.endswith(".py") or os.sep in target:
            path = Path(target)
            if not path.is_file():
                raise UserError(f"no such file: {target}")
            sys.path.insert(0, str(path.resolve().parent))
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        raise UserError(f"cannot import {target!r}: {exc}") from None
    except Exception as exc:
        raise UserError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None
    app = getattr(module, attribute, None)
    if app is None:
        raise UserError(f"{target!r} has no attribute {attribute!r}")
    if not isinstance(app, Tarry):
        raise UserError(f"{spec!r} is a {type(app).__name__}, not a tarry.Tarry app")
    return app


def with_database_url(app: Tarry, database_url: str | None) -> Tarry:
    if database_url:
        from tarry._store import check_url

        check_url(database_url)
        app.database_url = database_url
    return app


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


PORT = click.IntRange(1, 65535)
DATABASE_URL = click.option(
    "--database-url", envvar="TARRY_DATABASE_URL", show_envvar=True, default=None,
    help=f"The store (default: the app's own, else {DEFAULT_DATABASE_URL}).",
)  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tarry")
def cli() -> None:
    """Tarry: durable workflows whose heart is waiting."""


# -- servers -------------------------------------------------------------------


def _serve(app: Tarry, host: str, port: int, **server: Any) -> None:
    import uvicorn

    from tarry._server import create_app, listen, server_config

    async def check_store() -> None:  # fail here, in one line, rather than in the server's startup
        await app.start(worker=False)
        await app.close()

    run_async(check_store)
    try:
        asgi = create_app(app, **server)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        listener = listen(host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    uvicorn_server = uvicorn.Server(server_config(asgi))
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    click.echo(
        f"Tarry {server.get('mode', 'dev')} server for {app.id!r}: http://{shown}:{port}/  (store: {app.database_url})"
    )
    try:
        uvicorn_server.run(sockets=[listener])
    except SystemExit:
        raise UserError("the server stopped while starting (see the message above)") from None


@cli.command()
@click.argument("app_spec", metavar="APP")
@click.option("--port", envvar="TARRY_PORT", show_envvar=True, default=8288, show_default=True, type=PORT)
@DATABASE_URL
def dev(app_spec: str, port: int, database_url: str | None) -> None:
    """Server, worker and dashboard in one process, on 127.0.0.1 (open: no keys)."""
    app = with_database_url(load_app(app_spec), database_url)
    if app.base_url is None:
        app.base_url = f"http://127.0.0.1:{port}"
    _serve(app, "127.0.0.1", port, mode="dev", allowed_hosts=["127.0.0.1", "localhost"])


@cli.command()
@click.argument("app_spec", metavar="APP")
@click.option("--host", envvar="TARRY_HOST", show_envvar=True, default="0.0.0.0", show_default=True)
@click.option("--port", envvar="TARRY_PORT", show_envvar=True, default=8288, show_default=True, type=PORT)
@click.option("--worker/--no-worker", envvar="TARRY_WORKER", show_envvar=True, default=True, show_default=True,
              help="Also run a worker in this process.")  # fmt: skip
@click.option("--event-keys", envvar="TARRY_EVENT_KEYS", show_envvar=True, default="",
              help="Comma-separated keys accepted on /e/{key}.")  # fmt: skip
@click.option("--signing-key", envvar="TARRY_SIGNING_KEY", show_envvar=True, default=None,
              help="Bearer key for /api and the dashboard; also signs resume URLs.")  # fmt: skip
@DATABASE_URL
def serve(app_spec: str, host: str, port: int, worker: bool, event_keys: str, signing_key: str | None,
          database_url: str | None) -> None:  # fmt: skip
    """The server for production: event keys and a signing key required."""
    keys = [k for k in event_keys.split(",") if k.strip()]
    if not keys:
        raise UserError("tarry serve needs event keys: set TARRY_EVENT_KEYS (comma-separated)")
    if not signing_key:
        raise UserError("tarry serve needs a signing key for its API and dashboard: set TARRY_SIGNING_KEY")
    os.environ["TARRY_SIGNING_KEY"] = signing_key  # resume URLs are signed with it too
    app = with_database_url(load_app(app_spec), database_url)
    _serve(app, host, port, mode="serve", event_keys=keys, api_key=signing_key, worker=worker)


@cli.command()
@click.argument("app_spec", metavar="APP")
@DATABASE_URL
def worker(app_spec: str, database_url: str | None) -> None:
    """Run a worker for the app's functions until stopped (Ctrl-C or SIGTERM)."""
    app = with_database_url(load_app(app_spec), database_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with app:
            click.echo(
                f"Tarry worker for {app.id!r} ({', '.join(app.functions) or 'no functions'}) on {app.database_url}"
            )
            await stop.wait()

    run_async(main)


# -- client commands -------------------------------------------------------------


@cli.command()
@click.argument("name")
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "event_id", default=None, help="Deduplication id.")
@click.option("--key", default=None, help="Correlation key.")
@click.option("--url", envvar="TARRY_URL", show_envvar=True, default="http://127.0.0.1:8288", show_default=True,
              help="The running Tarry server.")  # fmt: skip
@click.option("--event-key", envvar="TARRY_EVENT_KEY", show_envvar=True, default="dev", show_default=True,
              help="The event key for /e/{key}.")  # fmt: skip
def send(name: str, data: str, event_id: str | None, key: str | None, url: str, event_key: str) -> None:
    """Send one event to a running server."""
    import httpx

    try:
        parsed = _serde.parse(data)
    except ValueError as exc:
        raise UserError(f"--data is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UserError('--data must be a JSON object, such as \'{"userId": "u1"}\'')
    event: dict[str, Any] = {"name": name, "data": parsed}
    if event_id:
        event["id"] = event_id
    if key:
        event["key"] = key
    target = f"{url.rstrip('/')}/e/{quote(event_key, safe='')}"
    try:
        response = httpx.post(target, json=event, timeout=10)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise UserError(f"cannot reach the Tarry server at {url}: {exc}") from None
    body = _json_or_text(response)
    if response.status_code != 200:
        message = body.get("error") if isinstance(body, dict) else body
        raise UserError(f"the server refused the event ({response.status_code}): {message}")
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        raise UserError(f"{url} answered, but not as a Tarry server: {str(body)[:120]}")
    for sent in body["ids"]:
        click.echo(sent)


def _json_or_text(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text.strip()[:200]


def _client(database_url: str | None) -> Tarry:
    return Tarry("tarry-cli", database_url=database_url)


@cli.command()
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--function", "function_id", default=None, help="Only runs of this function id.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@DATABASE_URL
def runs(status: str | None, function_id: str | None, limit: int, database_url: str | None) -> None:
    """List runs, newest first."""
    found = _client(database_url).list_runs_sync(function_id=function_id, status=status, limit=limit)
    if not found:
        click.echo("no runs")
    for run in found:
        ended = run.ended_at.isoformat(timespec="seconds") if run.ended_at else "-"
        click.echo(f"{run.id}  {run.status.value:<9}  {run.function_id:<24}  "
                   f"{run.created_at.isoformat(timespec='seconds')}  {ended}")  # fmt: skip


@cli.command("run")
@click.argument("run_id")
@DATABASE_URL
def show_run(run_id: str, database_url: str | None) -> None:
    """Show one run with its steps, as JSON."""
    from tarry._server.json import run_json

    run: Run | None = _client(database_url).get_run_sync(run_id)
    if run is None:
        raise UserError(f"no run with id {run_id!r}")
    click.echo(json.dumps(run_json(run), indent=2))


@cli.command()
@click.argument("run_id")
@DATABASE_URL
def cancel(run_id: str, database_url: str | None) -> None:
    """Cancel a run (a running one at its next step)."""
    client = _client(database_url)
    if client.get_run_sync(run_id) is None:
        raise UserError(f"no run with id {run_id!r}")
    click.echo("cancelled" if client.cancel_run_sync(run_id) else "already finished")


@cli.command()
@DATABASE_URL
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema."""
    app = _client(database_url)

    async def main() -> None:
        await app.start(worker=False)
        await app.close()

    run_async(main)
    click.echo(f"migrated {app.database_url}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (TarryError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
