"""Tracebacks as Python prints them, and texts cut to what a store keeps for every failed attempt.

A traceback over ``MAX_BYTES`` keeps its innermost frames (where the error was raised) and the
exception's own lines: the outermost frames go first, each run of them replaced by one line saying how
many. Nothing here raises for any exception or text.
"""

from __future__ import annotations

import re
import traceback

#: the most a traceback or a message may take, as UTF-8
MAX_BYTES = 16_384
#: the most one run of lines that are not frames may take in a cut traceback (an exception's message)
MAX_BLOCK = 4_096
CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
FRAME, TEXT = 0, -1  # the kinds of a traceback's chunks; a kind > 0 is the count of frames a cut left out
_GAP = re.compile(r"  \[\.\.\. (\d+) frames? left out \.\.\.\]\n?")


def format_exception(exc: BaseException, cause: str | None = None) -> str:
    """``exc``'s traceback as ``traceback.format_exception`` prints it, after ``cause`` (the traceback
    text of what caused it, as Python prints a chained exception), cut to ``MAX_BYTES``."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception as bad:  # an exception nothing can format is still described
        text = f"{type(exc).__name__} (its traceback could not be formatted: {type(bad).__name__})\n"
    if cause:
        text = cause.rstrip("\n") + "\n" + CAUSE + text
    return cut(_valid(text))


def cut(text: str, limit: int = MAX_BYTES) -> str:
    """``text`` (a traceback) within ``limit`` bytes: long message lines cut, then the outermost frames
    left out, then, if still too long, only its end kept."""
    if _size(text) <= limit:
        return text
    chunks = [(kind, _head(chunk, MAX_BLOCK) if kind == TEXT else chunk) for kind, chunk in _chunks(text)]
    frames = sum(1 for kind, _ in chunks if kind == FRAME)
    low, high = 0, frames  # the fewest outermost frames to leave out; fits(frames) or nothing does
    while low < high:
        middle = (low + high) // 2
        if _size(_join(chunks, middle)) <= limit:
            high = middle
        else:
            low = middle + 1
    shown = _join(chunks, low)
    if _size(shown) <= limit:
        return shown
    return _tail(shown, limit)


def head(text: str, limit: int = MAX_BYTES) -> str:
    """``text`` (a message) within ``limit`` bytes: its start, and how much was left out."""
    return text if _size(text) <= limit else _head(text, limit, end="")


def _valid(text: str) -> str:
    """Lone surrogates (from a message or a file name) written as escapes: the text can be stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _head(text: str, limit: int, end: str = "\n") -> str:
    """The start of ``text`` and a line saying how much was left out, within ``limit`` bytes."""
    if _size(text) <= limit:
        return text
    data = text.encode("utf-8")
    budget = limit - len(f"... [{len(data)} bytes left out]{end}")  # the final count has no more digits
    kept = data[: max(0, budget)].decode("utf-8", "ignore")
    return f"{kept}... [{len(data) - len(kept.encode())} bytes left out]{end}"


def _tail(text: str, limit: int) -> str:
    """A line saying how much was left out and the end of ``text``, within ``limit`` bytes."""
    data = text.encode("utf-8")
    budget = limit - len(f"[... {len(data)} bytes left out ...]\n")
    kept = data[len(data) - max(0, budget) :].decode("utf-8", "ignore")
    return f"[... {len(data) - len(kept.encode())} bytes left out ...]\n{kept}"


def _chunks(text: str) -> list[tuple[int, str]]:
    """The text as frames (a ``File`` line and the lines under it: ``FRAME``), runs of other lines
    (``TEXT``), and the lines of an earlier cut (``n`` > 0 frames left out), in order."""
    chunks: list[tuple[int, str]] = []
    for line in text.splitlines(keepends=True):
        gap = _GAP.fullmatch(line)
        if gap:
            chunks.append((int(gap[1]), ""))
        elif line.startswith('  File "'):
            chunks.append((FRAME, line))
        elif chunks and chunks[-1][0] == FRAME and (line.startswith("    ") or line.startswith("  [Previous line")):
            chunks[-1] = (FRAME, chunks[-1][1] + line)
        elif chunks and chunks[-1][0] == TEXT:
            chunks[-1] = (TEXT, chunks[-1][1] + line)
        else:
            chunks.append((TEXT, line))
    return chunks


def _join(chunks: list[tuple[int, str]], leave_out: int) -> str:
    """The chunks with their first ``leave_out`` frames left out, each run of them (with the frames an
    earlier cut left out next to it) said in one line."""
    parts: list[str] = []
    run = 0
    for kind, chunk in chunks:
        if kind == FRAME and leave_out > 0:
            leave_out -= 1
            run += 1
            continue
        if kind > 0:
            run += kind
            continue
        if run:
            parts.append(_gap(run))
            run = 0
        parts.append(chunk)
    if run:
        parts.append(_gap(run))
    return "".join(parts)


def _gap(frames: int) -> str:
    return f"  [... {frames} frame{'s' if frames > 1 else ''} left out ...]\n"
