"""Running apply's tokens concurrently, in a fixed order of starts and of reports.

Tokens are independent once planned: each has its own source, its own consumers and its own
in-flight record, so apply runs several at once and lets each provider's throttle
(reconciler.clients.Throttle) bound how many requests are in flight. Three things order them:

- `after`: the names of jobs that must finish first (a token created with another token's
  credential waits for its creator). Names that are not jobs of this run are ignored.
- `alone`: the job runs with nothing else in flight, and no later job starts before it has
  finished (renewing a provider's own credential changes what every request to that provider
  is authenticated with).
- the list's order: jobs start in it as far as the above allow (apply lists resumed tokens first),
  and `done` is called in it, so what a run reports reads as it would one token after another.

`stop()` true: no further job starts; the jobs in flight run to their own safe points (they see
the same flag) and `run` returns the names of the jobs never started. An exception raised in the
calling thread while it waits (a second signal's StopNow) is raised again once every job in
flight has ended: nothing may run on after the caller releases the state lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    name: str
    after: frozenset[str] = frozenset()
    alone: bool = False


class Scheduler(Generic[T]):
    def __init__(self, jobs: Sequence[Job], workers: int) -> None:
        self.jobs = list(jobs)
        self.workers = max(1, workers)
        names = {job.name for job in self.jobs}
        self.waits_for = {job.name: job.after & names - {job.name} for job in self.jobs}
        self.finished: set[str] = set()
        self.results: dict[str, T] = {}
        self.reported = 0  # jobs[:reported] have been passed to `done`

    def ready(self, job: Job, running: int, alone_running: bool) -> bool:
        if alone_running or (job.alone and running):
            return False
        return self.waits_for[job.name] <= self.finished

    def next_jobs(self, waiting: list[Job], running: int, alone_running: bool) -> list[Job]:
        """The jobs to start now, in order."""
        chosen: list[Job] = []
        for job in waiting:
            if running + len(chosen) >= self.workers:
                break
            if job.alone and (running or chosen):
                break  # nothing after it starts before it
            if self.ready(job, running + len(chosen), alone_running):
                chosen.append(job)
                if job.alone:
                    break
        if not chosen and not running and waiting:
            chosen.append(waiting[0])  # a cycle of `after` (validation forbids one): never hang on it
        return chosen

    def report(self, done: Callable[[str, T], None], started: set[str], *, all_finished: bool) -> None:
        """`done` for the finished jobs in list order: a prefix while jobs are in flight, then
        (`all_finished`) every finished one, the never started skipped."""
        while self.reported < len(self.jobs):
            name = self.jobs[self.reported].name
            if name in self.results:
                done(name, self.results.pop(name))
            elif not all_finished or name in started:
                return
            self.reported += 1

    def run(self, work: Callable[[str], T], *, stop: Callable[[], bool], done: Callable[[str, T], None]) -> list[str]:
        waiting = list(self.jobs)
        started: set[str] = set()
        running: dict[Future[T], Job] = {}
        raised: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="reconcile-token") as pool:
            while waiting or running:
                try:
                    if raised is None and not stop():
                        alone_running = any(job.alone for job in running.values())
                        for job in self.next_jobs(waiting, len(running), alone_running):
                            waiting.remove(job)
                            started.add(job.name)
                            running[pool.submit(work, job.name)] = job
                    if not running:
                        break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    self.collect(finished, running)
                    self.report(done, started, all_finished=False)
                except BaseException as exc:  # noqa: BLE001 - raised again once nothing is in flight
                    raised = raised or exc
        self.report(done, started, all_finished=True)
        if raised is not None:
            raise raised
        return [job.name for job in waiting]

    def collect(self, finished: Iterable[Future[T]], running: dict[Future[T], Job]) -> None:
        for future in finished:
            job = running.pop(future)
            self.finished.add(job.name)
            self.results[job.name] = future.result()
