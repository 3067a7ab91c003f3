"""The runner's critical-path bound (benchmarks/run.py `provider_bound`): the larger of a
provider's concurrency bound and its rate limit's fixed windows. Pure arithmetic, no HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.run import provider_bound  # noqa: E402


def test_within_one_window_the_concurrency_bound_binds():
    b = provider_bound(700, concurrency=4, latency=0.05, limit=700, window=60.0)
    assert b["bound_s"] == pytest.approx(175 * 0.05) and b["binds"] == "concurrency"


def test_past_the_limit_every_full_window_is_waited_out():
    b = provider_bound(3556, concurrency=4, latency=0.05, limit=700, window=60.0)
    # five full windows of 700, then the last 56 at four at a time
    assert b["rate_limit_s"] == pytest.approx(5 * 60 + 14 * 0.05) and b["binds"] == "rate limit"
    assert b["concurrency_s"] == pytest.approx(889 * 0.05)
    assert provider_bound(701, concurrency=4, latency=0.05, limit=700, window=60.0)["bound_s"] == pytest.approx(60.05)


def test_a_limit_never_reached_leaves_the_concurrency_bound():
    b = provider_bound(10330, concurrency=4, latency=0.05, limit=100_000, window=60.0)
    assert b["bound_s"] == pytest.approx(2583 * 0.05) and b["binds"] == "concurrency"
