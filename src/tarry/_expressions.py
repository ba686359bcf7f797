"""``if_exp`` in CEL: compile, split into index terms, evaluate.

Compilation and evaluation are Google's CEL (``cel-expr-python``); nothing
here parses CEL text. To find the equality terms that become index keys we
read the *checked* syntax tree the library returns (a ``cel.expr.CheckedExpr``
protobuf), through a minimal protobuf schema of the fields we read.
Compiled expressions are cached by text: an expression is compiled once per
process, not once per wait. Everything that runs on an incoming event
(``evaluate``, ``holds``, ``value_of``, ``match_key``, ``event_key_for_shape``) is total: whatever the
event holds, it answers (an error is "no match") and never raises.
"""

from __future__ import annotations

import _json
import functools
import hashlib
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from tarry._errors import ExpressionError

_MISSING: Any = object()  # a path an event lacks, or an expression with no value for an event
MISSING = _MISSING

#: the paths of an incoming event that can be index terms
INDEXABLE_ROOTS = ("data", "key", "name")
NEVER = "!never"  # a match key no event has: a term whose trigger side is missing
#: values nested deeper are not handed to CEL (no match): JSON parsed here stops near 1,000 levels anyway
MAX_DEPTH = 1000

_ENV = cel.NewEnv(variables={"event": cel.Type.DYN, "async": cel.Type.DYN})


