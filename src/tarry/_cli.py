"""The ``tarry`` command: one function per command, one error handler.

User mistakes (a wrong APP, bad JSON, an unreachable server, a bad database
URL) print one line and exit non-zero; tracebacks are for bugs. Every command
that uses a database names it on stderr, never with its password; the
commands that read runs never create a database.
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
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click

from tarry import __version__, _serde
from tarry._app import DEFAULT_DATABASE_URL, Tarry
from tarry._engine import runlog
from tarry._errors import TarryError
from tarry._model import Run, RunStatus
from tarry._store import check_url, redact_url

T = TypeVar("T")


class UserError(click.ClickException):
    """A mistake of the user's: one line, exit 1."""


def load_app(spec: str) -> Tarry:
    """``module:attribute`` or ``path/to/file.py:attribute`` -> the Tarry app it names.

    The app's folder (for a file) or the working directory (for a module) goes on ``sys.path``
    after the installed packages: the app can import its sibling modules, but a ``uvicorn.py``
    or ``click.py`` beside it neither runs nor shadows the package of that name."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise UserError(f"APP {spec!r} must be module:attribute or path/to/file.py:attribute")
    try:
        if target.endswith(".py") or os.sep in target:
            path = Path(target)
            if not path.is_file():
                raise UserError(f"no such file: {target}")
            _search_last(str(path.resolve().parent))
            name = _module_name(path.resolve())
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            _search_last(os.getcwd())
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


def _search_last(folder: str) -> None:
    """Put ``folder`` (and the working directory ``python -c``/``-m`` put first) after everything else."""
    here = os.path.realpath(folder)
    cwd = os.path.realpath(os.getcwd())
    for entry in list(sys.path):
        real = os.path.realpath(entry or ".")
        if real in (here, cwd):
            sys.path.remove(entry)
    sys.path.append(folder)
    if cwd != here:
        sys.path.append(cwd)


def _module_name(path: Path) -> str:
    """The app file's module name: its stem, unless that names another module (``click.py``)."""
    name = path.stem
    if name.isidentifier() and name not in sys.modules:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None or (found.origin and Path(found.origin).resolve() == path):
            return name
    return "_tarry_app_" + "".join(c if c.isalnum() else "_" for c in name)


def load_app_or_none(spec: str | None) -> Tarry:
    """``load_app``; without a spec, an app of no functions of its own: it runs those Inngest SDKs sync."""
    return Tarry("tarry") if spec is None else load_app(spec)


def with_database_url(app: Tarry, database_url: str | None) -> Tarry:
    """The one rule: ``--database-url`` overrides the app's own (its ``database_url=``, else
    ``TARRY_DATABASE_URL``, else the SQLite default, as the app chose it); then name it on stderr, in one
    line, saying what the flag overrode."""
    line = f"database: {redact_url(app.database_url)}"
    if database_url:
        check_url(database_url)
        overridden = app.database_url
        app.database_url = database_url
        instead = "" if overridden == database_url else f", not {app._database_from} {redact_url(overridden)}"
        line = f"database: {redact_url(database_url)} (from --database-url{instead})"
    click.echo(line, err=True)
    return app


def store_app(app_spec: str | None, database_url: str | None) -> Tarry:
    """The app of ``--app`` (or a client of its own, without functions) on the chosen database."""
    app = load_app(app_spec) if app_spec else Tarry("tarry-cli")
    return with_database_url(app, database_url)


def with_existing_store(app: Tarry, call: Callable[[Tarry], Awaitable[T]]) -> T:
    """Run ``call`` on ``app`` opened without a worker and without creating anything."""

    async def main() -> T:
        await app._start(worker=False, create=False)
        try:
            return await call(app)
        finally:
            await app.close()

    return run_async(main)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


PORT = click.IntRange(1, 65535)
MIN_KEY_LENGTH = 16
DATABASE_URL = click.option(
    "--database-url", default=None, metavar="URL",
    help="The database, overriding the app's own (default: the app's database_url=, else "
         f"TARRY_DATABASE_URL, else {DEFAULT_DATABASE_URL}).",
)  # fmt: skip
APP_OPTION = click.option(
    "--app", "app_spec", metavar="APP", default=None,
    help="Read the database of this app (module:attribute or file.py:attribute).",
)  # fmt: skip


