"""The tarry command: migrate, --version, and one-line errors for user mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tarry

TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TARRY, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


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
