"""The fault matrix: every apply scenario (tests/apply/apply_world.py) run with the sandboxes
injecting one kind of fault at 10% of requests, with a fixed seed, then a clean apply.

Fault kinds (both sandboxes, `FaultRule(rate=...)`):
- `429`: rate limited, `Retry-After: 1`, before the request is handled;
- `5xx`: 500 or 503 (5% each), before the request is handled;
- `drop`: the connection closes without an answer, before the request is handled;
- `timeout`: the request IS handled, then the answer is held past the client's timeout and the
  connection dropped: an unclear outcome (a rotate may have happened, its new value lost).

Each run must end one of two ways: the faulty apply succeeds, or it stops with clear messages
(one line each, no traceback, no value). Then, faults off, a clean apply must converge: a plan
afterwards has no changes, the source has exactly one live credential (no orphan), and there was
no needless second rotation: applied rotations <= 1 + rotations whose answer was lost.

`python tests/reliability/fault_matrix.py [--full]` prints the summary table the README quotes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "apply"))

from apply_world import CONSUMERS, SOURCES, Scenario  # noqa: E402

from reconciler import engine  # noqa: E402
from reconciler.clients import connect  # noqa: E402
from reconciler.errors import ReconcileError  # noqa: E402
from reconciler_sandbox.core import FaultRule, known_secrets  # noqa: E402

KINDS = ("429", "5xx", "drop", "timeout")
RATE = 0.10
CLIENT_TIMEOUT = 0.5  # seconds: a held answer times out quickly
HOLD = 0.8  # how long a "timeout" fault holds the answer before dropping the connection
SEED = 20261122

# the scenarios of the apply suite: each source with each consumer kind, and one with all of them
SCENARIOS = [Scenario(source, (consumer,)) for source in SOURCES for consumer in CONSUMERS] + [
    Scenario("pat", CONSUMERS)]

ROTATION_PATHS = {
    "pat": r"/personal_access_tokens/\d+/rotate$",
    "project_token": r"/projects/.+/access_tokens(/\d+/rotate)?$",
    "group_token": r"/groups/.+/access_tokens(/\d+/rotate)?$",
    "trigger": r"/triggers$",
    "oauth_token": r"/api/v2/oauth/tokens(\.json)?$",
    "client_secret": r"/generate_secret(\.json)?$",
}


def rules(kind: str) -> list[FaultRule]:
    if kind == "5xx":
        return [FaultRule(kind="500", rate=RATE / 2), FaultRule(kind="503", rate=RATE / 2)]
    return [FaultRule(kind=kind, rate=RATE, after=kind == "timeout")]


@dataclass
class Outcome:
    scenario: str
    kind: str
    seed: int
    requests: int  # requests of the faulty apply
    injected: int  # faults injected in it
    first: str  # "ok", or "stopped"
    messages: list[str]  # why it stopped (one line each)
    converged: bool
    rotations: int  # applied mint/rotate requests over both applies
    lost_rotations: int  # of which the answer was lost
    orphans: int  # live credentials beyond the one expected
    seconds: float
    problems: list[str]  # invariant violations (empty = pass)


@contextlib.contextmanager
def short_client_timeouts(seconds: float = CLIENT_TIMEOUT) -> Iterator[None]:
    """Every client the engine builds times out after `seconds` (default 15 s)."""
    original = engine.connect
    engine.connect = functools.partial(connect, timeout=seconds)  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.connect = original  # type: ignore[assignment]


def _rotation_entries(live: Any) -> list[Any]:
    pattern = ROTATION_PATHS.get(live.scenario.source)
    if pattern is None:
        return []
    entries = live.gitlab.log.snapshot() + live.zendesk.log.snapshot()
    return [e for e in entries if e.method in ("POST", "PUT") and e.applied and re.search(pattern, e.path)]


def _clear(message: str, values: set[str]) -> str | None:
    """Why `message` is not a clear one-line message, or None."""
    if not message.strip():
        return "an empty message"
    if "\n" in message.strip() or "Traceback" in message:
        return "a multi-line message or a traceback"
    if any(v in message for v in values):
        return "a credential value in a message"
    return None


def run_case(scenario: Scenario, kind: str, seed: int, directory: Path,
             custom: list[FaultRule] | None = None) -> Outcome:
    """One faulty apply and one clean apply of `scenario` in `directory` (the working directory
    must be `directory`: the sandbox state lives under .reconcile/sandbox there). `custom`: these
    fault rules instead of `kind`'s."""
    started = time.monotonic()
    live = scenario.start(directory)
    problems: list[str] = []
    messages: list[str] = []
    try:
        for server in (live.gitlab, live.zendesk):
            server.faults.configure(rules=custom if custom is not None else rules(kind), seed=seed)
            server.faults.timeout_seconds = HOLD
        with short_client_timeouts():
            try:
                first = live.apply()
                messages = [f.line for f in first.failed]
                outcome = "ok" if first.ok else "stopped"
            except ReconcileError as err:
                messages, outcome = [str(err)], "stopped"
        requests = live.gitlab.log.count() + live.zendesk.log.count()
        injected = sum(sum(s.faults.injected.values()) for s in (live.gitlab, live.zendesk))
        for server in (live.gitlab, live.zendesk):
            server.faults.clear()
        time.sleep(HOLD if kind == "timeout" else 0)  # let held answers finish before the clean run
        values = {s for s in known_secrets() if len(s) >= 8}
        problems += [f"{why}: {m[:200] if why != 'a credential value in a message' else '(hidden)'}"
                     for m in messages if (why := _clear(m, values))]
        second = live.apply()
        if not second.ok:
            problems.append("the clean apply failed: " + "; ".join(f.line for f in second.failed))
        else:
            live.after_quiet()  # an old token kept until quiet goes in a later apply, once quiet
        after = live.plan()
        converged = second.ok and not after.has_changes and not after.errors
        if not converged:
            problems.append("no convergence: " + ", ".join(t.name for t in after.tokens if t.changes or t.blocked))
        rotations = _rotation_entries(live)
        lost = [e for e in rotations if e.status == 0]
        orphans = live.live_credentials() - 1
        if orphans:
            problems.append(f"{orphans} orphaned live credential(s)")
        expected = 0 if scenario.source == "external" else 1
        if len(rotations) > expected + len(lost):
            problems.append(f"needless rotation: {len(rotations)} applied, {len(lost)} answer(s) lost")
        if len(rotations) < expected:
            problems.append("the due token was never rotated")
        return Outcome(scenario=scenario.id, kind=kind, seed=seed, requests=requests, injected=injected, first=outcome,
                       messages=messages, converged=converged, rotations=len(rotations), lost_rotations=len(lost),
                       orphans=orphans, seconds=time.monotonic() - started, problems=problems)
    finally:
        live.stop()


