"""The docs hold: the README's first sample runs, every relative link resolves, the reference is current."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tarry

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted([README, ROOT / "benchmarks" / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown text, in order, without the indentation of a list item."""
    blocks = []
    for indent, body in re.findall(r"^( *)```python\n(.*?)^\1```", markdown, re.S | re.M):
        blocks.append("".join(line[len(indent) :] if line.strip() else line for line in body.splitlines(True)))
    return blocks


def without_code(markdown: str) -> str:
    """The text with its fenced code blocks left out (a link in a sample is not a link)."""
    return re.sub(r"^( *)```.*?^\1```", "", markdown, flags=re.S | re.M)


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a page (repeated headings get -1, -2...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.+)$", without_code(markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def load_generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the README's first sample ------------------------------------------------------


def test_the_readmes_first_sample_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(python_blocks(README.read_text())[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    env["TARRY_DATABASE_URL"] = "sqlite:///" + str(tmp_path / "shop.db")
    result = subprocess.run([sys.executable, "shop.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["welcome email to u-42", "waiting", "tips email to u-42", "tips sent"]
    assert (tmp_path / "shop.db").exists()  # the store it was pointed at, not ./.tarry


def test_the_quickstart_example_is_the_readmes_app_py() -> None:
    [_, app_py, *_] = python_blocks(README.read_text())
    assert (ROOT / "examples" / "quickstart.py").read_text() == app_py, "copy README's app.py to examples/quickstart.py"


# -- links -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for target in LINK.findall(without_code(page.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target} (no such file in the repository)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text()):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_markdown_file_named_is_in_the_repository(page: Path) -> None:
    named = re.findall(r"`([\w./-]+\.md)`", without_code(page.read_text()))
    missing = [n for n in named if not (page.parent / n).exists() and not (ROOT / n).exists()]
    assert not missing, f"{page.relative_to(ROOT)} names files that are not in the repository: {missing}"


# -- the reference ---------------------------------------------------------------------


def test_the_reference_page_is_what_the_code_says() -> None:
    expected = load_generator().render()
    committed = (ROOT / "docs" / "reference.md").read_text()
    if committed != expected:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True),
                                                 "docs/reference.md", "generated"))[:80])  # fmt: skip
        pytest.fail(
            "docs/reference.md differs from the code (a public name, a docstring or a CLI option changed, "
            f"or branches were merged): run ./scripts/reference and commit the page.\n{diff}"
        )


def test_the_reference_names_every_public_name() -> None:
    page = (ROOT / "docs" / "reference.md").read_text()
    for module in (tarry, tarry.testing):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType):
                assert f"## `{value.__name__}`" in page
            else:
                assert f"### `{module.__name__}.{name}`" in page


def test_a_public_name_without_a_docstring_stops_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarry.Tarry.idle, "__doc__", None)
    generator = load_generator()
    with pytest.raises(generator.MissingDocstring, match=r"tarry\.Tarry\.idle"):
        generator.render()


def test_the_reference_shows_each_commands_help() -> None:
    from tarry._cli import cli

    page = (ROOT / "docs" / "reference.md").read_text()
    for name in cli.commands:
        assert f"### `tarry {name}`" in page
    assert "TARRY_DATABASE_URL" in page
