"""CEL expressions: checking at the call, index terms read from the checked tree, evaluation."""

import json

import pytest

from tarry import ExpressionError
from tarry._engine.waits import index_of
from tarry._expressions import (
    NEVER,
    Term,
    canonical,
    compile_expression,
    evaluate,
    event_key_for_shape,
    match_key,
    project,
)


def test_equality_conjuncts_become_terms_and_the_rest_a_residual() -> None:
    compiled = compile_expression(
        'event.data.userId == async.data.userId && async.data.amount > 100 && "gold" == async.data.tier'
    )
    assert compiled.terms == (Term("data.userId", event_path="data.userId"), Term("data.tier", constant="gold"))
    assert compiled.residual


def test_an_expression_of_terms_only_has_no_residual() -> None:
    compiled = compile_expression("async.data.id == event.data.id && async.key == 'k'")
    assert [t.path for t in compiled.terms] == ["data.id", "key"] and not compiled.residual


@pytest.mark.parametrize(
    "text",
    [
        "async.data.a == 1 || async.data.b == 2",  # a disjunction narrows nothing
        "async.data.a != 1",
        "async.data['a'] == 1",
        "size(async.data.items) == 2",
        "async.data.a == async.data.b",
        "async.id == 'x'",  # not an indexable root
    ],
)
def test_what_is_not_an_index_term(text: str) -> None:
    compiled = compile_expression(text)
    assert compiled.terms == () and compiled.residual


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("async.data.x ==", "Syntax error"),
        ("order.id == async.data.id", "undeclared reference to 'order"),
        ("async.data.x == 'unterminated", "Syntax error"),
        ("", "non-empty"),
    ],
)
def test_bad_expressions_raise_with_the_expression_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert reason in str(info.value) and info.value.expression == text


def test_evaluation_errors_and_non_booleans_are_no_match() -> None:
    compiled = compile_expression("async.data.amount > 100")
    assert evaluate(compiled, {}, {"data": {"amount": 101}})
    assert not evaluate(compiled, {}, {"data": {"amount": "lots"}})
    assert not evaluate(compiled, {}, {"data": {}})
    assert not evaluate(compile_expression("async.data.amount"), {}, {"data": {"amount": 5}}), "not a boolean"


def test_keys_follow_cel_equality_for_numbers() -> None:
    assert match_key([1]) == match_key([1.0])
    assert match_key(["1"]) != match_key([1])
    assert match_key([True]) != match_key([1])
    assert match_key([{"b": 1, "a": [2.0]}]) == match_key([{"a": [2], "b": 1}])
    assert match_key(["x" * 500]).startswith("#"), "long keys are hashed"


def test_the_wait_and_the_event_compute_the_same_key() -> None:
    trigger = {"data": {"userId": "u1", "n": 2}}
    terms = [
        Term("data.userId", event_path="data.userId"),
        Term("key", constant="k"),
        Term("data.n", event_path="data.n"),
    ]
    shape, key = index_of(terms, trigger)
    assert shape == "data.n|data.userId|key"
    assert event_key_for_shape(shape, {"data": {"userId": "u1", "n": 2.0}, "key": "k"}) == key
    assert event_key_for_shape(shape, {"data": {"userId": "u2", "n": 2}, "key": "k"}) != key
    assert event_key_for_shape(shape, {"data": {"userId": "u1"}, "key": "k"}) is None


def test_a_term_the_trigger_cannot_satisfy_never_matches() -> None:
    assert index_of([Term("data.userId", event_path="data.userId")], {"data": {}})[1] == NEVER
    contradiction = [Term("data.a", constant=1), Term("data.a", constant=2)]
    assert index_of(contradiction, {"data": {}})[1] == NEVER


def nested(levels: int, leaf: object = "u1") -> object:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def test_a_key_nested_any_number_of_levels_deep_is_computed_without_recursion() -> None:
    for levels in (500, 100_000):
        key = event_key_for_shape("data.userId", {"data": {"userId": nested(levels)}})
        assert key is not None and key.startswith("#"), "long keys are hashed"
        assert key == match_key([nested(levels)]), "the wait's side computes the same key"
    assert match_key([nested(3, 1.0)]) == match_key([nested(3, 1)])


def test_keys_are_the_canonical_json_the_index_always_held() -> None:
    value = {"b": [1.0, {"z": None, "y": True}], "a": 'é"', "c": 2.5, "d": -0.0}
    assert canonical(value) == json.dumps(
        {"b": [1, {"z": None, "y": True}], "a": "é\"", "c": 2.5, "d": 0}, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False,
    )  # fmt: skip
    assert match_key([object()]) == NEVER, "not JSON: matches nothing, raises nothing"


def test_evaluation_past_the_libraries_limits_is_no_match() -> None:
    compiled = compile_expression("async.data.items.exists(i, i == event.data.sku)")
    assert not evaluate(compiled, {"data": {"sku": 7}}, {"data": {"items": list(range(100, 10_100))}}), "budget"
    assert evaluate(compiled, {"data": {"sku": 7}}, {"data": {"items": [7]}})
    deep = compile_expression("async.data.userId == event.data.userId")
    assert not evaluate(deep, {"data": {"userId": "u1"}}, {"data": {"userId": nested(100_000)}}), "no crash"


def test_only_the_paths_an_expression_reads_are_handed_to_cel() -> None:
    compiled = compile_expression("async.data.items.exists(i, i == event.data.sku) && has(async.data.flag)")
    assert compiled.event_paths == ("data.sku",) and compiled.async_paths == ("data.flag", "data.items")
    assert compile_expression("async == event").async_paths is None, "the whole variable"
    event = {"data": {"items": [1], "blob": "x" * 10_000, "user": {"id": 1, "name": "n"}}, "key": "k"}
    assert project(event, ("data.items", "data.user.id", "data.missing.x")) == {
        "data": {"items": [1], "user": {"id": 1}}
    }
    assert project(event, ("data.user", "data.user.id")) == {"data": {"user": {"id": 1, "name": "n"}}}
    text = "async.data.user.id == 1 && size(async.data.items) == 1 && async.key == event.key"
    assert evaluate(compile_expression(text), {"key": "k"}, event)