def _syntax_messages() -> tuple[type[Any], type[Any]]:
    """The few messages of cel/expr/syntax.proto and checked.proto that term extraction reads."""
    f = descriptor_pb2.FileDescriptorProto(name="tarry_cel_subset.proto", package="tarry_cel", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        m = f.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            label = T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL
            fd = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                fd.type_name = type_name

    msg = T.TYPE_MESSAGE
    message("Ident", ("name", 1, T.TYPE_STRING, None, False))
    message("Select", ("operand", 1, msg, ".tarry_cel.Expr", False), ("field", 2, T.TYPE_STRING, None, False),
            ("test_only", 3, T.TYPE_BOOL, None, False))  # fmt: skip
    message("Call", ("target", 1, msg, ".tarry_cel.Expr", False), ("function", 2, T.TYPE_STRING, None, False),
            ("args", 3, msg, ".tarry_cel.Expr", True))  # fmt: skip
    message("Constant", ("null_value", 1, T.TYPE_INT32, None, False), ("bool_value", 2, T.TYPE_BOOL, None, False),
            ("int64_value", 3, T.TYPE_INT64, None, False), ("uint64_value", 4, T.TYPE_UINT64, None, False),
            ("double_value", 5, T.TYPE_DOUBLE, None, False), ("string_value", 6, T.TYPE_STRING, None, False))  # fmt: skip
    message("CreateList", ("elements", 1, msg, ".tarry_cel.Expr", True))
    message("Entry", ("map_key", 3, msg, ".tarry_cel.Expr", False), ("value", 4, msg, ".tarry_cel.Expr", False))
    message("CreateStruct", ("entries", 2, msg, ".tarry_cel.Entry", True))
    message("Comprehension", ("iter_var", 1, T.TYPE_STRING, None, False), ("iter_range", 2, msg, ".tarry_cel.Expr", False),
            ("accu_var", 3, T.TYPE_STRING, None, False), ("accu_init", 4, msg, ".tarry_cel.Expr", False),
            ("loop_condition", 5, msg, ".tarry_cel.Expr", False), ("loop_step", 6, msg, ".tarry_cel.Expr", False),
            ("result", 7, msg, ".tarry_cel.Expr", False), ("iter_var2", 8, T.TYPE_STRING, None, False))  # fmt: skip
    message("Expr", ("id", 2, T.TYPE_INT64, None, False), ("const_expr", 3, msg, ".tarry_cel.Constant", False),
            ("ident_expr", 4, msg, ".tarry_cel.Ident", False), ("select_expr", 5, msg, ".tarry_cel.Select", False),
            ("call_expr", 6, msg, ".tarry_cel.Call", False), ("list_expr", 7, msg, ".tarry_cel.CreateList", False),
            ("struct_expr", 8, msg, ".tarry_cel.CreateStruct", False),
            ("comprehension_expr", 9, msg, ".tarry_cel.Comprehension", False))  # fmt: skip
    for m in f.message_type:
        if m.name == "Expr":
            oneof = m.oneof_decl.add(name="expr_kind")
            for fd in m.field:
                if fd.number >= 3:
                    fd.oneof_index = 0
        if m.name == "Constant":
            m.oneof_decl.add(name="constant_kind")
            for fd in m.field:
                fd.oneof_index = 0
    del oneof
    message("CheckedExpr", ("expr", 4, msg, ".tarry_cel.Expr", False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    checked = message_factory.GetMessageClass(pool.FindMessageTypeByName("tarry_cel.CheckedExpr"))
    expr = message_factory.GetMessageClass(pool.FindMessageTypeByName("tarry_cel.Expr"))
    return checked, expr


_CheckedExpr, _Expr = _syntax_messages()


@dataclass(frozen=True)
class Term:
    """``async.<path> == <value>``: ``value`` is a constant, or the trigger's value at ``event_path``."""

    path: str
    constant: Any = None
    event_path: str | None = None


@dataclass(frozen=True)
class Compiled:
    text: str
    program: Any
    terms: tuple[Term, ...]
    residual: bool  # whether anything but the terms must be checked on a candidate
    # The paths of ``event`` and ``async`` the expression reads (None: it reads the whole variable):
    # only those parts of an event are handed to CEL, whose conversion costs the size of what it is given.
    event_paths: tuple[str, ...] | None = ()
    async_paths: tuple[str, ...] | None = ()


@functools.lru_cache(maxsize=4096)
def compile_expression(text: str) -> Compiled:
    """Compile ``text`` or raise ``ExpressionError`` with the library's reason."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(str(text), "an expression must be a non-empty string")
    try:
        program = _ENV.compile(text)
    except RuntimeError as exc:
        reason = str(exc).replace("INVALID_ARGUMENT: ", "").strip()
        raise ExpressionError(text, reason) from None
    packed = any_pb2.Any()
    packed.ParseFromString(program.serialize())
    checked = _CheckedExpr()
    checked.ParseFromString(packed.value)
    conjuncts = list(_conjuncts(checked.expr))
    terms = [t for t in (_term(c) for c in conjuncts) if t is not None]
    reads = _reads(checked.expr)
    return Compiled(text, program, tuple(terms), residual=len(terms) < len(conjuncts) or not terms,
                    event_paths=reads["event"], async_paths=reads["async"])  # fmt: skip


def evaluate(compiled: Compiled, trigger: dict[str, Any], incoming: dict[str, Any],
             budget: Budget | None = None) -> bool:  # fmt: skip
    """True only when the expression evaluates to ``true``; an error of any kind is no match.

    Total: the library's own limits (its iteration budget, say) surface as exceptions, not error
    values, and data nested deeper than it converts raises too; every one of them is "no match".
    With a ``budget``, the evaluation is charged what it hands to CEL, and refused (no match) past it."""
    try:
        if not _shallow(incoming):
            return False  # the library converts values recursively, and past some thousands of levels crashes
        data = {"event": project(trigger, compiled.event_paths), "async": project(incoming, compiled.async_paths)}
        if _deeper_than(data["event"], MAX_DEPTH):
            return False
        if budget is not None:
            size = _per_event(incoming, compiled.async_paths, lambda _: len(json.dumps(data["async"])))
            if not budget.charge(size + len(json.dumps(data["event"]))):
                return False
        result = compiled.program.eval(data=data)
        return bool(result.type() == cel.Type.BOOL and result.value() is True)
    except Exception:  # whatever the event holds, it does not match
        return False


def holds(compiled: Compiled, event: dict[str, Any], budget: Budget | None = None) -> bool:
    """Whether an expression over ``event`` alone (a trigger filter) evaluates to ``true``; an error of any
    kind, or a ``budget`` spent, is False (total, as ``evaluate``). The budget is charged the JSON handed
    to CEL: the parts of the event the expression reads."""
    try:
        if not _shallow(event):
            return False
        data = project(event, compiled.event_paths)
        if budget is not None and not budget.charge(len(json.dumps(data))):
            return False
        result = compiled.program.eval(data={"event": data, "async": {}})
        return bool(result.type() == cel.Type.BOOL and result.value() is True)
    except Exception:  # whatever the event holds, the filter does not hold
        return False


def value_of(compiled: Compiled, event: dict[str, Any]) -> Any:
    """The value of an expression over ``event`` alone (a flow-control key or priority), converted to
    JSON values; ``MISSING`` when it fails for this event, whatever the event holds (total)."""
    try:
        if not _shallow(event):
            return _MISSING
        data = project(event, compiled.event_paths)
        if _deeper_than(data, MAX_DEPTH):
            return _MISSING
        result = compiled.program.eval(data={"event": data, "async": {}})
        if result.type() == cel.Type.ERROR:
            return _MISSING
        return result.value()
    except Exception:  # whatever the event holds, the expression has no value for it
        return _MISSING


class Budget:
    """What the evaluations of one incoming event may still cost: a number of evaluations, and bytes
    of JSON handed to CEL (its conversion costs the size of what it is given). ``skipped`` counts the
    evaluations refused once it ran out."""

    def __init__(self, evaluations: int, size: int) -> None:
        self.evaluations = evaluations
        self.size = size
        self.skipped = 0

    def charge(self, size: int) -> bool:
        self.evaluations -= 1
        self.size -= size
        if self.evaluations < 0 or self.size < 0:
            self.skipped += 1
            return False
        return True


_PER_EVENT: dict[
    tuple[int, Any], tuple[Any, Any]
] = {}  # (id, what) -> (the object, held so its id stays its own; the answer)
_PER_EVENT_LOCK = threading.Lock()


def _per_event(value: Any, what: Any, compute: Any) -> Any:
    """``compute(value)``, once per incoming event however many waits test it (the store hands the same
    parsed event to every candidate, and never changes it)."""
    key = (id(value), what)
    with _PER_EVENT_LOCK:
        hit = _PER_EVENT.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
    answer = compute(value)
    with _PER_EVENT_LOCK:
        while len(_PER_EVENT) >= 8:  # each entry holds a parsed event alive: keep few
            del _PER_EVENT[next(iter(_PER_EVENT))]
        _PER_EVENT[key] = (value, answer)
    return answer


def _shallow(value: Any) -> bool:
    return bool(_per_event(value, "shallow", lambda v: not _deeper_than(v, MAX_DEPTH)))


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` levels deep (a loop: any depth is fine)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def project(value: Any, paths: tuple[str, ...] | None) -> Any:
    """The parts of a JSON object at ``paths`` (whole values there; everything for None): what CEL needs."""
    if paths is None or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for path in paths:
        source, target = value, out
        parts = path.split(".")
        for i, part in enumerate(parts):
            if not isinstance(source, dict) or part not in source:
                break  # missing: absent in the projection too, as it is in the event
            source = source[part]
            if i == len(parts) - 1 or not isinstance(source, dict):
                target[part] = source  # the whole value from here (a non-object ends the path as it would in CEL)
                break
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = target[part] = {}
            elif existing is source:
                break  # a shorter path took this value whole already
            target = existing
    return out


def _reads(expr: Any) -> dict[str, tuple[str, ...] | None]:
    """For ``event`` and ``async``: the select paths the expression reads from it, or None for all of it."""
    found: dict[str, set[str] | None] = {"event": set(), "async": set()}
    stack = [expr]
    while stack:
        node = stack.pop()
        kind = node.WhichOneof("expr_kind")
        if kind in ("select_expr", "ident_expr"):
            fields: list[str] = []
            inner = node
            while inner.WhichOneof("expr_kind") == "select_expr":
                fields.append(inner.select_expr.field)
                inner = inner.select_expr.operand
            if inner.WhichOneof("expr_kind") == "ident_expr":
                root = inner.ident_expr.name
                paths = found.get(root, set())
                if root in found and paths is not None:
                    if fields:
                        paths.add(".".join(reversed(fields)))
                    else:
                        found[root] = None
                continue
            stack.append(inner)
        elif kind == "call_expr":
            if node.call_expr.HasField("target"):
                stack.append(node.call_expr.target)
            stack.extend(node.call_expr.args)
        elif kind == "list_expr":
            stack.extend(node.list_expr.elements)
        elif kind == "struct_expr":
            for entry in node.struct_expr.entries:
                stack.extend(e for e in (entry.map_key, entry.value) if e.WhichOneof("expr_kind"))
        elif kind == "comprehension_expr":
            loop = node.comprehension_expr
            if {loop.iter_var, loop.iter_var2, loop.accu_var} & set(found):
                return {"event": None, "async": None}  # a loop variable shadows one of ours: read everything
            stack.extend((loop.iter_range, loop.accu_init, loop.loop_condition, loop.loop_step, loop.result))
    return {root: None if paths is None else tuple(sorted(paths)) for root, paths in found.items()}


def _conjuncts(expr: Any) -> Any:
    if expr.WhichOneof("expr_kind") == "call_expr" and expr.call_expr.function == "_&&_":
        for arg in expr.call_expr.args:
            yield from _conjuncts(arg)
    else:
        yield expr


def _path(expr: Any, root: str) -> str | None:
    """``a.b.c`` of a select chain rooted at the variable ``root``, else None."""
    fields: list[str] = []
    while expr.WhichOneof("expr_kind") == "select_expr" and not expr.select_expr.test_only:
        fields.append(expr.select_expr.field)
        expr = expr.select_expr.operand
    if expr.WhichOneof("expr_kind") == "ident_expr" and expr.ident_expr.name == root and fields:
        return ".".join(reversed(fields))
    return None


_NO_CONSTANT = object()


def _constant(expr: Any) -> Any:
    if expr.WhichOneof("expr_kind") != "const_expr":
        return _NO_CONSTANT
    kind = expr.const_expr.WhichOneof("constant_kind")
    if kind is None:
        return _NO_CONSTANT
    return None if kind == "null_value" else getattr(expr.const_expr, kind)


def _term(expr: Any) -> Term | None:
    if expr.WhichOneof("expr_kind") != "call_expr" or expr.call_expr.function != "_==_":
        return None
    args = list(expr.call_expr.args)
    if len(args) != 2:
        return None
    for mine, other in (args, reversed(args)):
        path = _path(mine, "async")
        if path is None or path.split(".")[0] not in INDEXABLE_ROOTS or (path != "key" and path.startswith("key.")):
            continue
        event_path = _path(other, "event")
        if event_path is not None:
            return Term(path, event_path=event_path)
        value = _constant(other)
        if value is not _NO_CONSTANT:
            return Term(path, constant=value)
    return None


# -- index keys -------------------------------------------------------------


def lookup(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in a JSON object, or ``_MISSING``."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _leaf(value: Any) -> str:
    """The canonical JSON of a scalar: 1 and 1.0 alike, as CEL's equality has them."""
    kind = type(value)
    if kind is str:
        return _json.encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


_SCALARS = (str, int, float, bool, type(None))


def canonical(value: Any) -> str:
    """Equal under CEL equality -> equal text: ``json.dumps`` with sorted keys and numbers normalised.

    Written as a loop, not a recursion, so that a value nested any number of levels deep has a key
    (the text is the one ``json.dumps(..., sort_keys=True)`` gives, which stored keys were made with)."""
    if type(value) is list and all(type(v) in _SCALARS for v in value):  # a key's values, most often
        return "[" + ",".join([_leaf(v) for v in value]) + "]"
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            out.append(item)
        elif isinstance(item, list):
            stack.append(_Text("]"))
            for i in range(len(item) - 1, -1, -1):
                stack.append(item[i])
                if i:
                    stack.append(_Text(","))
            stack.append(_Text("["))
        elif isinstance(item, dict):
            stack.append(_Text("}"))
            keys = sorted(item)
            for i in range(len(keys) - 1, -1, -1):
                stack.append(item[keys[i]])
                stack.append(_Text(json.dumps(keys[i], ensure_ascii=False) + ":"))
                if i:
                    stack.append(_Text(","))
            stack.append(_Text("{"))
        else:
            out.append(_leaf(item))
    return "".join(out)


class _Text(str):
    """Punctuation already rendered, as opposed to a string value still to encode."""


def match_key(values: list[Any]) -> str:
    """The index key of term values, in shape order; long keys are hashed to bound the index.

    Total: a value that has no JSON text (it cannot come from an event, which is JSON) gives ``NEVER``."""
    if any(v is _MISSING for v in values):
        return NEVER
    try:
        text = canonical(list(values))
    except Exception:  # not JSON: matches nothing
        return NEVER
    return text if len(text) <= 96 else "#" + hashlib.sha256(text.encode()).hexdigest()


def event_key_for_shape(shape: str, incoming: dict[str, Any]) -> str | None:
    """The key an incoming event has for ``shape`` (sorted paths joined by '|'), None if it lacks a path."""
    values = [lookup(incoming, path) for path in shape.split("|")]
    if any(v is _MISSING for v in values):
        return None
    return match_key(values)
