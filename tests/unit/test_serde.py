"""The store's JSON: strict about what cannot round-trip, and precise about where."""

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
