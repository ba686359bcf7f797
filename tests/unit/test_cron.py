"""``tarry.Cron`` (API §10): what an expression means, its ticks in a zone across daylight-saving changes, and
every expression or zone it refuses. Where the cron library reads an expression otherwise than the contract,
a test below names the case."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

import tarry
from tarry._cron import latest_tick, next_tick, tick_data

BERLIN = "Europe/Berlin"


def ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def ticks(cron: tarry.Cron, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` ticks strictly after ``after``, as UTC datetimes."""
    found, at = [], ms(after)
    for _ in range(count):
        nxt = next_tick(cron, at)
        assert nxt is not None
        found.append(datetime.fromtimestamp(nxt / 1000, UTC))
        at = nxt
    return found


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ticks_between(cron: tarry.Cron, start: datetime, end: datetime) -> list[datetime]:
    found, at = [], ms(start)
    while (nxt := next_tick(cron, at)) is not None and nxt <= ms(end):
        found.append(datetime.fromtimestamp(nxt / 1000, UTC))
        at = nxt
    return found


# -- the value --------------------------------------------------------------------------------


def test_a_cron_is_a_frozen_value_with_a_readable_repr() -> None:
    cron = tarry.Cron("0 9 * * MON-FRI", timezone=BERLIN)
    assert repr(cron) == "Cron('0 9 * * MON-FRI', timezone='Europe/Berlin')"
    assert repr(tarry.Cron("@hourly")) == "Cron('@hourly')"
    assert cron == tarry.Cron("0 9 * * MON-FRI", timezone=BERLIN)
    assert cron != tarry.Cron("0 9 * * MON-FRI")  # another zone: another schedule
    assert len({cron, tarry.Cron("0 9 * * MON-FRI", timezone=BERLIN)}) == 1
    assert (cron.expression, cron.timezone, tarry.Cron("@daily").timezone) == ("0 9 * * MON-FRI", BERLIN, "UTC")
    with pytest.raises(AttributeError):
        cron.expression = "@daily"  # type: ignore[misc]
    with pytest.raises(TypeError):
        tarry.Cron("@daily", BERLIN)  # type: ignore[misc]  # the zone is keyword-only


# -- the five fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/20 10 * * *", [utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 10, 20), utc(2026, 1, 5, 10, 40)]),  # a step
        (
            "5,35 10-11 * * *",
            [utc(2026, 1, 5, 10, 5), utc(2026, 1, 5, 10, 35), utc(2026, 1, 5, 11, 5)],
        ),  # lists, ranges
        ("0 8-18/5 * * *", [utc(2026, 1, 5, 8), utc(2026, 1, 5, 13), utc(2026, 1, 5, 18)]),  # a stepped range
        ("0 0 1 FEB,MAR *", [utc(2026, 2, 1), utc(2026, 3, 1), utc(2027, 2, 1)]),  # month names
        ("0 0 * * sat", [utc(2026, 1, 10), utc(2026, 1, 17), utc(2026, 1, 24)]),  # day names, any case
        ("0 0 * * 0", [utc(2026, 1, 11), utc(2026, 1, 18), utc(2026, 1, 25)]),  # 0 is Sunday
        ("0 0 * * 7", [utc(2026, 1, 11), utc(2026, 1, 18), utc(2026, 1, 25)]),  # and so is 7
        ("0 0 * * 5-7", [utc(2026, 1, 9), utc(2026, 1, 10), utc(2026, 1, 11)]),  # Friday to Sunday
        # a restricted day of month and day of week: either matches (Vixie cron's OR)
        ("0 0 13 * FRI", [utc(2026, 1, 9), utc(2026, 1, 13), utc(2026, 1, 16)]),
        # a day field starting with * is unrestricted, as in Vixie cron: then both must match
        ("0 0 */2 * FRI", [utc(2026, 1, 9), utc(2026, 1, 23), utc(2026, 2, 13)]),
        ("0 0 * 1 MON", [utc(2026, 1, 5), utc(2026, 1, 12), utc(2026, 1, 19)]),
        # the library's extensions: the last day of the month, its last Friday, its first Monday
        ("0 0 L * *", [utc(2026, 1, 31), utc(2026, 2, 28), utc(2026, 3, 31)]),
        ("0 0 * * 5L", [utc(2026, 1, 30), utc(2026, 2, 27), utc(2026, 3, 27)]),
        ("0 0 * * MON#1", [utc(2026, 1, 5), utc(2026, 2, 2), utc(2026, 3, 2)]),
    ],
)
def test_fields_names_ranges_steps_and_lists(expression: str, expected: list[datetime]) -> None:
    assert ticks(tarry.Cron(expression), utc(2026, 1, 5, 0, 0) - timedelta(seconds=1), 3) == expected


