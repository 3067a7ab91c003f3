"""The benchmark runner: plan (and apply, when `reconciler.apply` exists) against the sandboxes
with injected latency, compared with the minimum requests (benchmarks/minimum.py), the
per-resource baseline and the critical-path bound; at the configured concurrency and at 1.

    python benchmarks/run.py            the full run: writes benchmarks/RESULTS.md and results.json
    python benchmarks/run.py --quick    a small world, under a minute: .reconcile/bench/results-quick.*

Each measured command runs in a child process (`run.py --child ...`), so its wall time and peak
memory (`ru_maxrss`) are its own; the sandboxes run in this process, their request logs are the
authoritative request counts. Worlds come from benchmarks/generate.py and are deterministic, so
request counts reproduce exactly; times vary with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generate, minimum  # noqa: E402

HERE = Path(__file__).resolve().parent
FULL = {"tokens": 1000, "consumers": 5000, "projects": 200, "zendesk": 2}
QUICK = {"tokens": 100, "consumers": 500, "projects": 20, "zendesk": 2}
LATENCY = 0.05
CONCURRENCY = 4


# --- the child: one measured command ---------------------------------------------------------


def child(args: dict[str, Any]) -> dict[str, Any]:
    return child_apply(args) if args.get("apply") else child_plan(args)


def child_apply(args: dict[str, Any]) -> dict[str, Any]:
    """Run one apply in this process (the engine session built as `reconcile apply` builds it)."""
    from reconciler.apply import apply_plan
    from reconciler.clients import Endpoints, connect
    from reconciler.engine import Session
    from reconciler.inventory import load_inventory
    from reconciler.state import LocalStore, escrow_available

    t0 = time.perf_counter()
    inventory = load_inventory(args["inventory"])
    store = LocalStore(args["state"])
    env = dict(os.environ)
    clients = connect(inventory, env=env, endpoints=Endpoints(gitlab_url=args["gitlab_url"],
                                                               zendesk_netloc=args["zendesk_netloc"]),
                      concurrency=args["concurrency"])
    session = Session(inventory=inventory, clients=clients, store=store, ledger=store.load_ledger(), env=env,
                      now=generate.NOW, escrow_available=escrow_available(inventory.state, env), targets=())
    t1 = time.perf_counter()
    result = apply_plan(session)
    t2 = time.perf_counter()
    return {
        "load_s": t1 - t0, "apply_s": t2 - t1, "wall_s": t2 - t0, "client_requests": clients.requests(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rotated": len(result.rotated), "delivered": result.delivered, "verified": result.verified,
        "recorded": result.recorded, "revoked": result.revoked, "failed": len(result.failed),
        "failures": sorted({re.sub(r"'[^']*'|\([^)]*\)|bench-\d+", "…", f) for f in result.failed})[:10],
    }


def child_plan(args: dict[str, Any]) -> dict[str, Any]:
    """Run one plan in this process and report phases, requests and peak memory."""
    from reconciler.clients import Endpoints, connect
    from reconciler.inventory import load_inventory
    from reconciler.observe import observe
    from reconciler.plan import plan
    from reconciler.render import render
    from reconciler.state import LocalStore

    now = generate.NOW
    t0 = time.perf_counter()
    inventory = load_inventory(args["inventory"])
    ledger = LocalStore(args["state"]).load_ledger()
    t1 = time.perf_counter()
    clients = connect(inventory, endpoints=Endpoints(gitlab_url=args["gitlab_url"], zendesk_netloc=args["zendesk_netloc"]),
                      concurrency=args["concurrency"])
    cpu1 = time.process_time()
    observed = observe(inventory, clients, ledger, now)
    t2 = time.perf_counter()
    cpu2 = time.process_time()
    result = plan(inventory, observed, ledger, now, escrow_available=True)
    with open(os.devnull, "w") as sink:
        render(result, "text", sink)
    t3 = time.perf_counter()
    actions = Counter(tp.action for tp in result.tokens)
    return {
        "load_s": t1 - t0, "observe_s": t2 - t1, "plan_render_s": t3 - t2, "wall_s": t3 - t0,
        "observe_cpu_s": cpu2 - cpu1, "cpu_s": time.process_time(),
        "client_requests": clients.requests(),
        "throttled": sum(api.throttle.throttled for api in clients.apis.values()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens_by_action": dict(sorted(actions.items())), "errors": len(result.errors),
    }


def run_child(args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the parent: worlds, sandboxes, counting --------------------------------------------------


def provider_of(entry: Any, hosts: dict[str, str]) -> str:
    return "gitlab" if entry.service == "gitlab" else hosts.get(entry.host.split(":")[0], entry.host)


def resource_of(entry: Any) -> str:
    """A request's resource type, for the profile: project/group paths, ids and keys folded away."""
    path = entry.path.replace(".json", "")
    m = re.match(r"^/api/v4/(projects|groups)/(.+?)/(access_tokens|hooks|triggers|variables)(/[^/]+)?"
                 r"(/(?:rotate|custom_headers|url_variables))?(/[^/]+)?$", path)
    if m:
        path = (f"/api/v4/{m.group(1)}/:id/{m.group(3)}" + ("/:id" if m.group(4) else "") + (m.group(5) or "")
                + ("/:key" if m.group(6) else ""))
    path = re.sub(r"^/api/v4/admin/ci/variables/.+$", "/api/v4/admin/ci/variables/:key", path)
    path = re.sub(r"/[0-9A-HJKMNP-TV-Z]{26}(?=/|$)", "/:id", path)  # Zendesk webhook ULIDs
    path = re.sub(r"/\d+(?=/|$)", "/:id", path)
    return f"{entry.method} {path} {entry.status}"


