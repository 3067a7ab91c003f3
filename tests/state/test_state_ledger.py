"""Ledger: round trip, ordering and clear errors on corrupt input."""

from __future__ import annotations

import pytest

from reconciler.state import Ledger, LedgerRecord, StateError


def rec(consumer: str, **kw) -> LedgerRecord:
    base = dict(
        consumer=consumer,
        token="sync-trigger",
        token_id="17",
        token_created_at="2026-01-02T03:04:05Z",
        fingerprint="sha256:" + "ab" * 32,
        delivered_at="2026-01-02T03:05:00Z",
        verified=False,
    )
    base.update(kw)
    return LedgerRecord(**base)


def test_round_trip_and_sorted_records():
    ledger = Ledger()
    ledger.record(rec("zendesk_webhook:zg:hook"))
    ledger.record(rec("gitlab_ci_variable:gl:p:KEY", verified=True))
    assert [r.consumer for r in ledger.records()] == ["gitlab_ci_variable:gl:p:KEY", "zendesk_webhook:zg:hook"]
    again = Ledger.from_json(ledger.to_json())
    assert again == ledger
    assert again.get("gitlab_ci_variable:gl:p:KEY").verified is True


def test_record_replaces_and_forget_removes():
    ledger = Ledger([rec("c", token_id="1")])
    ledger.record(rec("c", token_id="2"))
    assert ledger.get("c").token_id == "2"
    ledger.forget("c")
    ledger.forget("never-there")
    assert ledger.get("c") is None and ledger.records() == []


@pytest.mark.parametrize(
    "data, fragment",
    [
        ([], "expected a JSON object"),
        ({"version": 99, "records": []}, "unsupported ledger version"),
        ({"version": 1}, "'records' must be a list"),
        ({"version": 1, "records": ["x"]}, "records[0] is not an object"),
        ({"version": 1, "records": [{"consumer": "c"}]}, "records[0] lacks"),
        ({"version": 1, "records": [dict(rec("c").to_json(), verified="yes")]}, "records[0].verified"),
        ({"version": 1, "records": [rec("c").to_json(), rec("c").to_json()]}, "recorded twice"),
    ],
)
def test_corrupt_shapes_raise_state_error_naming_where(data, fragment):
    with pytest.raises(StateError) as err:
        Ledger.from_json(data, where=".reconcile/ledger.json")
    assert fragment in str(err.value)
    assert str(err.value).startswith(".reconcile/ledger.json: ")
