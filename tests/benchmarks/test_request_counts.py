"""Request counts of the plan on small generated worlds (benchmarks/generate.py), against the
engine-independent minimum and the per-resource baseline (benchmarks/minimum.py). Counts only:
they are deterministic; times and memory are for benchmarks/run.py, never assertions here."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import generate, minimum  # noqa: E402
from reconciler.clients import connect  # noqa: E402
from reconciler.inventory import load_inventory  # noqa: E402
from reconciler.observe import observe  # noqa: E402
from reconciler.pipeline import plan_writes  # noqa: E402
from reconciler.state import LocalStore  # noqa: E402
from reconciler_sandbox.world import start_world  # noqa: E402

SMALL = generate.Params(tokens=40, consumers=300, projects=1, zendesk=2, seed=7)


def plan_world(world_dir: Path, concurrency: int = 4):
    """Plan the world in-process; (plan, server request log, client-side count)."""
    world = start_world(world_dir / "world.yaml", now=generate.NOW)
    try:
        inventory = load_inventory(world_dir / "inventory")
        ledger = LocalStore(world_dir / "state").load_ledger()
        clients = connect(inventory, env=world.env({}), endpoints=world.endpoints, concurrency=concurrency)
        _, result = plan_writes(inventory, observe(inventory, clients, ledger, generate.NOW), clients, ledger,
                                generate.NOW, escrow_available=True)
        log = world.gitlab.log.snapshot() + world.zendesk.log.snapshot()
        return result, log, clients.requests()
    finally:
        world.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    manifest = generate.generate(out, SMALL)
    return out, manifest


def test_the_world_has_every_kind_and_its_inventory_is_valid(small):
    out, manifest = small
    assert set(manifest["sources"]) == set(generate.SOURCE_MIX)
    assert set(manifest["consumers"]) == set(generate.CONSUMER_MIX)
    assert sum(manifest["sources"].values()) == SMALL.tokens
    assert sum(manifest["consumers"].values()) == SMALL.consumers
    inventory = load_inventory(out / "inventory")  # raises on any error
    assert len(inventory.tokens) == SMALL.tokens and len(inventory.consumers()) == SMALL.consumers
    assert manifest["drift"]["stale"] > 0 and manifest["drift"]["expiring"] > 0


def test_generation_is_deterministic(tmp_path):
    generate.generate(tmp_path / "a", SMALL)
    generate.generate(tmp_path / "b", SMALL)
    generate.generate(tmp_path / "c", generate.Params(**{**SMALL.__dict__, "seed": 8}))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    texts = {p: (tmp_path / "a" / p).read_bytes() for p in files if p.suffix != ".json" or p.name != "manifest.json"}
    assert all((tmp_path / "b" / p).read_bytes() == t for p, t in texts.items())
    assert (tmp_path / "c" / "world.yaml").read_bytes() != texts[Path("world.yaml")]


def test_plan_requests_equal_the_minimum_and_beat_the_baseline(small):
    out, _ = small
    m = minimum.compute(out / "inventory", out / "world.yaml", out / "state", now=generate.NOW)
    result, log, client_count = plan_world(out)
    assert not [e for e in log if e.mutating], "a plan changed something live"
    assert client_count == len(log)  # the Throttle counts every request the sandboxes saw
    assert m.pages > len(m.lists)  # the world has lists of several pages (one project, many variables)
    assert m.identifications > 0
    # a mode-recreate hook's detail only for a hook the plan recreates (tests/engine/test_write_reads.py)
    details = [e for e in log if re.fullmatch(r"/api/v4/(projects|groups)/.+/hooks/\d+", e.path)]
    assert m.details <= len(details) == len([c for t in result.tokens for c in t.consumers if c.action == "recreate"])
    # the minimum is derived from the files alone (a value whose fingerprint a record of its token
    # proves needs no identification, whichever consumer the record is of): the engine may make more
    assert m.total <= len(log) <= 1.1 * m.total
    assert m.baseline >= 5 * len(log)
    assert not result.errors


def test_concurrency_does_not_change_the_requests(small):
    out, _ = small
    _, parallel, _ = plan_world(out, concurrency=4)
    _, serial, _ = plan_world(out, concurrency=1)
    key = lambda e: (e.service, e.host, e.method, e.path, e.query_keys, e.status)  # noqa: E731
    assert sorted(map(key, parallel)) == sorted(map(key, serial))


def test_minimum_does_not_use_the_engine():
    tree = ast.parse((ROOT / "benchmarks" / "minimum.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m == "reconciler" or m.startswith("reconciler.")}
    assert "reconciler_sandbox.world" not in imported  # it imports the engine's model


def test_minimum_counts_pages_and_identifications_independently(tmp_path):
    """A hand-checked world (seed 1): one PAT whose one consumer, a readable project variable,
    holds its value without a ledger record (one identification), and 150 more variables in that
    project (two pages)."""
    p = generate.Params(tokens=1, consumers=1, projects=1, zendesk=1, seed=1, unrecorded=1.0, stale=0.0,
                        missing_variables=0.0, attribute_drift=0.0, source_mix={"gitlab_personal_access_token": 1.0})
    generate.generate(tmp_path, p)
    world = tmp_path / "world.yaml"
    extra = "".join(f"  - project: bench/g00/p0000\n    key: EXTRA_{i}\n    value: plain-value-{i}\n" for i in range(150))
    world.write_text(world.read_text().replace("  variables:\n", "  variables:\n" + extra, 1))
    consumer = next(iter(load_inventory(tmp_path / "inventory").tokens.values())).consumers[0]
    assert (consumer.kind, consumer.project, consumer.hidden) == ("gitlab_ci_variable", "bench/g00/p0000", None)
    m = minimum.compute(tmp_path / "inventory", world, tmp_path / "state", now=generate.NOW)
    assert m.lists == {("gitlab-bench", "user", ""): 1, ("gitlab-bench", "pats", generate.BOT): 1,
                       ("gitlab-bench", "project_variables", "bench/g00/p0000"): 2}
    # the credential's own PAT is listed beside the source's: its id is asked once, so it is not
    # reported as unmanaged
    assert (m.details, m.identifications, m.credential_lookups, m.total, m.baseline) == (0, 1, 1, 6, 2)
    result, log, _ = plan_world(tmp_path)
    assert len(log) == 6
    assert [e.path for e in log].count("/api/v4/personal_access_tokens/self") == 2
    assert not [f for f in result.findings if f.code == "unmanaged"]
    assert result.tokens[0].consumers[0].state == "verified"  # identified as the current token


def test_apply_minimum_counts_one_renewal_per_due_token_and_one_write_per_consumer(tmp_path):
    mix = {"gitlab_pipeline_trigger": 0.5, "gitlab_personal_access_token": 0.25, "zendesk_api_token": 0.25}
    p = generate.Params(tokens=8, consumers=16, projects=2, zendesk=1, seed=5, expiring=0.0, missing_tokens=0.0,
                        stale=0.0, unrecorded=0.0, missing_variables=0.0, attribute_drift=0.0,
                        not_before=generate.NOW.date().isoformat(), source_mix=mix)
    generate.generate(tmp_path, p)
    inventory = load_inventory(tmp_path / "inventory")
    m = minimum.apply_minimum(tmp_path / "inventory", tmp_path / "world.yaml", tmp_path / "state", generate.NOW)
    renewable = [n for n, t in inventory.tokens.items() if t.source.kind != "zendesk_api_token"]
    assert sorted(m.due) == sorted(renewable) and m.renewals == len(renewable) == 6  # API tokens: observe only
    assert m.revokes == 4  # triggers overlap: the old one is deleted; PATs rotate in place
    assert m.authentications == 6  # each new value is checked once: PATs authenticate, owned triggers read back
    consumers = [c for n in renewable for c in inventory.tokens[n].consumers]
    recreate = sum(getattr(c, "mode", "") == "recreate" for c in consumers)
    assert (m.consumers, m.writes) == (len(consumers), len(consumers) + recreate)
    plan_min = minimum.compute(tmp_path / "inventory", tmp_path / "world.yaml", tmp_path / "state", now=generate.NOW)
    assert m.plan == plan_min.total and m.total > m.plan


def test_apply_writes_each_thing_exactly_once(tmp_path):
    """Apply of a small world where every token is due: mutating requests are exactly the
    minimum's mints/rotations, revocations and consumer writes, and the reads are the minimum's
    plus the two deliberate safety reads benchmarks/RESULTS.md explains, and the last-use reads
    before revoking (reconciler.quiet)."""
    from dataclasses import replace

    from benchmarks.run import APPLY_MIX
    from reconciler.apply import apply_plan
    from reconciler.engine import Session
    from reconciler.kinds import UseRecorded, capable, source_kind
    from reconciler.observe import fetch_list, fetch_lists

    p = generate.Params(tokens=12, consumers=48, projects=3, zendesk=2, seed=11, expiring=0.0, missing_tokens=0.0,
                        stale=0.0, unrecorded=0.0, missing_variables=0.0, attribute_drift=0.0,
                        not_before=generate.NOW.date().isoformat(), source_mix=dict(APPLY_MIX))
    generate.generate(tmp_path, p)
    m = minimum.apply_minimum(tmp_path / "inventory", tmp_path / "world.yaml", tmp_path / "state", generate.NOW)
    world = start_world(tmp_path / "world.yaml", now=generate.NOW)
    try:
        inventory = load_inventory(tmp_path / "inventory")
        store = LocalStore(tmp_path / "state")
        env = world.env({})
        session = Session(inventory=inventory, clients=connect(inventory, env=env, endpoints=world.endpoints),
                          store=store, ledger=store.load_ledger(), env=env, now=generate.NOW, escrow_available=True,
                          targets=())
        result = apply_plan(session)
        log = world.gitlab.log.snapshot() + world.zendesk.log.snapshot()
        # the third deliberate read: before revoking the old tokens of an overlap, their source's
        # lists again, for when each was last used (only revoked when quiet); measured by making it
        assert result.plan is not None
        revoking = [inventory.tokens[t.name] for t in result.plan.tokens if t.strategy == "overlap"
                    and isinstance(source_kind(t.source_kind), UseRecorded)]
        for token in revoking:  # each token's own, as apply reads them: those saying when it was used
            use_keys = capable(source_kind(token.source.kind), UseRecorded).use_keys(token)
            if use_keys is None:
                fetch_lists([replace(token, consumers=())], session.clients, max_workers=1)
            for key in use_keys or ():
                fetch_list(session.clients[key.provider], key)
        quiet_reads = len(world.gitlab.log.snapshot() + world.zendesk.log.snapshot()) - len(log)
    finally:
        world.stop()
    assert result.ok, result.failed
    assert len(result.rotated) == len(m.due) == 12
    assert sum(e.mutating for e in log) == m.renewals + m.revokes + m.writes
    assert len(log) >= m.total
    # reads: beyond the minimum only the two deliberate safety reads (RESULTS.md): a credential
    # check before each GitLab rotate, and an app setting's installation read before its PUT (the
    # PUT's answer is the read after it)
    paths = [(e.method, e.path) for e in log]
    inventory = load_inventory(tmp_path / "inventory")
    gitlab_tokens = ("gitlab_personal_access_token", "gitlab_project_access_token", "gitlab_group_access_token")
    value_checks = sum(1 for n in m.due if inventory.tokens[n].source.kind in gitlab_tokens)
    checks = sum(1 for method, path in paths if method == "POST" and path.endswith("/rotate"))  # one per rotate
    assert sum(1 for _, path in paths if path.endswith("/personal_access_tokens/self")) == (
        value_checks + checks + m.credential_lookups)
    installation_reads = sum(1 for method, path in paths if method == "GET" and "/apps/installations/" in path)
    assert installation_reads == sum(1 for method, path in paths if method == "PUT" and "/apps/installations/" in path)
    assert len(log) == m.total + checks + installation_reads + quiet_reads, (
        len(log), m.total, checks, installation_reads, quiet_reads)
    assert checks and installation_reads  # the world exercises both
