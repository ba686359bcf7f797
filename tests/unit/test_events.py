from datetime import UTC, datetime

import pytest

from tarry import Event, InvalidEventError


def test_a_valid_event_keeps_its_fields() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    event = Event("app/x", {"a": [1, 2.5, None, True, {"b": "c"}]}, id="d-1", ts=when, key="k", v="2")
    assert event.name == "app/x"
    assert event.ts == 1893456000000
    assert event.to_json() == {"name": "app/x", "data": event.data, "id": "d-1", "ts": event.ts, "v": "2", "key": "k"}


def test_data_defaults_to_an_empty_object() -> None:
    assert Event("app/x").data == {}


@pytest.mark.parametrize(
    ("build", "field", "rule"),
    [
        (lambda: Event(""), "name", "non-empty"),
        (lambda: Event("   "), "name", "non-empty"),
        (lambda: Event(None), "name", "non-empty"),  # type: ignore[arg-type]
        (lambda: Event("x" * 257), "name", "at most 256"),
        (lambda: Event("a", [1, 2]), "data", "JSON object"),  # type: ignore[arg-type]
        (lambda: Event("a", "text"), "data", "JSON object"),  # type: ignore[arg-type]
        (lambda: Event("a", {"when": datetime.now(UTC)}), "data", "not JSON-serialisable"),
        (lambda: Event("a", {"x": {1, 2}}), "data", "not JSON-serialisable"),
        (lambda: Event("a", {"x": float("nan")}), "data", "JSON cannot hold"),
        (lambda: Event("a", {"x": {1: "int key"}}), "data", "not a string"),
        (lambda: Event("a", ts=-1), "ts", "epoch milliseconds"),
        (lambda: Event("a", ts="soon"), "ts", "epoch milliseconds"),  # type: ignore[arg-type]
        (lambda: Event("a", ts=True), "ts", "epoch milliseconds"),
        (lambda: Event("a", ts=2**63), "ts", "year 9999"),
        (lambda: Event("a", ts=datetime(2030, 1, 1)), "ts", "aware"),
        (lambda: Event("a", id=""), "id", "non-empty"),
        (lambda: Event("a", id=7), "id", "non-empty string"),  # type: ignore[arg-type]
        (lambda: Event("a", key=""), "key", "non-empty"),
        (lambda: Event("a", v=2), "v", "non-empty string"),  # type: ignore[arg-type]
    ],
)
def test_invalid_events_name_the_field_and_the_rule(build, field: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEventError) as info:
        build()
    assert field in str(info.value)
    assert rule in str(info.value)
    assert isinstance(info.value, ValueError)


def test_an_event_over_512_kib_is_refused_with_its_size() -> None:
    Event("a", {"blob": "x" * 500_000})  # under the limit
    with pytest.raises(InvalidEventError, match="524288 bytes"):
        Event("a", {"blob": "x" * 524_288})


def test_size_counts_utf8_bytes() -> None:
    with pytest.raises(InvalidEventError, match="limit"):
        Event("a", {"blob": "é" * 262_144})  # 524,288 bytes of UTF-8 plus the envelope


def test_from_json_refuses_unknown_fields_and_non_objects() -> None:
    with pytest.raises(InvalidEventError, match="unknown event field"):
        Event.from_json({"name": "a", "colour": "red"})
    with pytest.raises(InvalidEventError, match="JSON object"):
        Event.from_json(["a"])
    assert Event.from_json({"name": "a", "data": {"x": 1}}).data == {"x": 1}
