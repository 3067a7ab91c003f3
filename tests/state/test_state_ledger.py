"""Ledger: round trip, ordering and clear errors on corrupt input."""

from __future__ import annotations

import pytest

from reconciler.state import InFlight, Ledger, LedgerRecord, StateError


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


def test_in_flight_records_round_trip_through_each_step():
    flight = InFlight().overlapping({"9", "8"}, started_at="2026-01-02T03:04:05Z").minted("10")
    flight = flight.keeping("hook:a", {"url": "https://hooks.example/a", "push_events": True})
    ledger = Ledger(in_flight={"t": flight, "u": InFlight().rotating("4", started_at="2026-01-02T03:04:05Z")})
    stored = ledger.to_json()
    assert stored["in_flight"]["t"] == {
        "version": 1, "op": "overlap", "old_ids": ["8", "9"], "new_id": "10", "started_at": "2026-01-02T03:04:05Z",
        "recreating": {"hook:a": {"url": "https://hooks.example/a", "push_events": True}},
    }
    assert stored["in_flight"]["u"] == {"version": 1, "op": "rotate", "old_id": "4", "started_at": "2026-01-02T03:04:05Z"}
    assert Ledger.from_json(stored) == ledger
    assert flight.recreated("hook:a").recreating == {} and flight.recreating  # a new record; the old one is kept
    assert InFlight().rotating("4", "x").minted("5").rotating_again("5").rotating("5", "y").new_id is None


def test_in_flight_records_without_a_version_read_as_version_1():
    # as the release before the version field wrote them, numbers for ids included
    legacy = {"op": "rotate", "old_id": 4, "new_id": "5", "started_at": "2026-01-02T03:04:05Z", "recreating": {}}
    ledger = Ledger.from_json({"version": 1, "records": [], "in_flight": {"t": legacy, "u": {}}})
    assert ledger.in_flight == {"t": InFlight(op="rotate", old_id="4", new_id="5", started_at="2026-01-02T03:04:05Z"),
                                "u": InFlight()}


@pytest.mark.parametrize(
    "record, fragment",
    [
        ("x", "corrupt: expected an object"),
        ({"version": 2, "op": "rotate"}, "written by a newer release of reconcile (record version 2"),
        ({"version": "1"}, "'version' must be a positive integer"),
        ({"op": "swap"}, "'op' must be \"overlap\" or \"rotate\""),
        ({"op": "overlap", "old_ids": "12"}, "corrupt: 'old_ids' must be a list of ids"),
        ({"op": "overlap", "old_ids": [None]}, "corrupt: 'old_ids' must be a list of ids (text or numbers)"),
        ({"op": "rotate", "new_id": ["5"]}, "corrupt: 'new_id' must be an id (text or a number), got list"),
        ({"started_at": 5}, "corrupt: 'started_at' must be text, got int"),
        ({"recreating": {"hook": "copy"}}, "'recreating' must map consumer identities to objects"),
        ({"op": "rotate", "value": "x"}, "unknown field(s) 'value'"),
    ],
)
def test_a_corrupt_or_newer_in_flight_record_names_the_ledger_and_token(record, fragment):
    with pytest.raises(StateError) as err:
        Ledger.from_json({"version": 1, "records": [], "in_flight": {"sync": record}}, where=".reconcile/ledger.json")
    assert str(err.value).startswith(".reconcile/ledger.json: in-flight record of token 'sync': ")
    assert fragment in str(err.value)


def test_in_flight_must_be_an_object():
    with pytest.raises(StateError, match="'in_flight' must map token names to objects"):
        Ledger.from_json({"version": 1, "records": [], "in_flight": ["t"]})
