"""Durations and dates as the inventory writes them: `12h`, `21d`, `2w`; ISO dates `2026-11-22`."""

from __future__ import annotations

import re
from datetime import date, timedelta

# Kept in step with `$defs.duration.pattern` in schemas/inventory.schema.json.
DURATION_PATTERN = r"^[1-9][0-9]*[hdw]$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """`21d` -> 21 days. Raises ValueError with a message fit for a diagnostic."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like 12h, 21d or 2w")
    return int(text[:-1]) * _UNITS[text[-1]]


def parse_date(text: str | date) -> date:
    """An ISO date (`2026-11-22`). Raises ValueError for anything else, e.g. 2026-02-30."""
    if isinstance(text, date):
        return text
    if not isinstance(text, str) or not re.match(DATE_PATTERN, text):
        raise ValueError(f"{text!r} is not an ISO date like 2026-11-22")
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"{text!r} is not a valid date ({err})") from None


def format_duration(delta: timedelta) -> str:
    """The shortest inventory spelling of a duration: 14 days -> `2w`, 36 hours -> `36h`."""
    hours = int(delta.total_seconds() // 3600)
    if hours % (24 * 7) == 0 and hours:
        return f"{hours // (24 * 7)}w"
    if hours % 24 == 0 and hours:
        return f"{hours // 24}d"
    return f"{hours}h"