def summary(outcomes: list[Outcome]) -> str:
    """A markdown table per fault kind: runs, faults injected, first-apply outcomes, convergence."""
    lines = ["| fault (10% of requests) | runs | requests | faults injected | first apply ok / stopped "
             "| converged after a clean apply | rotations (lost answers) | orphans | invariant violations |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        if not mine:
            continue
        ok = sum(o.first == "ok" for o in mine)
        lines.append(
            f"| {kind} | {len(mine)} | {sum(o.requests for o in mine)} | {sum(o.injected for o in mine)} "
            f"| {ok} / {len(mine) - ok} | {sum(o.converged for o in mine)} / {len(mine)} "
            f"| {sum(o.rotations for o in mine)} ({sum(o.lost_rotations for o in mine)}) "
            f"| {sum(o.orphans for o in mine)} | {sum(len(o.problems) for o in mine)} |")
    total = sum(o.seconds for o in outcomes)
    lines.append(f"\n{len(outcomes)} runs in {total:.1f} s.")
    return "\n".join(lines)


def cases(full: bool) -> list[tuple[Scenario, str, int]]:
    """Every scenario at least once (the fault kind turns with the scenario's index); `full`:
    every scenario with every fault kind."""
    out = []
    for i, scenario in enumerate(SCENARIOS):
        for j, kind in enumerate(KINDS):
            if full or j == i % len(KINDS):
                out.append((scenario, kind, SEED + i))
    return out


def main(argv: list[str]) -> int:
    full = "--full" in argv
    outcomes = []
    for scenario, kind, seed in cases(full):
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            outcome = run_case(scenario, kind, seed, Path(tmp))
        outcomes.append(outcome)
        mark = "ok" if not outcome.problems else "FAIL " + "; ".join(outcome.problems)
        print(f"{outcome.scenario:40} {kind:8} injected {outcome.injected:2}  first {outcome.first:8} {mark}",
              file=sys.stderr)
    print(summary(outcomes))
    return 0 if all(not o.problems for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
