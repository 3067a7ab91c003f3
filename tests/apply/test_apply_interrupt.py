"""Interrupted applies, through the real `reconcile` command in a subprocess against the demo
world served by this test process (as `reconcile sandbox` serves it):

- SIGTERM (or SIGINT) while a rotation is in flight: apply finishes the escrow, stops at the next
  safe point, releases the lock, says what is done, escrowed and left, and exits 143 (130); the
  next apply delivers
  the escrowed value without a second rotation, and the plan after it is empty.
- A lock left by a SIGKILLed apply (its PID gone, on this host) is taken over with a message.
- A lock whose lease ran out is taken over; a lock of a live holder is respected, and the command
  the message names (`reconcile state unlock --force --sandbox`) removes it from the sandbox state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.state.store import process_space
from reconciler_sandbox.world import DEFAULT_SEED, STATE_DIR, start_world
from tests.apply.apply_world import stop_soon

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T12:00:00Z"
RECONCILE = str(Path(sys.executable).parent / "reconcile")
MINTED = re.compile(r"^([\w-]+): (rotated .* in place|created .* beside the old one)", re.M)


@pytest.fixture
def served(workdir):
    """The demo world served in this process; `env` reaches it from a subprocess. Unverifiable
    consumers rotate their token here (`on_unverifiable: rotate`): more tokens to interrupt."""
    shutil.copytree(ROOT / "inventory", workdir / "inventory")
    policy = workdir / "inventory" / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_age: 180d}", "max_age: 180d, on_unverifiable: rotate}", 1))
    # the sandbox clock at apply's --now: a use the demo world records is not "after delivery"
    world = start_world(DEFAULT_SEED, now=datetime.fromisoformat(NOW.replace("Z", "+00:00")))
    env = {**os.environ, **world.credentials, SANDBOX_ENV_GITLAB: world.gitlab.url,
           SANDBOX_ENV_ZENDESK: world.endpoints.zendesk_netloc or ""}
    env.pop("CI", None)
    yield world, env
    stop_soon(world.gitlab, world.zendesk)


def pause_at(world, k: int) -> tuple[threading.Event, threading.Event]:
    """Hold the answer of the k-th applied change (counted across both sandboxes) until
    `release` is set; `reached` is set when it is held."""
    reached, release = threading.Event(), threading.Event()
    count = [0]
    for server in (world.gitlab, world.zendesk):
        original = server.faults.count_mutation

        def held(original=original) -> bool:
            crashed = original()
            count[0] += 1
            if count[0] == k:
                reached.set()
                release.wait(30)
            return crashed

        server.faults.count_mutation = held
    return reached, release


def start_apply(env) -> subprocess.Popen:
    return subprocess.Popen([RECONCILE, "apply", "--sandbox", "--auto-approve", "--now", NOW], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def apply(env) -> subprocess.CompletedProcess:
    return subprocess.run([RECONCILE, "apply", "--sandbox", "--auto-approve", "--now", NOW], env=env,
                          capture_output=True, text=True, timeout=120)


def minted(output: str) -> list[str]:
    """The tokens an apply's output says it rotated or minted anew."""
    return [m.group(1) for m in MINTED.finditer(output)]


def lock_file(workdir) -> Path:
    return workdir / STATE_DIR / "lock"


