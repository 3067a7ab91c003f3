"""Revoke only what is quiet: the rule apply follows before revoking a live token, and the plan
words in advance. Pure: no I/O.

A token of a kind that records its last use (`reconciler.kinds.UseRecorded`) is revoked only
when no use of it is recorded, or can have happened unrecorded, since `since`:

- the old token of an overlap: since the new value reached its last consumer (a use after that
  is by something not in the inventory);
- an orphan (another live token with the token's name), a token declared `state: absent`, and a
  token an earlier apply kept: within the rotation's `quiet_period` (default a day) before now.

Providers record a use only so often (`LastUse.every`: GitLab access tokens every 10 minutes), so
a use within that time after the recorded one leaves no trace: the token counts as possibly used
until `LastUse.latest` (the recorded use plus that interval). A token used, or possibly used,
since `since` is kept, and a later apply revokes it once it is quiet; `--force-revoke NAME`
revokes it at once. A token never used, as the provider records it, is quiet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.inventory.durations import format_duration
from reconciler.kinds import LastUse
from reconciler.observed import to_iso

KEPT = "kept until quiet"


def _when(moment: datetime) -> str:
    return to_iso(moment.replace(microsecond=0))


def _every(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"


def in_use(last: LastUse, since: datetime, after: str) -> str | None:
    """Why the token is kept (it was used, or a use cannot be excluded, after `since`, which
    `after` names: "the new value reached its last consumer (TIME)"); None when it is quiet."""
    if last.at is None:
        return None
    if last.at > since:
        return f"still in use by something not in the inventory (last used {_when(last.at)}, after {after})"
    latest = last.latest
    if latest is not None and latest > since:
        return (f"a use after {after} cannot be excluded: last used {_when(last.at)}, and its provider records a "
                f"use at most every {_every(last.every)}, so one until {_when(latest)} would leave no trace")
    return None


def since_delivery(delivered_at: datetime) -> tuple[datetime, str]:
    """`since` and its words for the old token of an overlap."""
    return delivered_at, f"the new value reached its last consumer ({_when(delivered_at)})"


def since_quiet_period(now: datetime, quiet: timedelta) -> tuple[datetime, str]:
    """`since` and its words for an orphan, an absent token, or a token kept before."""
    return now - quiet, f"the start of the quiet period ({format_duration(quiet)}: {_when(now - quiet)})"
