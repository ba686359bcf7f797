"""The tarry command: migrate, --version, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tarry
from tests.cli.commands import seed_waiting_run

TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TARRY, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the line naming the database, which a command that uses one prints first."""
    lines = result.stderr.strip().splitlines()
    if lines and lines[0].startswith("database: "):
        lines = lines[1:]
    return lines


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and tarry.__version__ in result.stdout


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "cli.db")
    result = run("migrate", "--database-url", url)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cli.db").exists()


def test_migrate_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    result = run("migrate", env={"TARRY_DATABASE_URL": "sqlite:///" + str(tmp_path / "env.db")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_help_shows_each_options_environment_variable() -> None:
    assert "TARRY_DATABASE_URL" in run("migrate", "--help").stdout


def test_a_bad_database_url_is_one_line_and_a_non_zero_exit() -> None:
    result = run("migrate", "--database-url", "mysql://x")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "unknown scheme 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unopenable_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run("migrate", "--database-url", "sqlite:///" + str(tmp_path / "file" / "x.db"))
    assert result.returncode != 0 and "cannot create the folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr


APP = str(Path(__file__).resolve().parents[2] / "examples" / "onboarding.py") + ":app"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "must be module:attribute"),
        ("no_such_module_xyz:app", "cannot import 'no_such_module_xyz'"),
        ("missing/file.py:app", "no such file: missing/file.py"),
        ("json:nothing_here", "'json' has no attribute 'nothing_here'"),
        ("json:dumps", "not a tarry.Tarry app"),
    ],
)
def test_a_bad_app_is_one_line(spec: str, message: str) -> None:
    result = run("worker", spec)
    assert result.returncode == 1 and message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_an_app_whose_import_fails_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    result = run("worker", str(tmp_path / "broken.py") + ":app")
    assert result.returncode == 1 and "RuntimeError: boom" in result.stderr and "Traceback" not in result.stderr


def test_send_with_bad_json_data_is_one_line() -> None:
    for data, message in (("{oops", "--data is not JSON"), ("[1]", "--data must be a JSON object")):
        result = run("send", "app/x", "--data", data)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_send_to_an_unreachable_server_is_one_line() -> None:
    result = run("send", "app/x", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach the Tarry server at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_keys_refuses_to_start() -> None:
    env = {"TARRY_EVENT_KEYS": "", "TARRY_SIGNING_KEY": ""}
    result = run("serve", APP, env=env)
    assert result.returncode == 1 and "TARRY_EVENT_KEYS" in result.stderr
    result = run("serve", APP, env={**env, "TARRY_EVENT_KEYS": "event-key-0123456789"})
    assert result.returncode == 1 and "TARRY_SIGNING_KEY" in result.stderr


def test_every_option_shows_its_environment_variable() -> None:
    for command, variables in {
        "dev": ["TARRY_PORT", "TARRY_DATABASE_URL"],
        "serve": ["TARRY_HOST", "TARRY_PORT", "TARRY_EVENT_KEYS", "TARRY_SIGNING_KEY", "TARRY_WORKER"],
        "worker": ["TARRY_DATABASE_URL"],
        "send": ["TARRY_URL", "TARRY_EVENT_KEY"],
        "runs": ["TARRY_DATABASE_URL"],
        "run": ["TARRY_DATABASE_URL"],
        "cancel": ["TARRY_DATABASE_URL"],
    }.items():
        text = run(command, "--help").stdout
        for variable in variables:
            assert variable in text, f"tarry {command} --help does not show {variable}"


def test_runs_run_and_cancel_read_the_database(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "cli.db")
    run_id = seed_waiting_run(url)
    env = {"TARRY_DATABASE_URL": url}
    listed = run("runs", env=env)
    assert listed.returncode == 0 and run_id in listed.stdout and "waiting" in listed.stdout
    assert run("runs", "--status", "completed", env=env).stdout.strip() == "no runs"
    shown = run("run", run_id, env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["steps"][0]["kind"] == "wait_for_event"
    assert run("cancel", run_id, env=env).stdout.strip() == "cancelled"
    assert run("cancel", run_id, env=env).stdout.strip() == "already finished"
    missing = run("run", "nope", env=env)
    assert missing.returncode == 1 and "no run with id 'nope'" in missing.stderr
    assert run("runs", "--status", "bogus", env=env).returncode == 2


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = run("dev", APP, "--port", "70000")
    assert result.returncode == 2 and "70000" in result.stderr and "Traceback" not in result.stderr


def test_send_with_a_malformed_url_or_deep_data_is_one_line() -> None:
    result = run("send", "x", "--url", "http://[::1")
    assert result.returncode == 1 and "cannot reach" in result.stderr and "Traceback" not in result.stderr
    result = run("send", "x", "--data", "[" * 5000 + "]" * 5000)
    assert result.returncode == 1 and "--data is not JSON" in result.stderr and "Traceback" not in result.stderr


def test_dev_on_a_database_it_cannot_open_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    url = "sqlite:///" + str(tmp_path / "garbage.db")
    result = run("dev", APP, "--port", "18931", "--database-url", url)
    assert result.returncode == 1 and "garbage.db" in result.stderr
    assert result.stderr.strip().splitlines()[0].startswith(f"database: {url} (from --database-url, not ")
    assert len(error_lines(result)) == 1 and "Traceback" not in result.stderr


def test_dev_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("dev", APP, "--port", str(port), "--database-url", "sqlite:///" + str(tmp_path / "x.db"))
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
