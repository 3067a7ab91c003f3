"""`reconcile state show|unlock|keygen` through the real CLI entry point."""

from __future__ import annotations

import json
import secrets

import pytest

from reconciler.cli import main
from reconciler.secret import Secret
from reconciler.state import Escrow, Ledger, LedgerRecord, LocalStore, generate_key, parse_key


@pytest.fixture
def populated(tmp_path, monkeypatch):
    """A local state with two ledger records and one escrowed value; returns (dir, value)."""
    monkeypatch.delenv("RECONCILE_ESCROW_KEY", raising=False)
    store = LocalStore(tmp_path / "state")
    value = "testvalue-" + secrets.token_urlsafe(24)
    store.save_ledger(
        Ledger(
            [
                LedgerRecord(
                    consumer="gitlab_ci_variable:gl:grp/proj:SYNC_TOKEN",
                    token="sync-trigger",
                    token_id="12",
                    token_created_at="2026-05-01T00:00:00Z",
                    fingerprint=Secret(value).fingerprint(),
                    delivered_at="2026-05-01T00:01:00Z",
                    verified=True,
                ),
                LedgerRecord(
                    consumer="zendesk_webhook:zg:Ticket sync",
                    token="sync-trigger",
                    token_id="12",
                    token_created_at="2026-05-01T00:00:00Z",
                    fingerprint=Secret(value).fingerprint(),
                    delivered_at="2026-05-01T00:02:00Z",
                    verified=False,
                ),
            ]
        )
    )
    Escrow(store, parse_key(generate_key(), "K")).put("support-pat", "99", Secret(value), "2026-05-01T00:00:00Z")
    return store.dir, value


def test_show_table(populated, capsys):
    state_dir, value = populated
    assert main(["state", "show", "--state-dir", str(state_dir)]) == 0
    out = capsys.readouterr().out
    assert "gitlab_ci_variable:gl:grp/proj:SYNC_TOKEN" in out and "no (write-only)" in out
    assert "support-pat: token id 99" in out and "not set key" in out
    assert "lock: free" in out
    assert value not in out


def test_show_json(populated, capsys):
    state_dir, value = populated
    assert main(["state", "show", "--state-dir", str(state_dir), "--format", "json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert [r["consumer"] for r in data["ledger"]] == [
        "gitlab_ci_variable:gl:grp/proj:SYNC_TOKEN",
        "zendesk_webhook:zg:Ticket sync",
    ]
    assert data["escrow"] == [{"token": "support-pat", "token_id": "99", "minted_at": "2026-05-01T00:00:00Z"}]
    assert data["lock"] == "free"
    assert value not in out and "ciphertext" not in out


def test_show_corrupt_ledger_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "ledger.json").write_text('{"version": 1, "records": [')
    assert main(["state", "show", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ledger.json: corrupt ledger" in err and "Traceback" not in err


def test_unlock_without_force_reports_holder_and_keeps_lock(tmp_path, capsys):
    handle = LocalStore(tmp_path).acquire("crashed apply")
    assert main(["state", "unlock", "--state-dir", str(tmp_path)]) == 1
    assert "locked: held by crashed apply" in capsys.readouterr().err
    assert LocalStore(tmp_path).lock_holder().id == handle.id
    assert main(["state", "unlock", "--state-dir", str(tmp_path), "--force"]) == 0
    assert "removed the lock held by crashed apply" in capsys.readouterr().out
    assert LocalStore(tmp_path).lock_holder() is None
    assert main(["state", "unlock", "--state-dir", str(tmp_path)]) == 0
    assert "not locked" in capsys.readouterr().out


@pytest.mark.leaks_by_design
def test_keygen_prints_a_valid_fresh_key(capsys):
    assert main(["state", "keygen"]) == 0
    first = capsys.readouterr().out.strip()
    assert len(parse_key(first, "RECONCILE_ESCROW_KEY")) == 32
    main(["state", "keygen"])
    assert capsys.readouterr().out.strip() != first


def _inventory(tmp_path, state: str) -> str:
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "main.yaml").write_text(
        "providers:\n"
        "  gl:\n"
        "    kind: gitlab\n"
        "    url: https://gitlab.example.com\n"
        "    auth: {token_env: TEST_STATE_GL_TOKEN}\n"
        f"state: {state}\n"
        "tokens: {}\n"
    )
    return str(inv)


def test_show_uses_the_inventorys_state_config(tmp_path, capsys):
    LocalStore(tmp_path / "st").acquire("someone")
    inv = _inventory(tmp_path, f"{{backend: local, path: {tmp_path / 'st'}}}")
    assert main(["state", "show", "--inventory", inv]) == 0
    out = capsys.readouterr().out
    assert f"local state {tmp_path / 'st'}/" in out and "lock: held by someone" in out


def test_gitlab_backend_without_credential_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TEST_STATE_GL_TOKEN", raising=False)
    monkeypatch.delenv("CI_JOB_TOKEN", raising=False)
    inv = _inventory(tmp_path, "{backend: gitlab, provider: gl, project: ops/state}")
    assert main(["state", "unlock", "--inventory", inv]) == 1
    err = capsys.readouterr().err
    assert "provider gl: set TEST_STATE_GL_TOKEN" in err and "Traceback" not in err


def test_bad_inventory_is_reported_with_position_and_exit_1(tmp_path, capsys):
    inv = _inventory(tmp_path, "{backend: nowhere}")
    assert main(["state", "show", "--inventory", inv]) == 1
    err = capsys.readouterr().err
    assert "main.yaml:6" in err and "backend" in err
