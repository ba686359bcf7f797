"""tarry serve's dashboard key: from the environment or a file, at least 16 characters; a real process signs in."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.commands import APP, error_lines, free_port, run, start, stop, wait_healthy

EVENT_KEY = "event-key-0123456789"
SIGNING_KEY = "signing-key-0123456789"
DASHBOARD_KEY = "dashboard-key-0123456789"
KEYS = {"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": SIGNING_KEY}


def refusal(*args: str, env: dict[str, str]) -> str:
    """Run serve expecting a refusal; its one error line."""
    result = run("serve", APP, "--port", str(free_port()), *args, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    [line] = error_lines(result)
    return line


@pytest.mark.parametrize("key", ["short", "x" * 15])
def test_a_dashboard_key_shorter_than_16_characters_is_refused(key: str) -> None:
    line = refusal(env={**KEYS, "TARRY_DASHBOARD_KEY": key})
    assert "TARRY_DASHBOARD_KEY" in line and "too short" in line and "at least 16" in line
    assert key not in line.replace("too short", "")


def test_the_dashboard_key_must_differ_from_the_signing_key() -> None:
    line = refusal(env={**KEYS, "TARRY_DASHBOARD_KEY": SIGNING_KEY})
    assert "TARRY_DASHBOARD_KEY must differ from TARRY_SIGNING_KEY" in line and SIGNING_KEY not in line


def test_the_dashboard_key_is_refused_on_the_command_line_and_its_file_mistakes_are_named(tmp_path: Path) -> None:
    line = refusal("--dashboard-key", "a-key-typed-on-the-command-line", env=KEYS)
    assert "--dashboard-key is not accepted" in line and "--dashboard-key-file" in line and "a-key-typed" not in line
    (tmp_path / "empty.key").write_text("\n")
    line = refusal("--dashboard-key-file", str(tmp_path / "empty.key"), env=KEYS)
    assert f"--dashboard-key-file {tmp_path / 'empty.key'} holds no key" in line
    line = refusal(env={**KEYS, "TARRY_DASHBOARD_KEY_FILE": str(tmp_path / "missing")})
    assert f"cannot read --dashboard-key-file {tmp_path / 'missing'}" in line
    (tmp_path / "short.key").write_text("tiny\n")
    line = refusal("--dashboard-key-file", str(tmp_path / "short.key"), env=KEYS)
    assert "the dashboard key is too short (4 characters)" in line and "tiny" not in line


def test_help_shows_the_dashboard_key_settings() -> None:
    text = run("serve", "--help").stdout
    assert "TARRY_DASHBOARD_KEY_FILE" in text and "TARRY_DASHBOARD_KEY" in text and "--dashboard-key-file" in text


def test_without_a_dashboard_key_serve_says_so_and_serves_no_dashboard(tmp_path: Path) -> None:
    port = free_port()
    env = {**KEYS, "TARRY_DATABASE_URL": f"sqlite:///{tmp_path}/off.db"}
    server = start("serve", APP, "--host", "127.0.0.1", "--port", str(port), env=env)
    wait_healthy(server, port)
    page = httpx.get(f"http://127.0.0.1:{port}/")
    assert page.status_code == 404 and "set TARRY_DASHBOARD_KEY (at least 16 characters)" in page.text
    _, err = stop(server)
    assert "dashboard: off (set TARRY_DASHBOARD_KEY" in err


def test_a_real_server_signs_in_with_the_key_of_its_file_and_marks_the_cookie_secure_behind_a_tls_proxy(
    tmp_path: Path,
) -> None:
    (tmp_path / "dashboard.key").write_text(DASHBOARD_KEY + "\n")
    port = free_port()
    env = {**KEYS, "TARRY_DATABASE_URL": f"sqlite:///{tmp_path}/on.db", "TARRY_DASHBOARD_KEY": ""}
    server = start("serve", APP, "--host", "127.0.0.1", "--port", str(port), "--dashboard-key-file",
                   str(tmp_path / "dashboard.key"), env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(server, port)
        assert 'id="signin"' in httpx.get(base + "/").text
        wrong = httpx.post(base + "/dashboard/sign-in", data={"key": SIGNING_KEY})
        assert wrong.status_code == 401 and "That dashboard key is wrong." in wrong.text
        right = httpx.post(base + "/dashboard/sign-in", data={"key": DASHBOARD_KEY})
        assert right.status_code == 303 and not right.headers["set-cookie"].endswith("Secure")
        cookie = right.headers["set-cookie"].split(";")[0]
        assert httpx.get(base + "/api/v1/runs", headers={"cookie": cookie}).status_code == 200
        page = httpx.get(base + "/", headers={"cookie": cookie})
        assert 'name="tarry-csrf"' in page.text and "/static/app.js" in page.text
        # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS): a TLS proxy on this host
        proxied = httpx.post(base + "/dashboard/sign-in", data={"key": DASHBOARD_KEY},
                             headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"})  # fmt: skip
        assert proxied.status_code == 303 and proxied.headers["set-cookie"].endswith("; Secure")
    finally:
        _, err = stop(server)
    assert "dashboard: off" not in err and DASHBOARD_KEY not in err
    assert "dashboard sign-in with a wrong key from 127.0.0.1" in err