def write_lock(workdir, **fields) -> None:
    record = {"id": "11111111-2222-3333-4444-555555555555", "owner": "an earlier apply",
              "created": "2026-11-22T11:00:00Z", **fields}
    (workdir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    lock_file(workdir).write_text(json.dumps(record))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_at_a_safe_point_and_the_next_apply_finishes_without_rotating_again(served, workdir, signum,
                                                                                           code):
    world, env = served
    name = signal.Signals(signum).name
    reached, release = pause_at(world, 1)  # the first change: a rotation, its answer held
    proc = start_apply(env)
    try:
        assert reached.wait(60), "apply never reached its first change"
        proc.send_signal(signum)
        time.sleep(0.3)  # the signal is handled while the answer is still held
    finally:
        release.set()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    assert f"{name}: stopping at the next safe point" in err
    # tokens run concurrently: each one in flight when the signal came stops at its own next safe
    # point (its new value escrowed); none begins after it
    assert f"Apply interrupted by {name}, stopped at a safe point. Done: " in out
    escrowed_line = next(line for line in out.splitlines() if line.startswith("Escrowed (encrypted"))
    escrowed = sorted(part.split(" (#")[0] for part in escrowed_line.split(": ", 1)[1].rstrip(".").split(", "))
    assert escrowed and set(minted(out)) == set(escrowed)  # every value minted is kept
    assert f"The next apply first finishes: {', '.join(escrowed)}." in out
    assert "The state lock was released." in out
    assert not lock_file(workdir).exists()

    again = apply(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(token in again.stdout.split("resumed: ", 1)[1] for token in escrowed), again.stdout
    assert not set(minted(again.stdout)) & set(minted(out))  # nothing rotated twice
    assert len(set(minted(again.stdout)) | set(minted(out))) == 5  # every mintable token renewed once
    assert not lock_file(workdir).exists()
    plan = subprocess.run([RECONCILE, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr


def test_a_sigkilled_applys_lock_is_taken_over(served, workdir):
    world, env = served
    reached, release = pause_at(world, 2)
    proc = start_apply(env)
    try:
        assert reached.wait(60)
        held = json.loads(lock_file(workdir).read_text())
        assert held["pid"] == proc.pid and held["host"] == socket.gethostname() and held["expires"]
        proc.kill()
        proc.communicate(timeout=30)  # reaped: the PID is gone
    finally:
        release.set()
    assert lock_file(workdir).exists()
    again = apply(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "took over the lock held by " in again.stderr
    assert f"its process {proc.pid} on this host ({socket.gethostname()}) no longer exists" in again.stderr
    assert not lock_file(workdir).exists()


def test_a_lock_whose_lease_ran_out_is_taken_over(served, workdir):
    _, env = served
    write_lock(workdir, host="runner-elsewhere", pid=4242, job="https://gitlab.example.com/g/p/-/jobs/7",
               expires="2026-01-01T00:00:00Z")
    again = apply(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ("took over the lock held by an earlier apply since 2026-11-22T11:00:00Z (lock id "
            "11111111-2222-3333-4444-555555555555; job https://gitlab.example.com/g/p/-/jobs/7, pid 4242 on "
            "runner-elsewhere, lease until 2026-01-01T00:00:00Z): its lease ran out at 2026-01-01T00:00:00Z"
            ) in again.stderr
    assert not lock_file(workdir).exists()


def test_a_live_holder_is_respected_and_unlock_sandbox_removes_it(served, workdir):
    _, env = served
    write_lock(workdir, host=socket.gethostname(), pid=os.getpid(), space=process_space(),
               expires="2999-01-01T00:00:00Z")
    refused = apply(env)
    assert refused.returncode == 1
    assert "the state is locked: held by an earlier apply" in refused.stderr
    assert "`reconcile state unlock --force --sandbox`" in refused.stderr
    assert "rotated" not in refused.stdout
    unlock = [RECONCILE, "state", "unlock", "--sandbox"]
    shown = subprocess.run(unlock, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1 and f"pid {os.getpid()} on {socket.gethostname()}" in shown.stderr
    assert "local state .reconcile/sandbox/" in shown.stderr and lock_file(workdir).exists()
    removed = subprocess.run([*unlock, "--force"], env=env, capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0 and "removed the lock held by an earlier apply" in removed.stdout
    assert not lock_file(workdir).exists()
    assert apply(env).returncode == 0


def test_sigterm_while_observing_stops_before_any_change(served, workdir):
    world, env = served
    reached, release = threading.Event(), threading.Event()
    handle = world.gitlab.service.handle

    def held(request):
        if not reached.is_set():
            reached.set()
            release.wait(30)
        return handle(request)

    world.gitlab.service.handle = held
    proc = start_apply(env)
    try:
        assert reached.wait(60)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    finally:
        release.set()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "Apply interrupted by SIGTERM: stopped before changing any token; no lock is held." in err
    assert world.mutations() == 0 and not lock_file(workdir).exists()
