"""tarry serve's keys: from the environment or a file, never the command line, at least 16 characters."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.cli.commands import APP, error_lines, free_port, run, start, stop, wait_healthy

EVENT_KEY = "event-key-0123456789"
SIGNING_KEY = "signing-key-0123456789"


def serve(*args: str, env: dict[str, str]) -> list[str]:
    """Run serve expecting a refusal; its one error line."""
    result = run("serve", APP, "--port", str(free_port()), *args, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    return lines


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"TARRY_EVENT_KEYS": "short", "TARRY_SIGNING_KEY": SIGNING_KEY}, "TARRY_EVENT_KEYS"),
        ({"TARRY_EVENT_KEYS": f"{EVENT_KEY},fifteen-chars-x", "TARRY_SIGNING_KEY": SIGNING_KEY}, "TARRY_EVENT_KEYS"),
        ({"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": "s3cret"}, "TARRY_SIGNING_KEY"),
        ({"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": "x" * 15}, "TARRY_SIGNING_KEY"),
    ],
)
def test_a_key_shorter_than_16_characters_is_refused(env: dict[str, str], setting: str) -> None:
    [line] = serve(env=env)
    assert setting in line and "at least 16" in line and "too short" in line
    assert "short" not in line.replace("too short", "") and "s3cret" not in line and "fifteen" not in line


def test_keys_on_the_command_line_are_refused(tmp_path: Path) -> None:
    env = {"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": SIGNING_KEY}
    [line] = serve("--signing-key", "a-key-typed-on-the-command-line", env=env)
    assert "--signing-key is not accepted" in line and "ps" in line and "--signing-key-file" in line
    assert "a-key-typed" not in line
    [line] = serve("--event-keys", "a-key-typed-on-the-command-line", env=env)
    assert "--event-keys is not accepted" in line and "--event-keys-file" in line


def test_keys_from_files(tmp_path: Path) -> None:
    (tmp_path / "signing.key").write_text(SIGNING_KEY + "\n")
    (tmp_path / "event.keys").write_text(f"{EVENT_KEY}\nsecond-event-key-0123, third-event-key-0123\n\n")
    port = free_port()
    env = {"TARRY_EVENT_KEYS": "", "TARRY_SIGNING_KEY": "", "TARRY_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}
    server = start("serve", APP, "--host", "127.0.0.1", "--port", str(port), "--signing-key-file",
                   str(tmp_path / "signing.key"), "--event-keys-file", str(tmp_path / "event.keys"), env=env)  # fmt: skip
    try:
        wait_healthy(server, port)
        base = f"http://127.0.0.1:{port}"
        for key in (EVENT_KEY, "second-event-key-0123", "third-event-key-0123"):
            assert httpx.post(f"{base}/e/{key}", json={"name": "x"}).status_code == 200
        assert httpx.post(f"{base}/e/other-event-key-0123", json={"name": "x"}).status_code == 401
        assert httpx.get(f"{base}/api/v1/runs").status_code == 401
        authorized = {"Authorization": f"Bearer {SIGNING_KEY}"}
        assert httpx.get(f"{base}/api/v1/runs", headers=authorized).status_code == 200
    finally:
        stop(server)


def test_key_files_from_the_environment_and_their_mistakes(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text("tiny\n")
    (tmp_path / "empty.keys").write_text("\n , \n")
    (tmp_path / "good.keys").write_text(EVENT_KEY)
    env = {"TARRY_EVENT_KEYS": "", "TARRY_SIGNING_KEY": SIGNING_KEY}
    [line] = serve(env={**env, "TARRY_EVENT_KEYS_FILE": str(tmp_path / "empty.keys")})
    assert f"--event-keys-file {tmp_path / 'empty.keys'} holds none" in line
    [line] = serve("--event-keys-file", str(tmp_path / "missing"), env=env)
    assert f"cannot read --event-keys-file {tmp_path / 'missing'}" in line
    env = {**env, "TARRY_EVENT_KEYS_FILE": str(tmp_path / "good.keys"), "TARRY_SIGNING_KEY": ""}
    [line] = serve(env={**env, "TARRY_SIGNING_KEY_FILE": str(tmp_path / "short.key")})
    assert f"--signing-key-file {tmp_path / 'short.key'}: the signing key is too short" in line and "tiny" not in line
    [line] = serve(env=env)
    assert "needs a signing key" in line and "TARRY_SIGNING_KEY" in line


KEYS_APP = """
import os

import tarry

app = tarry.Tarry("keys")


@app.function(trigger="keys/check")
async def check(ctx: tarry.Context) -> dict:
    handle = await ctx.step.resume_url("approve")
    seen = await ctx.step.run("environment", lambda: os.environ.get("TARRY_SIGNING_KEY"))
    await ctx.step.wait_for_resume("approve", handle)
    return {"seen": seen, "token": handle.token}
"""


def test_a_key_read_from_its_file_signs_resume_urls_and_stays_out_of_the_environment(tmp_path: Path) -> None:
    from tarry._engine.signing import derive_token

    (tmp_path / "keys_app.py").write_text(KEYS_APP)
    (tmp_path / "signing.key").write_text(SIGNING_KEY + "\n")
    port = free_port()
    env = {"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}  # no TARRY_SIGNING_KEY
    server = start("serve", f"{tmp_path / 'keys_app.py'}:app", "--host", "127.0.0.1", "--port", str(port),
                   "--signing-key-file", str(tmp_path / "signing.key"), env=env)  # fmt: skip
    try:
        wait_healthy(server, port)
        base, authorized = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {SIGNING_KEY}"}
        [event_id] = httpx.post(f"{base}/e/{EVENT_KEY}", json={"name": "keys/check"}).json()["ids"]
        for _ in range(200):
            runs = httpx.get(f"{base}/api/v1/events/{event_id}/runs", headers=authorized).json()["runs"]
            if runs and runs[0]["status"] == "waiting":
                break
            time.sleep(0.05)
        [run] = runs
        token = derive_token(SIGNING_KEY.encode(), run["id"], "approve")
        assert httpx.post(f"{base}/resume/{token}", json={}).status_code == 200, "signed with the file's key"
        for _ in range(200):
            done = httpx.get(f"{base}/api/v1/runs/{run['id']}", headers=authorized).json()
            if done["status"] == "completed":
                break
            time.sleep(0.05)
        assert done["output"] == {"seen": None, "token": token}, "the key is not handed on to the app's code"
    finally:
        stop(server)
