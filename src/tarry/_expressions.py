"""``if_exp`` in CEL: compile, split into index terms, evaluate.

Compilation and evaluation are Google's CEL (``cel-expr-python``); nothing
here parses CEL text. To find the equality terms that become index keys we
read the *checked* syntax tree the library returns (a ``cel.expr.CheckedExpr``
protobuf), through a minimal protobuf schema of the fields we read.
Compiled expressions are cached by text: an expression is compiled once per
process, not once per wait.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from tarry._errors import ExpressionError

#: the paths of an incoming event that can be index terms
INDEXABLE_ROOTS = ("data", "key", "name")
NEVER = "!never"  # a match key no event has: a term whose trigger side is missing

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
    message("Expr", ("id", 2, T.TYPE_INT64, None, False), ("const_expr", 3, msg, ".tarry_cel.Constant", False),
            ("ident_expr", 4, msg, ".tarry_cel.Ident", False), ("select_expr", 5, msg, ".tarry_cel.Select", False),
            ("call_expr", 6, msg, ".tarry_cel.Call", False))  # fmt: skip
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
    return Compiled(text, program, tuple(terms), residual=len(terms) < len(conjuncts) or not terms)


def evaluate(compiled: Compiled, trigger: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """True only when the expression evaluates to ``true``; an error is no match."""
    result = compiled.program.eval(data={"event": trigger, "async": incoming})
    return bool(result.type() == cel.Type.BOOL and result.value() is True)


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

_MISSING = object()


def lookup(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in a JSON object, or ``_MISSING``."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _normal(value: Any) -> Any:
    """Equal under CEL equality -> equal key: 1 and 1.0 alike, containers recursively."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def match_key(values: list[Any]) -> str:
    """The index key of term values, in shape order; long keys are hashed to bound the index."""
    if any(v is _MISSING for v in values):
        return NEVER
    text = json.dumps([_normal(v) for v in values], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 96 else "#" + hashlib.sha256(text.encode()).hexdigest()


def event_key_for_shape(shape: str, incoming: dict[str, Any]) -> str | None:
    """The key an incoming event has for ``shape`` (sorted paths joined by '|'), None if it lacks a path."""
    values = [lookup(incoming, path) for path in shape.split("|")]
    if any(v is _MISSING for v in values):
        return None
    return match_key(values)
