"""Resume URLs: resume_url, wait_for_resume and app.resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def approval(app: tarry.Tarry, links: list[tarry.ResumeHandle], timeout: str = "24h") -> None:
    @app.function(trigger="refund/requested")
    async def refund_approval(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url(
            "review-link", timeout=timeout, payload={"orderId": ctx.event.data["orderId"]},
            redirect_url="https://shop.example/thanks",
        )  # fmt: skip
        await ctx.step.run("email-manager", lambda: links.append(handle) or "emailed")
        decision = await ctx.step.wait_for_resume("wait-for-review", handle)
        return decision


async def test_approval_merges_the_payload_and_is_single_use(app: tarry.Tarry) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"orderId": "o-1"}))
        assert run.status == "waiting"
        [handle] = links
        assert handle.url == "/resume/" + handle.token
        assert handle.redirect_url == "https://shop.example/thanks"
        assert await app.resume(handle.token, {"approve": "true"}) is True
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert await app.resume(handle.token, {"approve": "false"}) is False, "a token resumes once"
    assert done.output == {"orderId": "o-1", "event": {"approve": "true"}}
    assert [s.kind for s in done.steps] == ["resume_url", "run", "wait_for_resume"]


async def test_a_resume_without_data_gives_event_none(app: tarry.Tarry) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"orderId": "o-2"}))
        assert await app.resume(links[0].token) is True
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"orderId": "o-2", "event": None}


async def test_the_url_uses_the_base_url_and_replays_to_the_same_token(make_app, clock: VirtualClock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(base_url="https://tarry.example/")
    seen: list[str] = []

    @app.function(trigger="link/start")
    async def link(ctx: tarry.Context) -> str:
        handle = await ctx.step.resume_url("link", timeout="1h")
        seen.append(handle.url)  # outside a step: runs on every replay
        await ctx.step.sleep("s", "1m")
        return handle.url

    async with app:
        run = await start_run(app, tarry.Event("link/start"))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output.startswith("https://tarry.example/resume/")
    assert seen == [done.output, done.output]
    token = done.output.rsplit("/", 1)[1]
    assert len(token) >= 22, "at least 128 bits"


async def test_the_database_holds_no_usable_token(app: tarry.Tarry, db_url: str) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links)
    async with app:
        await start_run(app, tarry.Event("refund/requested", {"orderId": "o-3"}))
    token = links[0].token
    assert token not in database_text(db_url)


def database_text(db_url: str) -> str:
    """Every row of every table, as text (and the SQLite files' bytes)."""
    if db_url.startswith("sqlite:"):
        path = Path(db_url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            dump = "\n".join(conn.iterdump())
        raw = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*") if f.name.endswith((".db", "-wal")))
        return dump + raw.decode("latin-1")
    import psycopg

    with psycopg.connect(db_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(str(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))


async def test_the_token_depends_on_a_secret_outside_the_database(make_app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tokens = []
    for secret in ("one-secret", "another-secret"):
        monkeypatch.setenv("TARRY_SIGNING_KEY", secret)
        links: list[tarry.ResumeHandle] = []
        app = make_app()
        approval(app, links)
        async with app:
            await start_run(app, tarry.Event("refund/requested", {"orderId": "o"}))
        tokens.append(links[0].token)
    assert tokens[0] != tokens[1]


async def test_a_resume_before_the_wait_is_kept_and_delivered(app: tarry.Tarry, clock: VirtualClock) -> None:
    handles: list[tarry.ResumeHandle] = []

    @app.function(trigger="early/start")
    async def early(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", timeout="1d", payload={"p": 1})
        await ctx.step.run("share", lambda: handles.append(handle))
        await ctx.step.sleep("prepare", "1h")
        return await ctx.step.wait_for_resume("wait", handle)

    async with app:
        run = await start_run(app, tarry.Event("early/start"))
        assert run.status == "sleeping"
        assert await app.resume(handles[0].token, {"ok": 1}) is True, "an early resume counts as a success"
        assert await app.resume(handles[0].token, {"ok": 2}) is False
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == {"p": 1, "event": {"ok": 1}}


async def test_an_expired_handle_times_out_and_refuses_resumes(app: tarry.Tarry, clock: VirtualClock) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links, timeout="2h")
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"orderId": "o-4"}))
        await clock.advance("2h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert await app.resume(links[0].token, {"late": True}) is False
    assert done.status == "completed" and done.output is None


async def test_wait_for_resume_on_timeout_fail(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="strict/start")
    async def strict(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", timeout="1h")
        return await ctx.step.wait_for_resume("wait", handle, on_timeout="fail")

    async with app:
        run = await start_run(app, tarry.Event("strict/start"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "failed" and done.error["name"] == "WaitTimeoutError"


async def test_unknown_used_or_expired_tokens_change_nothing(app: tarry.Tarry, clock: VirtualClock) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"orderId": "o-5"}))
        for token in ("", "not-a-token", links[0].token + "x", links[0].token[:-1]):
            assert await app.resume(token, {"x": 1}) is False
        assert (await app.get_run(run.id)).status == "waiting"
        with pytest.raises(ValueError, match="JSON object"):
            await app.resume(links[0].token, ["not", "a", "dict"])  # type: ignore[arg-type]
        assert await app.resume(links[0].token, {"x": 1}) is True


async def test_a_resume_for_a_cancelled_run_is_refused(app: tarry.Tarry) -> None:
    links: list[tarry.ResumeHandle] = []
    approval(app, links)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"orderId": "o-6"}))
        assert await app.cancel_run(run.id)
        assert await app.resume(links[0].token) is False


async def test_bad_resume_options_are_refused(app: tarry.Tarry) -> None:
    errors: list[str] = []

    @app.function(trigger="opts/start")
    async def opts(ctx: tarry.Context) -> None:
        for options in ({"timeout": "1 year"}, {"payload": ["x"]}, {"redirect_url": ""}):
            try:
                await ctx.step.resume_url("link", **options)  # type: ignore[arg-type]
            except ValueError as err:
                errors.append(str(err))
        try:
            await ctx.step.wait_for_resume("w", "a-token")  # type: ignore[arg-type]
        except ValueError as err:
            errors.append(str(err))

    async with app:
        await start_run(app, tarry.Event("opts/start"))
    assert len(errors) == 4
    assert "timeout" in errors[0] and "payload" in errors[1] and "redirect_url" in errors[2] and "handle" in errors[3]


async def test_resume_in_a_plain_def_function(app: tarry.Tarry) -> None:
    handles: list[tarry.ResumeHandle] = []

    @app.function(trigger="sync/approve")
    def sync_approve(ctx: tarry.Context) -> Any:
        handle = ctx.step.resume_url_sync("link", timeout="1h")
        ctx.step.run_sync("share", lambda: handles.append(handle))
        return ctx.step.wait_for_resume_sync("wait", handle)

    async with app:
        run = await start_run(app, tarry.Event("sync/approve"))
        assert app.resume_sync is not None
        assert await app.resume(handles[0].token, {"a": "b"})
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"event": {"a": "b"}}