def measure_plan(world_dir: Path, *, latency: float, concurrency: int, apply: bool = False) -> dict[str, Any]:
    from reconciler_sandbox.world import start_world

    world = start_world(world_dir / "world.yaml", now=generate.NOW)
    try:
        for server in (world.gitlab, world.zendesk):
            server.faults.configure(latency=latency)
            server.log.clear()
        args = {"inventory": str(world_dir / "inventory"), "state": str(world_dir / "state"),
                "gitlab_url": world.gitlab.url, "zendesk_netloc": world.endpoints.zendesk_netloc,
                "concurrency": concurrency, "apply": apply}
        env = {**os.environ, **world.credentials}
        sandbox_cpu = time.process_time()
        out = run_child(args, env)
        out["sandbox_cpu_s"] = time.process_time() - sandbox_cpu
        log = world.gitlab.log.snapshot() + world.zendesk.log.snapshot()
    finally:
        world.stop()
    hosts = {f"bench-zendesk-{k}.zendesk.com": f"zendesk-{k}" for k in range(1, 10)}
    per_provider = Counter(provider_of(e, hosts) for e in log)
    bound = max(math.ceil(n / concurrency) for n in per_provider.values()) * latency
    out.update({
        "concurrency": concurrency, "latency_s": latency, "requests": len(log),
        "mutations": sum(e.mutating for e in log), "requests_by_provider": dict(sorted(per_provider.items())),
        "critical_path_s": bound, "wall_over_bound": out["wall_s"] / bound,
        "observe_over_bound": out.get("observe_s", 0.0) / bound,
        "profile": dict(sorted(Counter(resource_of(e) for e in log).items())),
    })
    return out


def validate_time(repeats: int = 3) -> float:
    """`reconcile validate` of the example inventory, the whole command in a fresh process."""
    best = math.inf
    # the `reconcile` entry point (reconciler.cli has no __main__: `python -m reconciler.cli` exits
    # at once without validating anything, which is what this measured before)
    command = [sys.executable, "-c", "from reconciler.cli import main; main()", "validate", "--inventory",
               str(ROOT / "inventory")]
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        best = min(best, time.perf_counter() - started)
        if done.returncode != 0 or "ok:" not in done.stdout:
            raise SystemExit(f"reconcile validate of the example inventory failed (exit {done.returncode}):\n"
                             f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return best


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "load_before": round(os.getloadavg()[0], 2)}