@pytest.mark.parametrize(
    ("macro", "fields"),
    [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
     ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@hourly", "0 * * * *"), ("@HOURLY", "0 * * * *")],
)  # fmt: skip
def test_macros_mean_their_five_fields(macro: str, fields: str) -> None:
    # the library reads no macro: Cron expands them
    start = utc(2026, 1, 5, 10, 30)
    assert ticks(tarry.Cron(macro, timezone=BERLIN), start, 3) == ticks(tarry.Cron(fields, timezone=BERLIN), start, 3)
    assert tarry.Cron(macro).expression == macro  # kept as written (the tick's data.cron)


def test_a_tick_is_strictly_after_the_instant_asked_about() -> None:
    hourly = tarry.Cron("@hourly")
    assert next_tick(hourly, ms(utc(2026, 1, 5, 11))) == ms(utc(2026, 1, 5, 12))
    assert next_tick(hourly, ms(utc(2026, 1, 5, 11)) - 1) == ms(utc(2026, 1, 5, 11))
    assert next_tick(hourly, ms(utc(2026, 1, 5, 11)) + 1) == ms(utc(2026, 1, 5, 12))


def test_the_latest_of_several_missed_ticks() -> None:
    minutely, weekly = tarry.Cron("* * * * *"), tarry.Cron("0 9 * * MON")
    due, now = ms(utc(2026, 1, 1)), ms(utc(2026, 3, 1, 12, 30, 30))
    assert latest_tick(minutely, due, now) == ms(utc(2026, 3, 1, 12, 30))
    assert latest_tick(weekly, ms(utc(2025, 1, 6, 9)), now) == ms(utc(2026, 2, 23, 9))
    assert latest_tick(weekly, ms(utc(2026, 2, 23, 9)), ms(utc(2026, 2, 23, 9))) == ms(utc(2026, 2, 23, 9))  # not late


def test_a_tick_event_names_the_schedule_and_its_instant() -> None:
    cron = tarry.Cron("@daily", timezone=BERLIN)
    assert tick_data(cron, ms(utc(2026, 1, 4, 23))) == {
        "cron": "@daily", "timezone": BERLIN, "scheduled_at": "2026-01-04T23:00:00Z"
    }  # fmt: skip


# -- daylight saving: Europe/Berlin moves from 02:00 to 03:00 on 2026-03-29, from 03:00 to 02:00 on 2026-10-25


def test_a_local_time_skipped_by_the_change_fires_once_at_the_first_instant_after_the_gap() -> None:
    cron = tarry.Cron("30 2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, where the gap ends
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    cron = tarry.Cron("30 2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # counted from the second 02:10 (CET): today's 02:30 came first, in CEST, so the next is tomorrow
    assert ticks(cron, utc(2026, 10, 25, 1, 10), 1) == [utc(2026, 10, 26, 1, 30)]


def test_every_hour_fires_every_real_hour_across_both_changes() -> None:
    hourly = tarry.Cron("0 * * * *", timezone=BERLIN)
    march = ticks_between(hourly, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))  # the local day of 23 hours
    october = ticks_between(hourly, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))  # and of 25 hours
    for day, hours in ((march, 23), (october, 25)):
        assert len(day) == hours
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(day))


