"""Durations and dates as the inventory writes them: `30m`, `12h`, `21d`, `2w`; ISO dates `2026-11-22`.

Minutes exist because some credentials live for minutes: a Zendesk OAuth access token of a client
with expiring tokens lasts 30 minutes by default
(https://support.zendesk.com/hc/en-us/articles/10212201463962), so its `rotate_before` and
`lifetime` are minutes too. `remaining_text` words a time left in the unit that fits.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

# Kept in step with `$defs.duration.pattern` in schemas/inventory.schema.json.
DURATION_PATTERN = r"^[1-9][0-9]*[mhdw]$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """`21d` -> 21 days. Raises ValueError with a message fit for a diagnostic."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 21d or 2w")
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
    """The shortest inventory spelling of a duration: 14 days -> `2w`, 36 hours -> `36h`,
    90 minutes -> `90m`."""
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours % (24 * 7) == 0 and hours:
        return f"{hours // (24 * 7)}w"
    if hours % 24 == 0 and hours:
        return f"{hours // 24}d"
    return f"{hours}h"


def remaining_text(delta: timedelta) -> str:
    """A time left (or, negative, past) in the unit that fits: `18 min`, `5 h`, `12 days`.
    Minutes below two hours, hours below two days, whole days above; always rounded down, so a
    token is never shown with more time than it has."""
    seconds = abs(int(delta.total_seconds()))
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def expires_words(delta: timedelta) -> str:
    """`expires in 18 min` or `expired 3 h ago`, for a time left `delta`."""
    if delta.total_seconds() <= 0:
        return f"expired {remaining_text(delta)} ago"
    return f"expires in {remaining_text(delta)}"
