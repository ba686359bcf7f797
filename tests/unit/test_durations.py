from datetime import timedelta

import pytest

from tarry._durations import to_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        ("30 sec", 30_000),
        ("30 seconds", 30_000),
        ("5 min", 300_000),
        ("5 minutes", 300_000),
        ("2 hr", 7_200_000),
        ("2 hours", 7_200_000),
        ("1 day", 86_400_000),
        ("7 days", 604_800_000),
        ("1 week", 604_800_000),
        ("2 weeks", 1_209_600_000),
        ("365d", 365 * 86_400_000),
        ("0s", 0),
        ("30 Seconds", 30_000),
        ("2 Hours", 7_200_000),
    ],
)
def test_texts_of_the_grammar(text: str, ms: int) -> None:
    assert to_ms(text) == ms


def test_numbers_are_seconds_and_timedeltas_are_exact() -> None:
    assert to_ms(1.5) == 1500
    assert to_ms(2) == 2000
    assert to_ms(timedelta(minutes=2, milliseconds=5)) == 120_005


@pytest.mark.parametrize(
    "text", ["1 month", "2 years", "-5s", "", "abc", "366d", "53w", "5 parsecs", "1h 30", "ms", "1M", "2 M", "1y"]
)
def test_invalid_texts_raise_value_error_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        to_ms(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), True, None, [1], timedelta(days=-1)])
def test_invalid_values_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        to_ms(value)


def test_over_365_days_names_the_limit() -> None:
    with pytest.raises(ValueError, match="365 days"):
        to_ms(timedelta(days=366))
