"""The lock: one apply at a time; a second waits, then fails naming the holder; force unlock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from reconciler.state import LocalStore, StateError
from reconciler.state.store import process_space


def test_acquire_release_and_reacquire(tmp_path):
    store = LocalStore(tmp_path)
    with store.acquire("first apply") as handle:
        holder = store.lock_holder()
        assert holder.owner == "first apply" and holder.id == handle.id
    assert store.lock_holder() is None
    store.acquire("second apply").release()


def test_second_acquire_fails_at_once_naming_holder_and_time(tmp_path):
    store = LocalStore(tmp_path)
    handle = store.acquire("ci job 42")
    with pytest.raises(StateError) as err:
        LocalStore(tmp_path).acquire("ci job 43", wait=0)
    message = str(err.value)
    assert "locked" in message and "ci job 42" in message and handle.info.created in message
    assert "reconcile state unlock --force" in message
    handle.release()


def test_second_acquire_waits_then_fails(tmp_path):
    handle = LocalStore(tmp_path).acquire("holder")
    start = time.monotonic()
    with pytest.raises(StateError, match=r"after waiting 0\.3s: held by holder"):
        LocalStore(tmp_path).acquire("waiter", wait=0.3)
    assert 0.3 <= time.monotonic() - start < 1.5
    handle.release()


def test_second_acquire_waits_for_a_release(tmp_path):
    handle = LocalStore(tmp_path).acquire("holder")
    threading.Timer(0.2, handle.release).start()
    second = LocalStore(tmp_path).acquire("waiter", wait=5)
    assert LocalStore(tmp_path).lock_holder().owner == "waiter"
    second.release()


def test_two_threads_exactly_one_holds_at_a_time(tmp_path):
    inside, overlaps, done = [0], [], []
    guard = threading.Lock()

    def apply(name: str) -> None:
        with LocalStore(tmp_path).acquire(name, wait=10):
            with guard:
                inside[0] += 1
                overlaps.append(inside[0])
            time.sleep(0.05)
            with guard:
                inside[0] -= 1
        done.append(name)

    threads = [threading.Thread(target=apply, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(done) == ["t0", "t1", "t2", "t3"]
    assert max(overlaps) == 1


def test_two_threads_second_fails_without_wait(tmp_path):
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def apply(name: str) -> None:
        barrier.wait()
        try:
            results[name] = LocalStore(tmp_path).acquire(name, wait=0)
        except StateError as err:
            results[name] = err

    threads = [threading.Thread(target=apply, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    errors = [r for r in results.values() if isinstance(r, StateError)]
    handles = [r for r in results.values() if not isinstance(r, StateError)]
    assert len(errors) == 1 and len(handles) == 1
    assert f"held by {handles[0].info.owner}" in str(errors[0])
    handles[0].release()


def test_stale_lock_force_unlock(tmp_path):
    stale = LocalStore(tmp_path).acquire("crashed apply")  # never released: the process "died"
    store = LocalStore(tmp_path)
    removed = store.force_unlock()
    assert removed.owner == "crashed apply" and removed.id == stale.id
    assert store.lock_holder() is None
    assert store.force_unlock() is None
    store.acquire("next apply").release()
    stale.release()  # a late release of a removed lock is harmless


def test_release_refuses_to_drop_someone_elses_lock(tmp_path):
    stale = LocalStore(tmp_path).acquire("old")
    LocalStore(tmp_path).force_unlock()
    fresh = LocalStore(tmp_path).acquire("new")
    with pytest.raises(StateError, match="cannot release: the lock is now held by new"):
        stale.release()
    assert LocalStore(tmp_path).lock_holder().owner == "new"
    fresh.release()


def test_unreadable_lock_file_is_reported_not_crashed(tmp_path):
    (tmp_path / "lock").write_text("{half")
    with pytest.raises(StateError, match="unreadable lock file"):
        LocalStore(tmp_path).acquire("x")
    assert LocalStore(tmp_path).force_unlock().id == "?"
    LocalStore(tmp_path).acquire("x").release()


# --- holder and lease: a lock whose holder is provably gone is taken over ----------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock_file(tmp_path, **fields) -> None:
    record = {"id": "old-lock", "owner": "crashed apply", "created": "2026-11-22T11:00:00Z", **fields}
    (tmp_path / "lock").write_text(json.dumps(record))


def test_a_lock_records_host_pid_job_and_lease(tmp_path, monkeypatch):
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example.com/g/p/-/jobs/42")
    with LocalStore(tmp_path).acquire("ci") as handle:
        held = json.loads((tmp_path / "lock").read_text())
        assert held["host"] == socket.gethostname() and held["pid"] == os.getpid()
        assert held["job"] == "https://gitlab.example.com/g/p/-/jobs/42" and held["expires"] == handle.info.expires
        assert "job https://gitlab.example.com/g/p/-/jobs/42, pid" in LocalStore(tmp_path).lock_holder().describe()


def test_a_dead_process_on_this_host_loses_its_lock(tmp_path):
    pid = _dead_pid()
    _lock_file(tmp_path, host=socket.gethostname(), pid=pid, space=process_space(), expires="2999-01-01T00:00:00Z")
    with LocalStore(tmp_path).acquire("next") as handle:
        assert "took over the lock held by crashed apply since 2026-11-22T11:00:00Z (lock id old-lock" in (
            handle.taken_over)
        assert handle.taken_over.endswith(f"its process {pid} on this host ({socket.gethostname()}) no longer exists")
        assert LocalStore(tmp_path).lock_holder().id == handle.id


def test_an_expired_lease_loses_its_lock_and_a_live_holder_keeps_it(tmp_path):
    _lock_file(tmp_path, host="elsewhere", pid=7, expires="2026-01-01T00:00:00Z")
    with LocalStore(tmp_path).acquire("next") as handle:
        assert "its lease ran out at 2026-01-01T00:00:00Z" in handle.taken_over
    for alive in (dict(host=socket.gethostname(), pid=os.getpid(), space=process_space(), expires="2999-01-01T00:00:00Z"),
                  # same host name, another PID namespace (a container): its PIDs are not ours to check
                  dict(host=socket.gethostname(), pid=_dead_pid(), space="other-ns", expires="2999-01-01T00:00:00Z"),
                  dict(host="elsewhere", pid=7, expires="2999-01-01T00:00:00Z"),
                  {}):  # a lock written before holders and leases: respected until forced
        _lock_file(tmp_path, **alive)
        with pytest.raises(StateError, match="the state is locked: held by crashed apply"):
            LocalStore(tmp_path).acquire("next")
    assert LocalStore(tmp_path).lock_holder().id == "old-lock"


def test_the_lease_is_renewed_while_held_and_not_after_a_take_over(tmp_path):
    store = LocalStore(tmp_path)
    store.lease = 3.0  # renewed every second
    handle = store.acquire("long apply")
    first = handle.info.expires
    time.sleep(2.5)
    assert json.loads((tmp_path / "lock").read_text())["expires"] > first and handle.renew_error is None
    store.force_unlock()
    LocalStore(tmp_path).acquire("next")
    time.sleep(1.5)
    assert LocalStore(tmp_path).lock_holder().owner == "next"
    assert "no longer ours" in handle.renew_error
    with pytest.raises(StateError, match="cannot release: the lock is now held by next"):
        handle.release()
