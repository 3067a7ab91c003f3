"""How a ledger record was established: delivered (apply), verified or asserted (adopt)."""

from __future__ import annotations

import pytest

from reconciler.state import Ledger, LedgerRecord, StateError
from reconciler.state.report import render_summary

RECORD = {
    "consumer": "gitlab_ci_variable:gl:project:p:KEY:*", "token": "t", "token_id": "7",
    "token_created_at": "2026-01-02T03:04:05Z", "fingerprint": "sha256:" + "ab" * 32,
    "delivered_at": "2026-01-02T03:05:00Z", "verified": True,
}


def test_a_record_written_before_established_existed_reads_as_delivered_by_apply():
    record = Ledger.from_json({"version": 1, "records": [RECORD]}).get(RECORD["consumer"])
    assert (record.established, record.established_by) == ("delivered", "reconcile apply")


def test_established_round_trips():
    asserted = LedgerRecord(**{**RECORD, "fingerprint": "", "verified": False},
                            established="asserted", established_by="reconcile adopt --assert-write-only 'x'")
    again = Ledger.from_json(Ledger([asserted]).to_json()).get(RECORD["consumer"])
    assert again == asserted


@pytest.mark.parametrize("value, message", [
    ("guessed", "established must be one of delivered, verified, asserted"),
    (True, "established must be str"),
])
def test_a_bad_established_value_is_a_clear_error(value, message):
    with pytest.raises(StateError, match=message):
        Ledger.from_json({"version": 1, "records": [{**RECORD, "established": value}]}, where="ledger.json")


def test_state_show_says_how_each_record_was_established():
    summary = {"backend": "local state x", "escrow": [], "grants": [], "kept": [], "escrow_key": "not set", "lock": "free",
               "ledger": [RECORD, {**RECORD, "consumer": "c2", "fingerprint": "", "verified": False,
                                   "established": "asserted", "established_by": "reconcile adopt"}]}
    text = render_summary(summary)
    assert "delivered by reconcile apply" in text and "asserted by reconcile adopt" in text
    assert "(not read)" in text