def bench(params: dict[str, int], *, latency: float, concurrency: int, serial: bool, workdir: Path) -> dict[str, Any]:
    world_dir = workdir / "world"
    manifest = generate.generate(world_dir, generate.Params(**params))
    m = minimum.compute(world_dir / "inventory", world_dir / "world.yaml", world_dir / "state")
    result: dict[str, Any] = {"world": {**params, "drift": manifest["drift"], "source_kinds": manifest["sources"],
                                        "consumer_kinds": manifest["consumers"]},
                              "minimum": m.summary(), "minimum_by_provider": m.by_provider()}
    result["plan"] = measure_plan(world_dir, latency=latency, concurrency=concurrency)
    if serial:
        result["plan_serial"] = measure_plan(world_dir, latency=latency, concurrency=1)
        result["speedup"] = result["plan_serial"]["wall_s"] / result["plan"]["wall_s"]
    p = result["plan"]
    result["plan_over_minimum"] = p["requests"] / m.total
    result["baseline_over_plan"] = m.baseline / p["requests"]
    return result


APPLY_FULL = {"tokens": 100, "consumers": 500, "projects": 20, "zendesk": 2}
APPLY_QUICK = {"tokens": 20, "consumers": 100, "projects": 5, "zendesk": 2}
APPLY_MIX = {  # every kind apply can renew (API tokens are observe-only; external ones need a person)
    "gitlab_personal_access_token": 0.10, "gitlab_project_access_token": 0.30, "gitlab_group_access_token": 0.05,
    "gitlab_pipeline_trigger": 0.30, "zendesk_oauth_token": 0.15, "zendesk_oauth_client_secret": 0.10,
}


def bench_apply(params: dict[str, int], *, latency: float, concurrency: int, workdir: Path) -> dict[str, Any]:
    """Every token due (`not_before` today: the incident lever), no drift: N rotations into M consumers."""
    world_dir = workdir / "apply-world"
    p = generate.Params(**params, expiring=0.0, missing_tokens=0.0, stale=0.0, unrecorded=0.0, missing_variables=0.0,
                        attribute_drift=0.0, not_before=generate.NOW.date().isoformat(), source_mix=dict(APPLY_MIX))
    generate.generate(world_dir, p)
    m = minimum.apply_minimum(world_dir / "inventory", world_dir / "world.yaml", world_dir / "state", generate.NOW)
    measured = measure_plan(world_dir, latency=latency, concurrency=concurrency, apply=True)
    return {"world": params, "minimum": m.summary(), "apply": measured,
            "apply_over_minimum": measured["requests"] / m.total}


def apply_state() -> str:
    """Whether reconciler/apply.py is committed (the measurement is of the tree as it is)."""
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "reconciler/apply.py"], cwd=ROOT,
                                 capture_output=True).returncode == 0
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "reconciler/apply.py"], cwd=ROOT,
                               capture_output=True).returncode != 0
    except OSError:
        return "unknown"
    return "committed" if tracked and not dirty else "committed, with local changes" if tracked else "not committed yet"


