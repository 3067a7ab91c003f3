"""The lock: one apply at a time; a second waits, then fails naming the holder; force unlock."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.state import LocalStore, StateError


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
