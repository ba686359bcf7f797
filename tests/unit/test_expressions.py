"""CEL expressions: checking at the call, index terms read from the checked tree, evaluation."""

import pytest

from tarry import ExpressionError
from tarry._engine.waits import index_of
from tarry._expressions import NEVER, Term, compile_expression, evaluate, event_key_for_shape, match_key


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
