"""reconciler.schedule without HTTP: jobs run at once within the workers, a job waits for the jobs
it names, an `alone` job runs with nothing else in flight, reports come in the list's order, and
a stop starts nothing more."""

from __future__ import annotations

import threading

import pytest

from reconciler.schedule import Job, Scheduler


class Recorder:
    """Work that records which jobs were in flight together; `gate` holds each job until set."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.seen_with: dict[str, set[str]] = {}
        self.finished: list[str] = []
        self.peak = 0

    def work(self, name: str) -> str:
        with self.lock:
            self.running.add(name)
            self.peak = max(self.peak, len(self.running))
            for other in self.running:
                self.seen_with.setdefault(other, set()).update(self.running - {other})
        threading.Event().wait(0.02)  # long enough for the others to start
        with self.lock:
            self.running.discard(name)
            self.finished.append(name)
        return name.upper()


def test_jobs_run_at_once_within_the_workers_and_are_reported_in_order():
    rec, reported = Recorder(), []
    jobs = [Job(f"t{i}") for i in range(8)]
    never = Scheduler[str](jobs, workers=3).run(rec.work, stop=lambda: False,
                                                done=lambda n, r: reported.append((n, r)))
    assert never == []
    assert reported == [(f"t{i}", f"T{i}") for i in range(8)]
    assert rec.peak == 3


def test_a_job_waits_for_the_jobs_it_names():
    rec = Recorder()
    jobs = [Job("child", after=frozenset({"creator"})), Job("creator"), Job("other", after=frozenset({"not-here"}))]
    Scheduler[str](jobs, workers=4).run(rec.work, stop=lambda: False, done=lambda n, r: None)
    assert rec.finished.index("creator") < rec.finished.index("child")
    assert "child" not in rec.seen_with.get("creator", set())
    assert "other" in rec.finished  # a name that is no job of this run is no reason to wait


def test_an_alone_job_runs_with_nothing_else_in_flight_and_nothing_after_it_starts_first():
    rec = Recorder()
    jobs = [Job("a"), Job("b"), Job("credential", alone=True), Job("c"), Job("d")]
    Scheduler[str](jobs, workers=4).run(rec.work, stop=lambda: False, done=lambda n, r: None)
    assert rec.seen_with.get("credential", set()) == set()
    assert set(rec.finished[:2]) == {"a", "b"} and rec.finished[2] == "credential"


def test_a_stop_starts_nothing_more_and_names_the_jobs_never_started():
    rec, reported = Recorder(), []
    stop = threading.Event()

    def work(name: str) -> str:
        stop.set()  # the signal comes while the first jobs are in flight
        return rec.work(name)

    jobs = [Job(f"t{i}") for i in range(6)]
    never = Scheduler[str](jobs, workers=2).run(work, stop=stop.is_set, done=lambda n, r: reported.append(n))
    assert reported == ["t0", "t1"] and never == ["t2", "t3", "t4", "t5"]


def test_an_exception_in_the_calling_thread_waits_for_the_jobs_in_flight():
    rec = Recorder()
    calls = {"n": 0}

    def done(name: str, result: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # as a second signal's StopNow would
    jobs = [Job(f"t{i}") for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        Scheduler[str](jobs, workers=2).run(rec.work, stop=lambda: False, done=done)
    assert not rec.running  # nothing runs on after run() has returned
