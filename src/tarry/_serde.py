"""JSON in and out of the store: compact, strict, one place.

Strict means what JSON can round-trip: str keys only, finite numbers, no
objects that ``json`` would silently coerce. Nothing here touches the store.
"""

from __future__ import annotations

import _json
import json
import math
import re
from typing import Any

JSON = Any

#: nesting levels ``check_json`` walks; ``json`` itself gives up near Python's recursion limit
MAX_DEPTH = 500
#: the most a step's result, a wait's result or a function's return value may take, as compact UTF-8 JSON
MAX_RESULT_BYTES = 4 * 1024 * 1024


def dumps(value: JSON, path: str = "$") -> str:
    """Compact JSON of ``value``; raises ``TypeError`` (naming the ``path`` of the first value JSON
    cannot hold) or ``ValueError`` if it is not JSON or is nested too deeply to encode.

    ``json``'s C encoder does the walk; the slower walk of ``check_json`` runs only when it refuses
    the value or, for a text that may hold a key it turned into a string, reads back something else.
    """
    return dumps_sized(value, path)[0]


def dumps_sized(value: JSON, path: str = "$") -> tuple[str, int]:
    """``dumps``, and the size of the JSON in UTF-8 bytes (measured by the check that it is valid Unicode)."""
    try:
        text = "".join(_encode(value, 0))
    except Exception:  # anything JSON cannot hold, a cycle, a deep value: the careful walk says which
        text = _dumps_checked(value, path)
    else:
        if _COERCED_KEY.search(text) is not None:
            try:
                if json.loads(text) != value:
                    check_json(value, path)  # a key json turned into a string: raises naming it
            except RecursionError:  # valid JSON, but deeper than the comparison can go
                raise ValueError(_too_deep(path)) from None
    return text, utf8_size(text)


def utf8_size(text: str) -> int:
    """The size of ``text`` in UTF-8 bytes; ``ValueError`` if it is not valid Unicode (a lone surrogate)."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a string is not valid Unicode (it holds a lone surrogate)") from None


def string(text: str) -> str:
    """A ``str`` as JSON (quoted, escaped, non-ASCII kept): what ``dumps`` writes for it."""
    return _json.encode_basestring(text)


def _dumps_checked(value: JSON, path: str) -> str:
    """The slow way of ``dumps_sized``, which names what is wrong when the fast encoder refused the value."""
    try:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_not_json)
        except ValueError as exc:
            if "Circular reference" in str(exc):  # check_json would walk the cycle for ever
                raise TypeError(f"{path} holds itself (a circular reference), which JSON cannot hold") from None
            check_json(value, path)  # raises naming the path
            raise
        except (TypeError, RecursionError):
            check_json(value, path)  # raises naming the path
            raise
        if json.loads(text) != value:
            check_json(value, path)
    except RecursionError:  # valid JSON, but deeper than the encoder (or the comparison) can go
        raise ValueError(_too_deep(path)) from None
    return text


def too_big(what: str, size: int) -> str | None:
    """Why a result of ``size`` bytes cannot be kept (``what`` names it: "step 'x' returned"), or None."""
    if size <= MAX_RESULT_BYTES:
        return None
    return f"{what} {size:,} bytes of JSON, over the limit of {MAX_RESULT_BYTES:,} bytes (4 MiB)"


def parse(body: bytes | str) -> JSON:
    """Parse JSON from outside (HTTP bodies, CLI options): strict, bounded, one ``ValueError`` for all faults."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"the body is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ValueError(f"malformed JSON: {exc}") from None


def _not_json(value: object) -> None:
    raise TypeError(f"a {type(value).__name__} is not JSON-serialisable")


#: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` without building an
#: encoder per call: the C encoder, made once. Without a table of the values being encoded (no check
#: for cycles) it keeps no state, so threads share it; a cycle ends in RecursionError, and then
#: ``_dumps_checked`` names it.
_encode = _json.make_encoder(None, _not_json, _json.encode_basestring, None, ":", ",", False, False, False)
#: where compact JSON may hold a key that ``json`` made a string of (an int, a float, True, False, None):
#: right after ``{`` or ``,`` (a quote inside a string is escaped, so ``,"`` is always the start of a key
#: or of a list's string). Only then is the text read back and compared with the value.
#: the C scanner of ``json.loads``' decoder: one value from an offset, returning it and where it ended
_scan: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in its __init__
_COERCED_KEY = re.compile(r'[{,]"(?:-?[0-9]|true"|false"|null")')


def _refuse_constant(name: str) -> None:
    raise ValueError(f"malformed JSON: {name} is not a JSON value")


def dumps_field(value: JSON, field: str) -> str:
    """``dumps`` for a user's argument: a ``ValueError`` naming ``field`` if it is not JSON."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid {field}: it must hold only JSON values ({exc})") from None


def loads(text: str | None) -> JSON:
    if text is None:
        return None
    try:  # what the store holds is compact: read by the C scanner alone, without json.loads' frames
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):  # leading space, or not JSON: json.loads says which
        return json.loads(text)
    if end != len(text):  # trailing space, or more after the value
        return json.loads(text)
    return value


def _too_deep(path: str) -> str:
    return f"{path} is nested too deeply to be stored as JSON (keep it under {MAX_DEPTH} levels)"


def check_json(value: JSON, path: str = "$") -> None:
    """Raise ``TypeError`` naming the path of the first value JSON cannot hold (``ValueError`` if
    it is nested deeper than ``MAX_DEPTH``: the path would be as long as the value is deep)."""
    stack: list[tuple[JSON, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(_too_deep(path))
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise TypeError(f"{where} is {item!r}, which JSON cannot hold")
            continue
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"{where} has a key {key!r} that is not a string")
                stack.append((sub, f"{where}.{key}", depth + 1))
            continue
        if isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))
            continue
        raise TypeError(f"{where} is a {type(item).__name__}, which is not JSON-serialisable")
