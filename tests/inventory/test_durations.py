"""Durations to the minute, and time left in the unit that fits (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reconciler.inventory.durations import expires_words, format_duration, parse_duration, remaining_text
from reconciler.plan_model import days_left, days_text, expiry_words, time_left

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "delta"), [("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)),
                                             ("21d", timedelta(days=21)), ("2w", timedelta(weeks=2))])
def test_durations_take_minutes_hours_days_and_weeks(text, delta):
    assert parse_duration(text) == delta
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize("text", ["0m", "10", "3y", "1.5h", "m"])
def test_anything_else_is_refused_with_the_units_it_takes(text):
    with pytest.raises(ValueError, match="like 30m, 12h, 21d or 2w"):
        parse_duration(text)


def test_format_duration_keeps_minutes_that_are_not_whole_hours():
    assert format_duration(timedelta(minutes=90)) == "90m" and format_duration(timedelta(hours=36)) == "36h"
    assert days_text(timedelta(days=21)) == "21d" and days_text(timedelta(minutes=10)) == "10m"


@pytest.mark.parametrize(("delta", "words"), [
    (timedelta(minutes=18, seconds=59), "18 min"), (timedelta(minutes=119), "119 min"), (timedelta(hours=5), "5 h"),
    (timedelta(hours=47, minutes=59), "47 h"), (timedelta(days=12, hours=23), "12 days")])
def test_time_left_in_the_unit_that_fits_never_rounded_up(delta, words):
    assert remaining_text(delta) == words
    assert expires_words(delta) == f"expires in {words}"
    assert expires_words(-delta) == f"expired {words} ago"


def test_a_time_expiry_counts_to_the_minute_and_a_date_as_its_first_moment():
    assert time_left(NOW + timedelta(minutes=20), NOW) == timedelta(minutes=20)
    assert expiry_words(NOW + timedelta(minutes=20), NOW) == "expires in 20 min (at 2026-12-04T10:20:00Z)"
    # a whole date: the same boundaries as days_left (due when days_left <= N is time_left <= N days)
    assert time_left(date(2026, 12, 11), NOW) == timedelta(days=6, hours=14)
    assert days_left(date(2026, 12, 11), NOW) == 7 and time_left(date(2026, 12, 11), NOW) <= timedelta(days=7)
    assert time_left(date(2026, 12, 12), NOW) > timedelta(days=7) and days_left(date(2026, 12, 12), NOW) == 8
    assert expiry_words(date(2026, 12, 11), NOW) == "expires 2026-12-11 (7 days left)"
