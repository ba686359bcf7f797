"""Syncs of Inngest SDK apps: taken at ``POST /fn/register``, stored, and loaded by every process.

A sync is read whole (``config.read_sync``) before anything is stored; the
store keeps the last sync of each app, so a restarted ``tarry dev`` and every
``tarry worker`` run the same functions. A worker notices another process's
sync at its next heartbeat (``refresh``); the process that took it, at once.
``request_syncs`` is the other direction: ``tarry dev --sdk-url`` asks each
SDK to sync (a ``PUT`` to its serve endpoint), as Inngest's dev server does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from tarry._engine.engine import Engine
from tarry._errors import StoreError
from tarry._function import FunctionSpec
from tarry._sdk.config import SdkApp, SyncRefused, app_from_json, read_sync
from tarry._sdk.driver import driver, user_agent
from tarry._serde import loads
from tarry._store.base import SdkAppRow

log = logging.getLogger("tarry.sdk")

#: seconds between the tries of ``request_syncs`` while an SDK cannot be reached, at most
RETRY_MAX_S = 5.0
#: seconds between two syncs ``tarry dev`` asks of each SDK
RESYNC_S = 10.0
#: seconds between two looks at the stored syncs in a process without a worker (a worker looks at each heartbeat)
FOLLOW_S = 5.0


async def register(engine: Engine, body: object) -> bool:
    """Take a sync: ``True`` if it changed the app's functions; ``SyncRefused`` (nothing stored) if refused."""
    app = read_sync(body, driver)
    engine.registry.check_sdk_app(app.app_id, app.specs)  # before anything is stored (the store checks too)
    row = SdkAppRow(app.app_id, app.url, app.functions_json, app.digest, engine.clock.now_ms())
    modified = await engine.store.save_sdk_app(row)
    had_schedules = any(spec.trigger.crons for spec in _specs_of(engine, app.app_id))
    engine.registry.replace_sdk_app(app.app_id, app.specs)
    if modified and (had_schedules or any(spec.trigger.crons for spec in app.specs)):
        await engine.store.sync_schedules(engine.schedules(), engine.clock.now_ms())
    engine.sdk_version = await engine.store.sdk_apps_version()
    log.info("synced SDK app %r (%s): %d function(s)%s", app.app_id, app.url, len(app.specs),
             "" if modified else ", unchanged")  # fmt: skip
    return modified


def _specs_of(engine: Engine, app_id: str) -> list[FunctionSpec]:
    return [s for s in engine.registry.functions.values() if s.sdk is not None and s.sdk.app_id == app_id]


async def load(engine: Engine) -> None:
    """Register the functions of every stored sync in this process, if any changed since it last looked:
    one small read when none did (at start, at a worker's heartbeat, for a run of an unknown function)."""
    version = await engine.store.sdk_apps_version()
    if version == engine.sdk_version:
        return
    for row in await engine.store.sdk_apps():
        try:
            app = app_from_json(row.app_id, row.url, loads(row.functions), driver)
            engine.registry.replace_sdk_app(app.app_id, app.specs)
        except (SyncRefused, ValueError) as exc:  # stored by another version of Tarry, or an id taken here
            log.error("the stored sync of SDK app %r is not used: %s", row.app_id, exc)
    engine.sdk_version = version


async def follow(engine: Engine) -> None:
    """``load`` every ``FOLLOW_S`` seconds until cancelled: a process that runs no worker (a server with
    ``--no-worker``, an app that only sends) routes events to the functions other processes synced."""
    while True:
        await asyncio.sleep(FOLLOW_S)
        try:
            await load(engine)
        except StoreError:
            log.warning("cannot read the SDK syncs now; trying again in %s s", FOLLOW_S, exc_info=True)


async def request_syncs(urls: list[str], server_kind: str, echo: Callable[[str], None],
                        every_s: float | None = None) -> None:  # fmt: skip
    """Ask each SDK at ``urls`` to sync with this server (a ``PUT``), trying again until it answers; with
    ``every_s``, ask again that often for as long as the server runs (``tarry dev``: an SDK app reloaded
    with changed functions is synced again, as Inngest's dev server does), saying only what changed."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        await asyncio.gather(*(_request_sync(client, url, server_kind, echo, every_s) for url in urls))


async def _request_sync(client: httpx.AsyncClient, url: str, server_kind: str, echo: Callable[[str], None],
                        every_s: float | None) -> None:  # fmt: skip
    delay, said, last = 0.2, False, None
    while True:
        try:
            response = await client.put(url, headers={"x-inngest-server-kind": server_kind,
                                                      "user-agent": user_agent()})  # fmt: skip
        except httpx.HTTPError as exc:
            if not said:
                echo(f"sdk {url}: not reachable ({type(exc).__name__}); trying again until it is")
                said = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        delay, said = 0.2, False
        answer = response.text[:2000]
        failed = response.status_code >= 400 or '"error"' in answer
        if failed and answer != last:
            echo(f"sdk {url}: the sync failed ({response.status_code}): {answer}")
        elif not failed and (last is None or '"modified":true' in answer.replace(" ", "")):
            echo(f"sdk {url}: synced" if last is None else f"sdk {url}: synced again, its functions changed")
        last = answer
        if every_s is None:
            return
        await asyncio.sleep(every_s)


__all__ = ["RESYNC_S", "SdkApp", "SyncRefused", "follow", "load", "register", "request_syncs"]