# --- output ------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    mach, r = report["machine"], report["scale"]
    p, m = r["plan"], r["minimum"]
    w = r["world"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `python benchmarks/run.py{' --quick' if report['quick'] else ''}` "
        "(request counts are deterministic and reproduce exactly; times and memory vary with load).",
        "",
        "## Machine",
        "",
        f"- CPU: {mach['cpu'] or 'unknown'}, {mach['cores']} cores (shared with other work: load "
        f"{mach['load_before']} when the run started)",
        f"- Memory: {mach['memory']}; {mach['os']}; Python {mach['python']}",
        "- Sandboxes: in the runner process, on loopback; each measured plan runs in its own child process",
        "",
        f"## Plan: {w['tokens']} tokens, {w['consumers']} consumers, {w['projects']} projects, "
        f"{w['zendesk']} Zendesk instances, {p['latency_s'] * 1000:.0f} ms latency",
        "",
        f"World: sources {w['source_kinds']}; consumers {w['consumer_kinds']}; drift {w['drift']}.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| plan requests | {p['requests']} | <= 1.1 x minimum ({m['minimum']}) = {1.1 * m['minimum']:.0f} "
        f"| {'yes' if r['plan_over_minimum'] <= 1.1 else 'NO'} ({r['plan_over_minimum']:.3f} x) |",
        f"| per-resource baseline | {m['baseline']} | >= 5 x plan requests | "
        f"{'yes' if r['baseline_over_plan'] >= 5 else 'NO'} ({r['baseline_over_plan']:.2f} x fewer) |",
        f"| plan wall time (load + observe + plan + render) at concurrency {p['concurrency']} | {p['wall_s']:.2f} s "
        f"| <= 1.5 x critical path ({p['critical_path_s']:.2f} s) | "
        f"{'yes' if p['wall_over_bound'] <= 1.5 else 'NO'} ({p['wall_over_bound']:.2f} x) |",
        f"| of which observe (the network part) | {p['observe_s']:.2f} s | | ({p['observe_over_bound']:.2f} x the bound) |",
        f"| peak memory of the plan process (ru_maxrss) | {p['peak_rss_mb']:.0f} MB | < 250 MB | "
        f"{'yes' if p['peak_rss_mb'] < 250 else 'NO'} |",
        f"| `reconcile validate` of the example inventory | {report['validate_s']:.2f} s | < 1 s | "
        f"{'yes' if report['validate_s'] < 1 else 'NO'} |",
        f"| mutating requests during plan | {p['mutations']} | 0 | {'yes' if p['mutations'] == 0 else 'NO'} |",
        f"| 429 answers seen | {p['throttled']} | | |",
    ]
    if "plan_serial" in r:
        s = r["plan_serial"]
        lines.append(f"| plan wall time at concurrency 1 | {s['wall_s']:.2f} s (observe {s['observe_s']:.2f} s) "
                     f"| | speedup {r['speedup']:.2f} x |")
    lines += [
        "",
        f"Minimum ({m['minimum']}): {m['list_calls']} list calls in {m['pages']} pages, {m['hook_details']} "
        f"webhook details (`mode: recreate`), {m['identifications']} identifications of values the ledger does "
        f"not prove; by provider {r['minimum_by_provider']}. Requests by provider: {p['requests_by_provider']}. "
        f"Critical path = max over providers of ceil(requests / {p['concurrency']}) x latency. "
        f"Phases: load {p['load_s']:.2f} s, observe {p['observe_s']:.2f} s, plan + render {p['plan_render_s']:.2f} s. "
        f"Tokens by action: {p['tokens_by_action']}.",
        "",
        "### Requests of the plan by resource",
        "",
        "| requests | method, resource, status |",
        "|---|---|",
    ]
    lines += [f"| {n} | `{k}` |" for k, n in sorted(p["profile"].items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", "## Apply", ""]
    if report.get("apply"):
        a, am = report["apply"], report["apply"]["minimum"]
        r2, w2 = a["apply"], a["world"]
        lines += [
            f"{am['due_tokens']} rotations into {am['their_consumers']} consumers ({w2['projects']} projects, "
            f"{w2['zendesk']} Zendesk instances, {r2['latency_s'] * 1000:.0f} ms latency, concurrency "
            f"{r2['concurrency']}); every token due through `not_before`. `reconciler/apply.py` at this run: "
            f"{report.get('apply_state', 'unknown')}.",
            "",
            "| measure | value | target | met |",
            "|---|---|---|---|",
            f"| apply requests (observe included) | {r2['requests']} | <= 1.2 x minimum ({am['minimum']}) = "
            f"{1.2 * am['minimum']:.0f} | {'yes' if a['apply_over_minimum'] <= 1.2 else 'NO'} "
            f"({a['apply_over_minimum']:.2f} x) |",
            f"| mutating requests | {r2['mutations']} | | |",
            f"| wall time | {r2['wall_s']:.2f} s | | |",
            f"| peak memory (ru_maxrss) | {r2['peak_rss_mb']:.0f} MB | | |",
            f"| result | {r2['rotated']} rotated, {r2['delivered']} delivered, {r2['verified']} verified, "
            f"{r2['recorded']} recorded write-only, {r2['revoked']} revoked, {r2['failed']} failed | | |",
            "",
            f"Minimum ({am['minimum']}): the plan's {am['plan']}, {am['renewals']} mints/rotations, {am['revokes']} "
            f"revocations of old tokens, {am['writes']} consumer writes, {am['authentications']} checks of new "
            f"values, {am['readbacks']} read-backs (one per token and scope of its readable consumers).",
        ]
        if r2["failures"]:
            lines += ["", "Failures (kinds of):", ""] + [f"- {f}" for f in r2["failures"]]
        lines += ["", "### Requests of the apply by resource", "", "| requests | method, resource, status |",
                  "|---|---|"]
        lines += [f"| {n} | `{k}` |" for k, n in sorted(r2["profile"].items(), key=lambda kv: (-kv[1], kv[0]))]
    else:
        lines += [report.get("apply_note", "")]
    lines += ["", "## Notes", "", NOTES.strip(), ""]
    return "\n".join(lines)


NOTES = """
- **Minimum** (`benchmarks/minimum.py`, computed from the inventory, the world seed and the ledger
  without importing the engine): one list per (provider, project/group/user/instance, resource
  type) times its pages (GitLab `per_page=100`, Zendesk cursor pages of 100), `GET /user` for the
  credential's own PATs, one detail per `mode: recreate` GitLab webhook (the list omits the
  URL-variable and custom-header keys that a recreate must not lose), and one identification per
  distinct value a readable consumer holds that the ledger does not prove (only an authenticated
  request tells which GitLab or Zendesk OAuth token a value is). The plan makes exactly these.
- **Baseline**: one GET per token with a live source and one per consumer, as a Terraform refresh.
  The ratio is about 6 because the world has 25 consumers per project; it grows with density.
- **Critical-path bound**: each provider's requests over its own concurrency (the throttle is per
  provider), times the injected latency; GitLab dominates. It counts no CPU.
- **Wall time**: end to end within 1.5 x the bound since this round of work (was 1.69 x). Loading
  the inventory went from about 3 s to 1.0-1.5 s: the schema check is a compiled yes/no validator
  (fastjsonschema, about 0.25 s with compiling it) and jsonschema runs only to explain an invalid
  inventory (same diagnostics: `tests/benchmarks/test_fast_schema.py` checks both agree on all
  70 bad-inventory cases); YAML uses libyaml's parser and takes text scalars as they are (about
  0.6 s, mostly parsing and recording 80,000 positions). Observe's client CPU went from 5.0 s to
  2.6 s (`observe_cpu_s`): requests re-read the proxy environment on every request (now once
  per host), python-gitlab built an object per listed row and a lazy project object with its
  sub-managers per scope (lists now come as plain dicts through `Gitlab.http_list`), and Zendesk
  webhooks were found by a scan per consumer (now an index). Two full runs after these changes:
  1.43 x and 1.35 x (this one). What is left: observe is 1.2 x the
  bound because each request takes about 55 ms, not 50 (server and client work on 2 shared
  cores), and identification waits for all lists (121 requests after the rounds of lists);
  plan + render is about 1 s, half of it `Observed.digest()` (dataclasses.asdict over 6,000
  observations, in `reconciler/observed.py`, not changed here) and OAuth proposals rendered as
  YAML. Overlapping loading with the network was not done: observation needs the whole
  inventory to deduplicate its lists.
- **Speedup** at concurrency 4 over 1 is below 4 for the same reasons: the CPU phases do not shrink
  with concurrency.
- **Validate** is timed through the `reconcile` entry point in a fresh process (interpreter
  start included). Earlier runs reported 0.06-0.08 s because they ran `python -m reconciler.cli`,
  which has no `__main__` and validated nothing.
- **Memory**: `ru_maxrss` of the child that loads, observes, plans and renders (interpreter and
  libraries included, about 60 MB of it).
- **Apply minimum**: verification comes before the old token is revoked (apply's order), so it is
  per token: one check of the new value and one read per scope holding the token's readable
  consumers. A token's consumers are spread over projects, so that is about one read per readable
  consumer; a single list per scope for the whole apply would need verification after every
  token's delivery, giving up the order that keeps the old token until the new one is proven.
- **Apply** (`reconciler/apply.py` as committed at this run; see its profile above): every mint,
  rotate, revoke and consumer write is made exactly once (mutating requests = renewals + revokes +
  writes of the minimum; `tests/benchmarks` asserts it). The 176 requests above the minimum are
  exactly its two deliberate safety reads: a check that the provider credential is valid before
  every GitLab rotate (26, `GET /personal_access_tokens/self`: a rotate must never go out with a
  revoked token), and an app setting write reading its installation before and after the `PUT` to
  prove the other settings survived (150: Zendesk does not document whether `settings` merges).
  The "before" read stays a fresh GET: taken from observation, a setting someone else changed
  since would look changed by our `PUT`, and putting it "back" would undo their change; read just
  before the `PUT`, that window is one request. Removed in this round (was 1477, 1.30 x):
  verification reads one list per (provider, resource, scope) after all of a token's writes
  instead of a GET per consumer, and none where observe found the place write-only (hidden
  variable, secure setting) (-102); a GitLab hook is written from the row or detail observe read
  instead of being read again (-48); a Zendesk OAuth mint takes the client's id from the clients
  list observe fetched (-15). Apply still runs tokens one after another, so its wall time is about
  the sum of its requests' latencies (concurrency does not help it yet).
- **Fixed along the way** (each its own commit): the sandbox server answered every request about
  40 ms late (Nagle's algorithm against the client's delayed ACK: headers and body went out in two
  writes); held values were identified one at a time after the lists (121 requests in series on
  the full world, 7 s); loading an inventory merged key positions once per token (quadratic, 1.8 s
  on 1,000 tokens); the planner ran DeepDiff on every consumer's attributes even when equal (1.2 s
  of 2.1 s); a 403 from Zendesk `GET /oauth/tokens/current` (a live token whose scopes do not let
  it read itself) was taken for a dead token; with the budget spent and no reset time (Zendesk),
  the throttle now probes only when nothing is in flight. Then, for the two missed targets:
  jsonschema over 6,000 objects (1.7 s; now a compiled check), requests' per-request proxy
  lookups (a quarter of observe's client CPU), a python-gitlab object per listed row, a quadratic
  webhook lookup, and the avoidable apply reads above.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="reconcile benchmarks")
    ap.add_argument("--quick", action="store_true", help="a small world: under a minute")
    ap.add_argument("--latency", type=float, default=LATENCY)
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY)
    ap.add_argument("--no-serial", action="store_true", help="skip the concurrency-1 run")
    ap.add_argument("--out", type=Path, default=None, help="directory for results (default: benchmarks/)")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite RESULTS.md from benchmarks/results.json (no measuring)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.render:
        (HERE / "RESULTS.md").write_text(markdown(json.loads((HERE / "results.json").read_text())))
        return 0
    started = time.perf_counter()
    report: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        report["scale"] = bench(QUICK if args.quick else FULL, latency=args.latency, concurrency=args.concurrency,
                                serial=not args.no_serial, workdir=Path(tmp))
        if (ROOT / "reconciler" / "apply.py").is_file():
            report["apply_state"] = apply_state()
            report["apply"] = bench_apply(APPLY_QUICK if args.quick else APPLY_FULL, latency=args.latency,
                                          concurrency=args.concurrency, workdir=Path(tmp))
        else:
            report["apply_note"] = "Not measured: `reconciler/apply.py` is not in the tree."
    report["validate_s"] = validate_time()
    report["elapsed_s"] = time.perf_counter() - started
    # the quick run is a smoke test: its files go where the tool keeps its working state (ignored)
    out = args.out or (ROOT / ".reconcile" / "bench" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    stem = "results-quick" if args.quick else "results"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    md = markdown(report)
    (out / ("results-quick.md" if args.quick else "RESULTS.md")).write_text(md)
    print(md)
    print(f"\n({report['elapsed_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
