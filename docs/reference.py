"""Writes docs/reference.md: every public name of ``tarry`` and ``tarry.testing``, and the CLI's ``--help``.

Run it with ``./scripts/reference``. The page is made only from the code — signatures, the first
paragraph of each docstring, enum members' ``#:`` comments, click's help — so ``tests/unit/test_docs.py``
regenerates it in memory and fails when the committed page differs or a public name has no docstring.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

import tarry
import tarry.testing
from tarry._cli import cli

PAGE = Path(__file__).resolve().parent / "reference.md"
WIDTH = 100  # click's help is wrapped at this width, whatever the terminal
MADE_BY_TARRY = {"Context", "Step"}  # handed to functions (ctx, ctx.step); their constructors are internal

INTRO = """\
# Reference

Every public name of `tarry` (its `__all__`) and of `tarry.testing`, with its signature and the
first paragraph of its docstring, then the `--help` of every `tarry` command. How to use them:
the [guide](guide.md); the HTTP API: [server.md](server.md).

This page is generated from the code by `./scripts/reference`; `tests/unit/test_docs.py` fails when
it differs from what the code says, so a public name without a docstring, or a changed option,
shows up there. Edit the docstrings, not this page.

`Duration`, in signatures, is an `int` or `float` of seconds, a `datetime.timedelta`, or a text
such as `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"3d"`, `"1w"`, `"1h30m"` or `"2 hours"` (at most 365 days).
"""


class MissingDocstring(Exception):
    """Public names that have no docstring: the reference cannot describe them."""


class _Text:
    """An annotation written as source text, shown as it is (without the quotes ``repr`` would add)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty:
        return annotation
    if isinstance(annotation, str):
        return _Text(annotation)
    return _Text(inspect.formatannotation(annotation))


def signature(obj: Callable[..., Any], *, drop_first: bool = False) -> str:
    """``(params) -> return`` as written in the source, without ``self`` (and without a class's ``-> None``)."""
    sig = inspect.signature(obj)
    params = list(sig.parameters.values())
    if drop_first and params:
        params = params[1:]
    returns = inspect.Parameter.empty if isinstance(obj, type) else _annotation(sig.return_annotation)
    sig = sig.replace(
        parameters=[p.replace(annotation=_annotation(p.annotation)) for p in params], return_annotation=returns
    )
    return str(sig)


def first_paragraph(doc: str | None) -> str:
    """The docstring's first paragraph, its lines joined into one."""
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    text = " ".join(line.strip() for line in paragraph.splitlines())
    return re.sub(r"``(.+?)``", r"`\1`", text)  # reStructuredText's literals, as markdown's


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


class _Page:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.missing: list[str] = []

    def doc(self, qualname: str, obj: object) -> str:
        text = first_paragraph(getattr(obj, "__doc__", None))
        if not text:
            self.missing.append(qualname)
        return text

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)


def _members(cls: type) -> Iterator[tuple[str, str, Any]]:
    """(name, kind, object) of the public methods and properties a class defines itself, in source order."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, "property", value
        elif isinstance(value, classmethod):
            yield name, "classmethod", value.__func__
        elif isinstance(value, staticmethod):
            yield name, "staticmethod", value.__func__
        elif inspect.isfunction(value):
            yield name, "async" if inspect.iscoroutinefunction(value) else "method", value


def _enum_comments(cls: type[enum.Enum]) -> dict[str, str]:
    """The ``#:`` comment after each member of an enum, from its source."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        found = re.match(r"\s+(\w+)\s*=.*#:\s*(.+)$", line)
        if found:
            comments[found.group(1)] = found.group(2).strip()
    return comments


