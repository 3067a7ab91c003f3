"""`reconcile sandbox` as a script or a pipeline uses it: served in one process, driven by plain
commands in others through the variables it prints, stopped with SIGTERM (what a CI runner or a
service manager sends), and served again from what it saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from reconciler_sandbox.world import DEFAULT_SEED, load_world_seed

ROOT = Path(__file__).resolve().parents[2]
RECONCILE = Path(sys.executable).parent / "reconcile"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RECONCILE_", "CI", "ZENPY_", "STATUSPAGE_"))}


def serve(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`reconcile sandbox` started, and the variables it printed."""
    expected = len(load_world_seed(DEFAULT_SEED)["credentials"]) + 3  # + escrow key, GitLab URL, Zendesk netloc
    server = subprocess.Popen([str(RECONCILE), "sandbox", *args], cwd=cwd, env=clean_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    exports: dict[str, str] = {}
    assert server.stdout is not None
    while len(exports) < expected:
        line = server.stdout.readline()
        assert line.startswith("export "), f"reconcile sandbox printed {line[:40]!r}"
        name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
        exports[name] = value
    return server, exports


def reconcile(cwd: Path, exports: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RECONCILE), *args], cwd=cwd, env={**clean_env(), **exports}, text=True,
                          capture_output=True, timeout=300)


def test_plain_commands_drive_a_served_world_which_sigterm_saves(tmp_path):
    (tmp_path / "inventory").symlink_to(ROOT / "inventory")
    server, exports = serve(tmp_path, "--reset")
    try:
        applied = reconcile(tmp_path, exports, "apply", "--auto-approve")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Apply complete:" in applied.stdout and " 0 failed" in applied.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
    assert {p.name for p in (tmp_path / ".reconcile" / "sandbox").iterdir()} >= {
        "gitlab.sandbox.json", "zendesk.sandbox.json", "world.sandbox.json"}

    server, exports = serve(tmp_path)  # the saved world, with the ledger the apply wrote in it
    try:
        planned = reconcile(tmp_path, exports, "plan", "--detailed-exitcode")
        assert planned.returncode == 0 and "No changes." in planned.stdout, planned.stdout + planned.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