def store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--app APP`` and ``--database-url URL``: the options of every command that reads runs."""
    return APP_OPTION(DATABASE_URL(command))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tarry")
def cli() -> None:
    """Tarry: durable workflows whose heart is waiting."""


# -- servers -------------------------------------------------------------------


def _serve(app: Tarry, host: str, port: int, **server: Any) -> None:
    import socket

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

    class Server(uvicorn.Server):
        """Ends, as if stopped, when the app's worker stops working; ``fault`` says why."""

        fault: BaseException | None = None

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            watch = asyncio.ensure_future(app.worker_died())
            watch.add_done_callback(self._worker_died)
            try:
                await super().serve(sockets=sockets)
            finally:
                watch.cancel()

        def _worker_died(self, watch: asyncio.Future[BaseException]) -> None:
            if not watch.cancelled():
                self.fault, self.should_exit = watch.result(), True

    uvicorn_server = Server(server_config(asgi))
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    click.echo(f"Tarry {server.get('mode', 'dev')} server for {app.id!r}: http://{shown}:{port}/")
    if server.get("mode") == "serve" and server.get("dashboard_key") is None:
        click.echo(
            f"dashboard: off (set TARRY_DASHBOARD_KEY, at least {MIN_KEY_LENGTH} characters, to serve it)", err=True
        )
    try:
        uvicorn_server.run(sockets=[listener])
    except SystemExit:
        raise UserError("the server stopped while starting (see the message above)") from None
    if uvicorn_server.fault is not None:
        raise _worker_died(uvicorn_server.fault)