def _class(page: _Page, prefix: str, name: str, cls: type) -> None:
    page.add(f"### `{prefix}.{name}`", "")
    if issubclass(cls, enum.Enum):
        bases = [b.__name__ for b in cls.__bases__]
        page.add("```python", f"class {name}({', '.join(bases)})", "```", "")
        page.add(page.doc(f"{prefix}.{name}", cls), "")
        comments = _enum_comments(cls)
        for item in cls:
            text = comments.get(item.name, "")
            if not text:
                page.missing.append(f"{prefix}.{name}.{item.name}")
            page.add(f"- `{item.name} = {item.value!r}`: {text}")
        page.add("")
    else:
        own_init = "__init__" in vars(cls) or hasattr(cls, "__dataclass_fields__")
        bases = [b.__name__ for b in cls.__bases__ if b is not object and not b.__name__.startswith("_")]
        header = f"class {name}({', '.join(bases)})" if bases else f"class {name}"
        shown = f"{name}{signature(cls)}" if own_init and name not in MADE_BY_TARRY else header
        page.add("```python", shown, "```", "")
        page.add(page.doc(f"{prefix}.{name}", cls))
        if shown != header and bases:
            page.add("", f"A subclass of {', '.join(f'`{b}`' for b in bases)}.")
        page.add("")
    members = list(_members(cls))
    twins = [m for m, _, _ in members if m.endswith("_sync") and any(m[:-5] == n for n, _, _ in members)]
    for member, kind, value in members:
        if member in twins:
            continue
        qualname = f"{prefix}.{name}.{member}"
        if kind == "property":
            returns = _annotation(inspect.signature(value.fget).return_annotation)
            shown = f"{member}: {returns!r}" if returns is not inspect.Parameter.empty else member
            page.add(f"- `{shown}` (property): {page.doc(qualname, value)}")
        else:
            prefix_kind = {"async": "async ", "classmethod": "classmethod ", "staticmethod": "staticmethod "}
            drop = kind != "staticmethod"
            shown = f"{prefix_kind.get(kind, '')}{member}{signature(value, drop_first=drop)}"
            page.add(f"- `{shown}`: {page.doc(qualname, value)}")
    if twins:
        names = ", ".join(f"`{t}`" for t in twins)
        page.add(f"- Blocking twins, for plain `def` code and from any thread, same arguments: {names}.")
    if members:
        page.add("")


def _names(page: _Page, prefix: str, module: types.ModuleType) -> None:
    names = list(module.__all__)
    page.add("| name | |", "| --- | --- |")
    for name in names:
        obj = getattr(module, name)
        summary = first_paragraph(getattr(obj, "__doc__", None)).split(". ")[0].rstrip(".")
        target = obj.__name__ if isinstance(obj, types.ModuleType) else f"{prefix}.{name}"
        page.add(f"| [`{name}`](#{anchor(target)}) | {summary} |")
    page.add("")
    for name in names:
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType):
            continue  # a section of its own, which the table links to
        if isinstance(obj, type):
            _class(page, prefix, name, obj)
        elif callable(obj):
            page.add(f"### `{prefix}.{name}`", "", "```python", f"{name}{signature(obj)}", "```", "")
            page.add(page.doc(f"{prefix}.{name}", obj), "")
        else:
            page.add(f"### `{prefix}.{name}`", "", f"`{obj!r}`", "")


def cli_help() -> str:
    """The ``--help`` of ``tarry`` and of each of its commands, as markdown."""
    lines = ["## The command line", "", "The `--help` of `tarry` and of each command, as click prints it.", ""]
    with click.Context(cli, info_name="tarry", terminal_width=WIDTH, max_content_width=WIDTH) as root:
        lines += ["### `tarry`", "", "```text", cli.get_help(root), "```", ""]
        for name in cli.list_commands(root):
            command = cli.get_command(root, name)
            assert command is not None
            with click.Context(command, info_name=name, parent=root, terminal_width=WIDTH,
                               max_content_width=WIDTH) as ctx:  # fmt: skip
                lines += [f"### `tarry {name}`", "", "```text", command.get_help(ctx), "```", ""]
    return "\n".join(lines)


def render() -> str:
    """The whole page. Raises ``MissingDocstring`` naming every public name without a docstring."""
    page = _Page()
    page.add(INTRO, "## `tarry`", "", page.doc("tarry", tarry), "")
    _names(page, "tarry", tarry)
    page.add("## `tarry.testing`", "", page.doc("tarry.testing", tarry.testing), "")
    _names(page, "tarry.testing", tarry.testing)
    if page.missing:
        raise MissingDocstring("these public names need a docstring: " + ", ".join(page.missing))
    return "\n".join([*page.lines, cli_help()])


def main() -> None:
    try:
        text = render()
    except MissingDocstring as exc:
        sys.exit(f"error: {exc}")
    PAGE.write_text(text)
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
