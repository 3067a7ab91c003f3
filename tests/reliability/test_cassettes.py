"""Recorded transcripts of what apply sends (tests/cassettes/): a change in the requests the tool
makes shows up in review as a diff of a cassette, and this test fails until the cassette is
re-recorded (`RECONCILE_RECORD_CASSETTES=1 pytest tests/reliability/test_cassettes.py`).

One cassette per source kind, each delivering to every consumer kind (so every write path of
every kind is covered), recorded through `reconciler.record.recording` (every secret scrubbed)
and normalised so that only what the tool decides is kept: method, path, sorted query, the
scrubbed JSON body, and the answer's status. Host and port, headers, answer bodies and Zendesk
webhook ULIDs (random per run) are left out. Reads are sorted (observe is concurrent, so their
order varies); writes keep their order, which is the point: apply runs at concurrency 1 here, so it
does one thing at a time.

The cassettes are in vcrpy's layout (version 1, interactions of request/response), so `vcr` can
load and replay them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fault_matrix import CONSUMERS, SOURCES, Scenario  # fault_matrix puts tests/apply on the path
from vcr.serializers import yamlserializer

from reconciler.record import recording
from reconciler_sandbox.core import known_secrets

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
RECORD = os.environ.get("RECONCILE_RECORD_CASSETTES") == "1"
ULID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
SCENARIOS = [Scenario(source, CONSUMERS) for source in SOURCES]


def normalise(transcript: dict[str, Any]) -> dict[str, Any]:
    reads, writes = [], []
    for item in transcript["interactions"]:
        req = item["request"]
        parts = urlsplit(req["uri"])
        query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)), safe="<>")
        uri = ULID.sub("{ulid}", parts.path + (f"?{query}" if query else ""))
        body = req.get("body")
        if body:
            try:
                body = json.dumps(json.loads(body), sort_keys=True)
            except ValueError:
                pass
            body = ULID.sub("{ulid}", body)
        entry = {"request": {"method": req["method"], "uri": uri, "body": body or None, "headers": {}},
                 "response": {"status": item["response"]["status"], "headers": {}, "body": {"string": ""}}}
        (reads if req["method"] in ("GET", "HEAD") else writes).append(entry)
    reads.sort(key=lambda e: (e["request"]["uri"], e["response"]["status"]["code"]))
    return {"version": 1, "interactions": reads + writes}


def record_apply(scenario: Scenario, directory: Path) -> str:
    live = scenario.start(directory)
    # one request at a time: apply then does one thing at a time, in the order it decides (at a
    # higher concurrency a token's consumer writes go at once, in no fixed order)
    live.env["RECONCILE_CONCURRENCY"] = "1"
    try:
        with recording(directory / "raw.yaml") as rec:
            result = live.apply()
        assert result.ok, result.failed
        return yamlserializer.serialize(normalise(rec.transcript()))
    finally:
        live.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.source)
def test_apply_sends_what_the_cassette_recorded(scenario: Scenario, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "RECONCILE_SANDBOX_GITLAB_URL",
                 "RECONCILE_SANDBOX_ZENDESK_NETLOC", "CI", "RECONCILE_ESCROW_KEY"):
        monkeypatch.delenv(name, raising=False)
    text = record_apply(scenario, tmp_path)
    assert not any(len(v) >= 8 and v in text for v in known_secrets()), "a value reached the cassette"
    path = CASSETTES / f"apply-{scenario.source}.yaml"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} is missing: record it with RECONCILE_RECORD_CASSETTES=1"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"{path.name} (recorded)", "apply now", n=2))
        pytest.fail(f"apply now sends other requests than {path.name}; review and re-record with "
                    f"RECONCILE_RECORD_CASSETTES=1:\n{diff[:6000]}")


def test_cassettes_load_in_vcrpy_and_hold_writes():
    from vcr.serialize import deserialize

    for scenario in SCENARIOS:
        path = CASSETTES / f"apply-{scenario.source}.yaml"
        requests_, responses = deserialize(path.read_text(), yamlserializer)
        writes = [r for r in requests_ if r.method != "GET"]
        assert writes and len(requests_) == len(responses)
        assert all(r.uri.startswith("/api/") for r in requests_)  # no host, no port
        delivered = [r for r in writes if r.body and b"<redacted>" in r.body]
        assert len(delivered) >= len(CONSUMERS) - 1, path.name  # each consumer's write, value scrubbed