def _sdk_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    """``--sdk-url`` as given (repeatable), else ``TARRY_SDK_URLS`` (comma-separated); each an http(s) URL."""
    urls = list(value) or [u.strip() for u in os.environ.get("TARRY_SDK_URLS", "").split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL (the SDK's serve endpoint, "
                                     "e.g. http://127.0.0.1:8000/api/inngest)", ctx, param)  # fmt: skip
    return urls


SDK_URL = click.option(
    "--sdk-url", "sdk_urls", multiple=True, metavar="URL", callback=_sdk_urls,
    help="The serve endpoint of an app using Inngest's Python SDK, asked to sync its functions at start "
         "(tarry dev: and every 10 s after) (repeatable; else TARRY_SDK_URLS, comma-separated). Calls to the "
         "SDK time out after TARRY_SDK_TIMEOUT (default 60s).",
)  # fmt: skip


@cli.command()
@click.argument("app_spec", metavar="[APP]", required=False)
@click.option("--port", envvar="TARRY_PORT", show_envvar=True, default=8288, show_default=True, type=PORT)
@SDK_URL
@DATABASE_URL
def dev(app_spec: str | None, port: int, sdk_urls: list[str], database_url: str | None) -> None:
    """Server, worker and dashboard in one process, on 127.0.0.1 (open: no keys).

    Without APP, the functions are those Inngest SDKs sync (--sdk-url), on the database of --database-url,
    else TARRY_DATABASE_URL, else ./.tarry/tarry.db. Prints a line to stderr as each run starts, a step
    retries or fails, and a run ends."""
    app = with_database_url(load_app_or_none(app_spec), database_url)
    if app.base_url is None:
        app.base_url = f"http://127.0.0.1:{port}"
    runlog.print_to(sys.stderr)
    _serve(app, "127.0.0.1", port, mode="dev", allowed_hosts=["127.0.0.1", "localhost"], sdk_urls=sdk_urls)


@cli.command()
@click.argument("app_spec", metavar="[APP]", required=False)
@click.option("--host", envvar="TARRY_HOST", show_envvar=True, default="0.0.0.0", show_default=True)
@click.option("--port", envvar="TARRY_PORT", show_envvar=True, default=8288, show_default=True, type=PORT)
@click.option("--worker/--no-worker", envvar="TARRY_WORKER", show_envvar=True, default=True, show_default=True,
              help="Also run a worker in this process.")  # fmt: skip
@click.option("--event-keys-file", envvar="TARRY_EVENT_KEYS_FILE", show_envvar=True, default=None, metavar="PATH",
              help="A file of the keys accepted on /e/{key}, one a line or comma-separated "
                   "(else TARRY_EVENT_KEYS, comma-separated).")  # fmt: skip
@click.option("--signing-key-file", envvar="TARRY_SIGNING_KEY_FILE", show_envvar=True, default=None,
              metavar="PATH", help="A file holding the bearer key of /api (for servers, not people: see "
                                   "--dashboard-key-file), which also signs resume URLs (else TARRY_SIGNING_KEY).")  # fmt: skip
@click.option("--dashboard-key-file", envvar="TARRY_DASHBOARD_KEY_FILE", show_envvar=True, default=None,
              metavar="PATH", help="A file holding the key people sign in to the dashboard with (else "
                                   "TARRY_DASHBOARD_KEY; neither: no dashboard). It must differ from the signing "
                                   "key; a session lasts 12 hours, in an HttpOnly, SameSite=Strict cookie "
                                   "(Secure over HTTPS).")  # fmt: skip
@click.option("--event-keys", "event_keys_flag", hidden=True, default=None)
@click.option("--signing-key", "signing_key_flag", hidden=True, default=None)
@click.option("--dashboard-key", "dashboard_key_flag", hidden=True, default=None)
@SDK_URL
@DATABASE_URL
def serve(app_spec: str | None, host: str, port: int, worker: bool, event_keys_file: str | None,
          signing_key_file: str | None, dashboard_key_file: str | None, event_keys_flag: str | None,
          signing_key_flag: str | None, dashboard_key_flag: str | None, sdk_urls: list[str],
          database_url: str | None) -> None:  # fmt: skip
    """The server for production: event keys and a signing key required (at least 16 characters each).

    The dashboard at / is served only with a dashboard key (TARRY_DASHBOARD_KEY, at least 16 characters).
    Syncs from Inngest SDKs (POST /fn/register) are taken only signed with INNGEST_SIGNING_KEY, which also
    signs the calls to them. Without APP, the functions are those the SDKs sync."""
    for flag, given, file_option, variable in (("--event-keys", event_keys_flag, "--event-keys-file", "TARRY_EVENT_KEYS"),
                                               ("--signing-key", signing_key_flag, "--signing-key-file", "TARRY_SIGNING_KEY"),
                                               ("--dashboard-key", dashboard_key_flag, "--dashboard-key-file", "TARRY_DASHBOARD_KEY")):  # fmt: skip
        if given is not None:
            raise UserError(f"{flag} is not accepted: a key on the command line is visible to every user "
                            f"of the machine (ps); use {file_option} PATH or {variable}")  # fmt: skip
    keys = event_keys(event_keys_file)
    signing_key = read_signing_key(signing_key_file)
    dashboard_key = read_dashboard_key(dashboard_key_file)
    app = with_database_url(load_app_or_none(app_spec), database_url)
    app._signing_key = signing_key  # resume URLs are signed with it too; never put back in the environment
    _serve(app, host, port, mode="serve", event_keys=keys, api_key=signing_key, worker=worker,
           dashboard_key=dashboard_key, sdk_urls=sdk_urls)  # fmt: skip


def read_dashboard_key(path: str | None) -> str | None:
    """The dashboard key of ``--dashboard-key-file``, else of TARRY_DASHBOARD_KEY; ``None``: no dashboard."""
    setting = f"--dashboard-key-file {path}" if path else "TARRY_DASHBOARD_KEY"
    key = _read_key_file(path, "--dashboard-key-file").strip() if path else os.environ.get("TARRY_DASHBOARD_KEY", "")
    if not key:
        if path:
            raise UserError(
                f"{setting} holds no key (put the dashboard key in it, at least {MIN_KEY_LENGTH} characters)"
            )
        return None
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(f"{setting}: the dashboard key is too short ({len(key)} characters); "
                        f"it needs at least {MIN_KEY_LENGTH}")  # fmt: skip
    return key


def _read_key_file(path: str, option: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read {option} {path}: {reason}") from None


def event_keys(path: str | None) -> list[str]:
    """The event keys of ``--event-keys-file`` (one a line or comma-separated), else of TARRY_EVENT_KEYS."""
    setting = f"--event-keys-file {path}" if path else "TARRY_EVENT_KEYS"
    text = _read_key_file(path, "--event-keys-file") if path else os.environ.get("TARRY_EVENT_KEYS", "")
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise UserError(f"tarry serve needs event keys: {setting} holds none "
                        "(set TARRY_EVENT_KEYS, comma-separated, or --event-keys-file PATH)")  # fmt: skip
    for number, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_LENGTH:
            raise UserError(f"{setting}: event key {number} of {len(keys)} is too short ({len(key)} characters); "
                            f"each needs at least {MIN_KEY_LENGTH}")  # fmt: skip
    return keys


def read_signing_key(path: str | None) -> str:
    """The signing key of ``--signing-key-file``, else of TARRY_SIGNING_KEY."""
    setting = f"--signing-key-file {path}" if path else "TARRY_SIGNING_KEY"
    key = _read_key_file(path, "--signing-key-file").strip() if path else os.environ.get("TARRY_SIGNING_KEY", "")
    if not key:
        raise UserError(f"tarry serve needs a signing key for its API and resume URLs: {setting} holds none "
                        "(set TARRY_SIGNING_KEY or --signing-key-file PATH)")  # fmt: skip
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(f"{setting}: the signing key is too short ({len(key)} characters); "
                        f"it needs at least {MIN_KEY_LENGTH}")  # fmt: skip
    return key


@cli.command()
@click.argument("app_spec", metavar="[APP]", required=False)
@DATABASE_URL
def worker(app_spec: str | None, database_url: str | None) -> None:
    """Run a worker for the app's functions until stopped (Ctrl-C or SIGTERM).

    Functions synced from Inngest SDKs are run too (they are stored); without APP, only those."""
    app = with_database_url(load_app_or_none(app_spec), database_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with app:
            click.echo(f"Tarry worker for {app.id!r} ({', '.join(app.functions) or 'no functions'})")
            stopped, died = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.worker_died())
            done, _ = await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            died.cancel()
            if died in done:
                raise _worker_died(died.result())

    run_async(main)


def _worker_died(fault: BaseException) -> click.ClickException:
    return click.ClickException(f"the worker stopped working ({type(fault).__name__}: {fault}); exiting")


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


def iso_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An option's ISO 8601 time with its offset, as the JSON API takes it."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time with its offset, such as 2024-05-01T09:00:00Z")
    return moment


@cli.command()
@click.option("--status", multiple=True, type=click.Choice([s.value for s in RunStatus]),
              help="Only runs of this status (repeat it for several).")  # fmt: skip
@click.option("--function", "function_id", default=None, help="Only runs of this function id.")
@click.option("--event-id", default=None, help="Only the runs this event started.")
@click.option("--created-after", metavar="TIME", callback=iso_time, help="Only runs created at or after this time.")
@click.option("--created-before", metavar="TIME", callback=iso_time, help="Only runs created before this time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@store_options
def runs(status: tuple[str, ...], function_id: str | None, event_id: str | None, created_after: datetime | None,
         created_before: datetime | None, limit: int, app_spec: str | None, database_url: str | None) -> None:  # fmt: skip
    """List runs, newest first (times are ISO 8601 with an offset, e.g. 2024-05-01T09:00:00Z)."""
    app = store_app(app_spec, database_url)
    found = with_existing_store(app, lambda a: a.list_runs(
        function_id=function_id, status=list(status) or None, event_id=event_id, created_after=created_after,
        created_before=created_before, limit=limit))  # fmt: skip
    if not found:
        click.echo("no runs")
    for run in found:
        ended = run.ended_at.isoformat(timespec="seconds") if run.ended_at else "-"
        click.echo(f"{run.id}  {run.status.value:<9}  {run.function_id:<24}  "
                   f"{run.created_at.isoformat(timespec='seconds')}  {ended}")  # fmt: skip


@cli.command("run")
@click.argument("run_id")
@store_options
def show_run(run_id: str, app_spec: str | None, database_url: str | None) -> None:
    """Show one run with its steps, as JSON."""
    from tarry._server.json import run_json

    app = store_app(app_spec, database_url)
    run: Run | None = with_existing_store(app, lambda a: a.get_run(run_id))
    if run is None:
        raise UserError(f"no run with id {run_id!r}")
    click.echo(json.dumps(run_json(run), indent=2))


@cli.command()
@click.argument("run_id")
@store_options
def cancel(run_id: str, app_spec: str | None, database_url: str | None) -> None:
    """Cancel a run (a running one at its next step)."""

    async def call(app: Tarry) -> bool | None:
        if await app.get_run(run_id) is None:
            return None
        return await app.cancel_run(run_id)

    outcome = with_existing_store(store_app(app_spec, database_url), call)
    if outcome is None:
        raise UserError(f"no run with id {run_id!r}")
    click.echo("cancelled" if outcome else "already finished")


def _trigger_text(trigger: dict[str, str]) -> str:
    """A trigger on one line: its name (with its filter), or its schedule."""
    if "if_exp" in trigger:
        return f"{trigger['event']} if {trigger['if_exp']}"
    return trigger.get("event") or trigger.get("cron") or json.dumps(trigger)


@cli.command()
@click.argument("run_id")
@click.option("--from-step", "from_step", metavar="STEP", default=None,
              help="Keep the steps recorded before this step id of the run (they do not run again).")  # fmt: skip
@store_options
def rerun(run_id: str, from_step: str | None, app_spec: str | None, database_url: str | None) -> None:
    """Rerun a finished run as a new run, and print its id; a worker of the app executes it.

    Needs --app: a rerun runs the function as the app registers it (its code, retries, limits, cancel_on),
    which the database alone does not hold."""

    async def call(app: Tarry) -> str:
        run = await app.get_run(run_id)
        if run is None:
            raise UserError(f"no run with id {run_id!r}")
        if app_spec is None:
            raise UserError(f"tarry rerun needs --app APP: run {run_id} is a run of {run.function_id!r}, and a rerun "
                            "runs that function as the app registers it (its code, retries, limits, cancel_on)")  # fmt: skip
        try:
            return await app.rerun(run_id, from_step=from_step)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    click.echo(with_existing_store(store_app(app_spec, database_url), call))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print them as GET /api/v1/functions answers.")
@store_options
def functions(as_json: bool, app_spec: str | None, database_url: str | None) -> None:
    """List the app's functions: their triggers, retries and options (needs --app)."""
    if not app_spec:
        raise UserError("tarry functions needs --app APP: a function's triggers and options are defined in "
                        "the app's code, not in its database")  # fmt: skip
    app = store_app(app_spec, database_url)

    async def call(app: Tarry) -> list[dict[str, Any]]:
        return app._describe_functions()

    described = with_existing_store(app, call)
    if as_json:
        click.echo(json.dumps({"functions": described}, indent=2))
        return
    if not described:
        click.echo("no functions")
    for function in described:
        triggers = ", ".join(_trigger_text(t) for t in function["triggers"])
        options = ", ".join(function["options"])
        click.echo(
            f"{function['id']:<24}  {triggers}  retries={function['retries']}" + (f"  {options}" if options else "")
        )


@cli.command()
@click.option("--app", "app_spec", metavar="APP", default=None, help="Migrate the database of this app.")
@DATABASE_URL
def migrate(app_spec: str | None, database_url: str | None) -> None:
    """Create or upgrade the database schema."""
    app = store_app(app_spec, database_url)

    async def main() -> None:
        await app.start(worker=False)
        await app.close()

    run_async(main)
    click.echo(f"migrated {redact_url(app.database_url)}")


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
