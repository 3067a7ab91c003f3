"""Contract: the GitLab sandbox answers the recorded real traffic with the same status and JSON shape."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.replay import cassettes, main
from reconciler_sandbox.replay_gitlab import replay_cassette


def test_every_shared_gitlab_recording_replays_without_mismatch(oracles):
    root = oracles / "recordings" / "gitlab"
    found = [path for kind, path in cassettes([root]) if kind == "gitlab"]
    assert len(found) == 119  # both versions: 17.11.7 and 18.11.5
    server = serve_gitlab()
    try:
        outcomes = [o for path in found for o in replay_cassette(path, server)]
    finally:
        server.stop()
    mismatched = [str(o) for o in outcomes if o.result == "mismatched"]
    assert mismatched == []
    counts = Counter(o.result for o in outcomes)
    assert counts["matched"] >= 380
    # Only endpoints the tool does not use are skipped.
    assert {o.detail for o in outcomes if o.result == "skipped"} <= {"deploy tokens"}


def test_the_service_account_recordings_replay_entirely(oracles):
    """Group, project and instance service accounts: created, looked up by the username GitLab
    minted, given a token that then authenticates as the account, deleted."""
    root = oracles / "recordings" / "gitlab" / "serviceaccount"
    found = [path for kind, path in cassettes([root]) if kind == "gitlab"]
    assert len(found) == 5
    server = serve_gitlab()
    try:
        outcomes = [o for path in found for o in replay_cassette(path, server)]
    finally:
        server.stop()
    assert [str(o) for o in outcomes if o.result != "matched"] == []
    assert sum("service_accounts" in o.interaction for o in outcomes) == 8  # the 8 once skipped


def test_the_command_prints_the_summary_and_exits_0(oracles, capsys):
    assert main([str(oracles / "recordings" / "gitlab" / "paths" / "18.11.5")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith("0 mismatched, 0 skipped (not modeled)") and "matched" in out[-1]


def test_a_tampered_cassette_is_reported_and_exits_1(oracles, tmp_path):
    source = oracles / "recordings" / "gitlab" / "paths" / "18.11.5" / "TestGitlabClient_RevokeToken_NotFound.yaml"
    text = source.read_text().replace("code: 404", "code: 418", 1)
    (tmp_path / "tampered.yaml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "reconciler_sandbox.replay", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "mismatched: status 404, recorded 418" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("2 matched, 1 mismatched")


def test_a_missing_directory_is_an_error(tmp_path):
    assert main([str(tmp_path / "nope")]) == 1