def test_skipped_local_times_of_a_fixed_hour_fire_once_together() -> None:
    # `*/30 2`: the library finds no tick in the gap at all; the contract fires one at its end
    cron = tarry.Cron("*/30 2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 3, 28, 12), 3) == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0), utc(2026, 3, 30, 0, 30)]


def test_repeated_local_times_of_a_fixed_hour_fire_once() -> None:
    # `*/30 2`: the library fires 02:00 and 02:30 twice (its minute field starts with *); the hour is fixed
    cron = tarry.Cron("*/30 2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1),
    ]


def test_a_stepped_hour_fires_every_real_hour_it_names() -> None:
    # `0-23/2`: the library reads it as a fixed hour (it does not start with *) and fires 02:00 once
    cron = tarry.Cron("0 0-23/2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 10, 24, 21), 4) == [
        utc(2026, 10, 24, 22),  # 00:00 CEST
        utc(2026, 10, 25, 0),  # 02:00 CEST
        utc(2026, 10, 25, 1),  # 02:00 CET, the same local hour shown again
        utc(2026, 10, 25, 3),  # 04:00 CET
    ]
    assert ticks(tarry.Cron("0 */2 * * *", timezone=BERLIN), utc(2026, 10, 24, 21), 4) == ticks(
        cron, utc(2026, 10, 24, 21), 4
    )


def test_a_stepped_hour_never_shown_on_the_clock_does_not_fire() -> None:
    cron = tarry.Cron("0 */2 * * *", timezone=BERLIN)
    assert ticks(cron, utc(2026, 3, 28, 22), 3) == [utc(2026, 3, 28, 23), utc(2026, 3, 29, 2), utc(2026, 3, 29, 4)]


def test_a_day_a_zone_skipped_whole() -> None:
    # Samoa skipped 2011-12-30: that day's 12:30 fires at the first instant after the gap, 2011-12-31 00:00 +14
    cron = tarry.Cron("30 12 30 12 *", timezone="Pacific/Apia")
    assert ticks(cron, utc(2011, 12, 1), 1) == [utc(2011, 12, 30, 10)]


def test_a_week_of_a_weekday_cron_in_a_zone() -> None:
    cron = tarry.Cron("0 9 * * MON-FRI", timezone="America/New_York")
    assert ticks(cron, utc(2026, 3, 6, 15), 5) == [  # New York moves to EDT on Sunday 2026-03-08
        utc(2026, 3, 9, 13), utc(2026, 3, 10, 13), utc(2026, 3, 11, 13), utc(2026, 3, 12, 13), utc(2026, 3, 13, 13)
    ]  # fmt: skip


# -- bad input: ValueError at construction, naming it -------------------------------------------


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        (
            "TZ=Europe/Paris 0 9 * * *",
            "a TZ= prefix is not read; write tarry.Cron('0 9 * * *', timezone='Europe/Paris')",
        ),
        ("CRON_TZ=UTC 0 9 * * *", "a CRON_TZ= prefix is not read"),
        ("0 0 9 * * *", "6 fields; five are needed: minute hour day-of-month month day-of-week (no seconds or year"),
        ("0 9 * *", "4 fields; five are needed"),
        ("", "a non-empty string"),
        ("   ", "a non-empty string"),
        ("60 * * * *", "bad minute field"),
        ("0 24 * * *", "bad hour field"),
        ("0 0 32 * *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field"),
        ("0 0 * * 8", "bad day-of-week field"),
        ("0 0 * * MON-SUN", "bad day-of-week field"),  # a range must go up
        ("0 0 * JUNE *", "bad month field"),
        ("*/0 * * * *", "bad minute field"),
        ("0 0 30 2 *", "bad day-of-month field"),  # no February has a 30th
        ("every day", "2 fields"),
        ("@reboot", "the macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
        ("@every 5m", "the macros are"),
    ],
)
def test_a_bad_expression_is_refused_naming_it(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match="invalid Cron expression") as raised:
        tarry.Cron(expression)
    assert repr(expression) in str(raised.value) and says in str(raised.value)


def test_an_expression_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid Cron expression 5: a non-empty string"):
        tarry.Cron(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Berlinn", "../../etc/passwd", "", "+02:00"])
def test_an_unknown_zone_is_refused_naming_it(zone: str) -> None:
    with pytest.raises(ValueError, match="invalid Cron timezone") as raised:
        tarry.Cron("@daily", timezone=zone)
    assert repr(zone) in str(raised.value) and "IANA time zone" in str(raised.value)


def test_a_zone_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid Cron timezone None"):
        tarry.Cron("@daily", timezone=None)  # type: ignore[arg-type]
