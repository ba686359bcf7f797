"""The store's JSON: strict about what cannot round-trip, and precise about where."""

import json
import re

import pytest

from tarry import _serde


def test_plain_json_round_trips_compactly() -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "é"}}
    assert _serde.dumps(value) == '{"a":[1,2.5,null,true],"b":{"c":"é"}}'
    assert _serde.loads(_serde.dumps(value)) == value


def test_tuples_are_written_as_arrays() -> None:
    assert _serde.dumps({"pair": (1, 2)}) == '{"pair":[1,2]}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": {1: "int key"}}, "$.x has a key 1 that is not a string"),
        ({"x": {1: "a", "1": "b"}}, "$.x has a key 1 that is not a string"),
        ({"x": [0, float("inf")]}, "$.x[1] is inf, which JSON cannot hold"),
        ({"x": object()}, "$.x is a object, which is not JSON-serialisable"),
    ],
)
def test_what_json_cannot_hold_is_named_by_its_path(value: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        _serde.dumps(value)
    assert str(info.value) == message


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        _serde.dumps({"x": "\ud800"})


def test_a_value_that_holds_itself_is_refused_not_walked_for_ever() -> None:
    loop: dict[str, object] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(TypeError, match="circular reference"):
        _serde.dumps({"x": loop})


@pytest.mark.parametrize("key", [1, -2, 1.5, True, False, None])
def test_a_key_json_would_turn_into_a_string_is_refused_wherever_it_is(key: object) -> None:
    for value, path in (({key: 1}, "$"), ({"a": 1, "b": {key: 1}}, "$.b"), ([{"a": 1}, {key: 1}], "$[1]")):
        with pytest.raises(TypeError, match=rf"^{re.escape(path)} has a key"):
            _serde.dumps(value)


@pytest.mark.parametrize(
    "value",
    [None, "é\n\"q\"", 3, -0.0, 1e300, [], {}, {"1": "a string key of digits", "true": "", "null": [1, "2"]},
     {"a": [{"b": (1, "x,\"1")}], "c": "\u2028", "d": 10**30}],
)  # fmt: skip
def test_what_is_written_is_what_json_writes(value: object) -> None:
    assert _serde.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert _serde.dumps_sized(value)[1] == len(_serde.dumps(value).encode())


def test_a_value_nested_past_the_limit_is_refused() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        _serde.dumps({"x": deep})
