"""`reconcile apply` as a person and CI run it, on the example inventory and its demo world.

- `plan --sandbox` after `apply --sandbox --auto-approve` shows no changes (the world persists in
  .reconcile/sandbox/); the output has one line per step and a summary, and no value.
- A saved plan is applied when nothing changed, and refused (exit 1, nothing changed) when the
  live state or the inventory changed since.
- In CI (CI=true) `--auto-approve` is required; without a terminal too.
- Crash convergence on the demo world: every mutation point of its apply.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.world import DEFAULT_SEED, STATE_DIR, start_world
from tests.apply.apply_world import stop_soon
from tests.apply.test_apply_crash import crash_at, recover

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T12:00:00Z"


@pytest.fixture
def example(workdir):
    (workdir / "inventory").symlink_to(ROOT / "inventory")
    return workdir


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_apply_plan_converges_on_the_demo_world(example, capsys):
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0, err
    # 3 due (expiry, max_age and not_before, a missing consumer); the unverifiable consumers of
    # two more tokens are warnings, not rotations (rotation.on_unverifiable: warn)
    assert "Apply complete: 3 rotated" in out and ", 0 failed." in out
    assert "zendesk-global-super-app: rotated personal access token #2 in place" in out
    assert "zendesk-global-sync-trigger: revoked pipeline trigger #1" in out
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert code == 0, out + err
    assert "No changes." in out
    code, out, _ = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0 and "No changes. Nothing to apply." in out
    ledger = (example / STATE_DIR / "ledger.json").read_text()
    assert '"in_flight"' not in ledger and (example / STATE_DIR / "escrow.json").read_text().count("ciphertext") == 0


def test_a_saved_plan_is_applied_when_nothing_changed_and_refused_when_stale(example, capsys):
    assert run(capsys, "plan", "--sandbox", "--now", NOW, "--out", "plan.json")[0] == 0
    # stale: the live state changes (a trigger is deleted by hand) between plan and apply
    world = start_world(DEFAULT_SEED, state_dir=STATE_DIR)
    world.gitlab.service.store.tables["triggers"].pop(2)
    world.save()
    world.stop()
    code, out, err = run(capsys, "apply", "plan.json", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 1 and "the saved plan is stale: the live state changed" in err
    assert "rotated" not in out
    # a fresh plan is applied as saved
    assert run(capsys, "plan", "--sandbox", "--now", NOW, "--out", "plan.json")[0] == 0
    code, out, err = run(capsys, "apply", "plan.json", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0 and "Apply complete:" in out, err
    # stale: the inventory changed
    assert run(capsys, "plan", "--sandbox", "--now", NOW, "--out", "plan.json")[0] == 0
    (example / "inventory").unlink()
    shutil.copytree(ROOT / "inventory", example / "inventory")
    path = example / "inventory" / "tokens" / "gitlab.yaml"
    path.write_text(path.read_text().replace("access_level: 30", "access_level: 40"))
    code, _, err = run(capsys, "apply", "plan.json", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 1 and "the inventory changed since it was made" in err


def test_ci_requires_auto_approve_and_so_does_a_run_without_a_terminal(example, capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    code, out, err = run(capsys, "apply", "--sandbox", "--now", NOW)
    assert code == 1 and "in CI (CI=true) apply needs --auto-approve" in err
    monkeypatch.delenv("CI")
    code, out, err = run(capsys, "apply", "--sandbox", "--now", NOW)
    assert code == 1 and "pass --auto-approve" in err
    assert not (example / STATE_DIR / "ledger.json").exists()


def test_a_bad_saved_plan_is_a_clear_error(example, capsys):
    (example / "plan.json").write_text("{}")
    code, _, err = run(capsys, "apply", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "plan.json: not a saved reconcile plan" in err


def test_every_crash_point_of_the_demo_world_converges(example, capsys, monkeypatch):
    """The demo world's apply (6 tokens, every kind of change) crashed at each of its mutating
    requests, then applied again: the plan after shows no changes. Unverifiable consumers rotate
    their token here (`on_unverifiable: rotate`), so the in-place rotations and the webhook
    recreate are among the crash points."""
    (example / "inventory").unlink()
    shutil.copytree(ROOT / "inventory", example / "inventory")
    policy = example / "inventory" / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_age: 180d}", "max_age: 180d, on_unverifiable: rotate}", 1))

    def serve():
        # the sandbox clock at apply's --now: a use the demo world records is not "after delivery"
        world = start_world(DEFAULT_SEED, now=datetime.fromisoformat(NOW.replace("Z", "+00:00")))
        monkeypatch.setenv(SANDBOX_ENV_GITLAB, world.gitlab.url)
        monkeypatch.setenv(SANDBOX_ENV_ZENDESK, world.endpoints.zendesk_netloc)
        for name, value in world.credentials.items():
            monkeypatch.setenv(name, value)
        return world

    clean = serve()
    assert run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)[0] == 0
    total = len(clean.gitlab.log.mutations()) + len(clean.zendesk.log.mutations())
    stop_soon(clean.gitlab, clean.zendesk)
    assert total >= 10
    for k in range(1, total + 1):
        shutil.rmtree(example / ".reconcile", ignore_errors=True)
        world = serve()

        class Live:
            gitlab, zendesk = world.gitlab, world.zendesk

        try:
            crash_at(Live, k)
            code, _, _ = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
            assert code == 1, f"k={k}"
            recover(Live)
            code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
            assert code == 0, (k, out[-2000:], err)
            code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
            assert code == 0, (k, out[-3000:])
        finally:
            stop_soon(world.gitlab, world.zendesk)
    os.environ.pop("ZENPY_FORCE_NETLOC", None)
