"""Loading APP: its sibling modules import, but files beside it never shadow Tarry's own packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.commands import free_port, run, start, stop, wait_healthy

SHADOWS = ("uvicorn", "h11", "starlette", "click", "httpx", "anyio")


def plant_shadows(folder: Path) -> None:
    """Modules named like Tarry's dependencies, each leaving a mark if it is ever imported."""
    for name in SHADOWS:
        (folder / f"{name}.py").write_text(
            f"from pathlib import Path\nPath(__file__).with_suffix('.imported').touch()\n"
            f"raise SystemExit('the {name}.py beside the app was imported')\n"
        )


def app_source(database: Path) -> str:
    return (
        "import tarry\n\nfrom helpers import greeting\n\n"
        f"app = tarry.Tarry(greeting(), database_url={'sqlite:///' + str(database)!r})\n"
    )


def assert_not_imported(folder: Path) -> None:
    assert sorted(p.name for p in folder.glob("*.imported")) == []


@pytest.mark.parametrize("form", ["file", "module"])
def test_dev_with_shadowing_files_beside_the_app(tmp_path: Path, form: str) -> None:
    plant_shadows(tmp_path)
    (tmp_path / "helpers.py").write_text("def greeting() -> str:\n    return 'beside'\n")
    (tmp_path / "myapp.py").write_text(app_source(tmp_path / "app.db"))
    spec = f"{tmp_path / 'myapp.py'}:app" if form == "file" else "myapp:app"
    port = free_port()
    server = start("dev", spec, "--port", str(port), cwd=tmp_path, console=True)  # the working directory holds them too
    wait_healthy(server, port)
    out, err = stop(server)
    assert "Tarry dev server for 'beside'" in out, err
    assert "Traceback" not in err
    assert_not_imported(tmp_path)


@pytest.mark.parametrize("name", ["click", "starlette", "uvicorn", "json"])
def test_an_app_file_named_like_a_package(tmp_path: Path, name: str) -> None:
    (tmp_path / "helpers.py").write_text("def greeting() -> str:\n    return 'named'\n")
    (tmp_path / f"{name}.py").write_text(app_source(tmp_path / "app.db"))
    result = run("migrate", "--app", f"{tmp_path / name}.py:app", cwd=tmp_path, console=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    port = free_port()
    server = start("dev", f"{tmp_path / name}.py:app", "--port", str(port), cwd=tmp_path, console=True)
    wait_healthy(server, port)
    out, err = stop(server)
    assert "Tarry dev server for 'named'" in out and "Traceback" not in err, err


def test_a_worker_with_shadowing_files_beside_the_app(tmp_path: Path) -> None:
    app_folder = tmp_path / "app"
    app_folder.mkdir()
    plant_shadows(app_folder)
    (app_folder / "helpers.py").write_text("def greeting() -> str:\n    return 'worker'\n")
    (app_folder / "myapp.py").write_text(app_source(tmp_path / "app.db"))
    worker = start("worker", f"{app_folder / 'myapp.py'}:app", console=True)
    assert worker.stdout is not None and "Tarry worker for 'worker'" in worker.stdout.readline()
    stop(worker)
    assert_not_imported(app_folder)
