"""GitLabStore against the GitLab sandbox's Terraform-state endpoint, through python-gitlab."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import gitlab
import pytest

from reconciler.inventory.model import GitLabProvider, StateConfig
from reconciler.secret import Secret
from reconciler.state import Escrow, Ledger, LedgerRecord, StateError, generate_key, open_store, parse_key
from reconciler.state.gitlab import GitLabStore
from reconciler.state.store import process_space
from reconciler_sandbox.gitlab import serve_gitlab

PROJECT = "ops/reconcile-state"


def _value(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(20)


@pytest.fixture(scope="module")
def world():
    """A sandbox with a maintainer, a developer, a CI job token and the state project; shared by
    the module (each test uses its own state name) because starting a server costs ~0.4s."""
    creds = {"maintainer": _value("glpat-"), "developer": _value("glpat-"), "job": _value("glcbt-")}
    seed = {
        "users": [
            {"username": "ops-bot", "tokens": [{"name": "state", "scopes": ["api"], "value": creds["maintainer"]}]},
            {"username": "dev", "tokens": [{"name": "dev", "scopes": ["api"], "value": creds["developer"]}]},
        ],
        "projects": [{"path_with_namespace": PROJECT, "members": {"ops-bot": 40, "dev": 30}}],
        "job_tokens": [{"project": PROJECT, "user": "ops-bot", "value": creds["job"]}],
    }
    with serve_gitlab(seed) as server:
        yield server, creds


@pytest.fixture
def name(world) -> str:
    world[0].faults.clear()
    return "state-" + secrets.token_hex(4)


def client(server, token: str) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, private_token=token, timeout=5, retry_transient_errors=True)


def store_for(server, token: str, name: str) -> GitLabStore:
    store = GitLabStore(client(server, token), PROJECT, name)
    store.poll_interval = 0.05
    return store


def record(consumer: str, token_id: str = "5") -> LedgerRecord:
    return LedgerRecord(
        consumer=consumer,
        token="sync-trigger",
        token_id=token_id,
        token_created_at="2026-05-01T00:00:00Z",
        fingerprint="sha256:" + "1" * 64,
        delivered_at="2026-05-01T00:01:00Z",
        verified=False,
    )


def test_empty_state_reads_empty(world, name):
    server, creds = world
    store = store_for(server, creds["maintainer"], name)
    before = len(server.log.mutations())
    assert store.load_ledger().records() == [] and store.load_escrow_doc() is None
    assert len(server.log.mutations()) == before


def test_ledger_and_escrow_round_trip_keep_each_other_and_version(world, name):
    server, creds = world
    store = store_for(server, creds["maintainer"], name)
    key = parse_key(generate_key(), "K")
    value = _value("testvalue-")
    ledger = Ledger([record("a"), record("b")])
    store.save_ledger(ledger)
    Escrow(store, key).put("pat", "41", Secret(value), "2026-05-01T00:00:00Z")
    again = store_for(server, creds["maintainer"], name)
    assert again.load_ledger() == ledger  # the escrow save kept the ledger
    assert Escrow(again, key).get("pat").value.reveal() == value
    state = server.service.terraform_state(PROJECT, name)
    assert [v["version"] for v in state["versions"]] == [1, 2]  # GitLab keeps a version per save
    # no plaintext in anything GitLab stores: every version, decoded
    for version in state["versions"]:
        assert value.encode() not in base64.b64decode(version["data"])


def test_lock_conflict_names_the_holder_and_updates_carry_the_lock_id(world, name):
    server, creds = world
    first = store_for(server, creds["maintainer"], name)
    other = store_for(server, creds["maintainer"], name)
    with first.acquire("apply 1") as handle:
        first.save_ledger(Ledger([record("a")]))  # carries ?ID=, accepted while locked
        with pytest.raises(StateError) as err:
            other.acquire("apply 2", wait=0.2)
        message = str(err.value)
        assert "GitLab user ops-bot" in message and handle.id in message and "after waiting 0.2s" in message
        # a writer without the lock is refused while it is held
        with pytest.raises(StateError, match="saving the ledger failed: HTTP 409"):
            other.save_ledger(Ledger())
        assert other.lock_holder().id == handle.id
    assert server.service.terraform_state(PROJECT, name)["lock"] is None
    assert other.lock_holder() is None
    other.acquire("apply 2").release()
    assert first.load_ledger().get("a") is not None


def test_second_apply_waits_for_release(world, name):
    server, creds = world
    first = store_for(server, creds["maintainer"], name)
    handle = first.acquire("apply 1")
    threading.Timer(0.2, handle.release).start()
    start = time.monotonic()
    second = store_for(server, creds["maintainer"], name).acquire("apply 2", wait=5)
    assert time.monotonic() - start >= 0.15
    second.release()


def test_force_unlock_of_a_stale_lock(world, name):
    server, creds = world
    store_for(server, creds["maintainer"], name).acquire("crashed apply")  # never released
    store = store_for(server, creds["maintainer"], name)
    removed = store.force_unlock()
    assert removed is not None and removed.owner == "GitLab user ops-bot"
    assert store.lock_holder() is None and store.force_unlock() is None
    store.acquire("next").release()


def test_job_token_is_sent_as_basic_auth(world, name):
    server, creds = world
    provider = GitLabProvider(name="gl", url=server.url, token_env="UNSET_TOKEN")
    env = {"CI_JOB_TOKEN": creds["job"], "CI_SERVER_URL": server.url}
    store = open_store(StateConfig(backend="gitlab", provider="gl", project=PROJECT, name=name), {"gl": provider}, env)
    sent = []
    store.gl.session.hooks["response"].append(lambda r, *a, **k: sent.append(dict(r.request.headers)))
    with store.acquire("ci job"):
        store.save_ledger(Ledger([record("a")]))
    assert store.load_ledger().get("a") is not None
    # GitLab takes a job token on these routes only as basic auth (job_token_allowed: :basic_auth)
    assert sent and all(h["Authorization"].startswith("Basic ") and "JOB-TOKEN" not in h for h in sent)


def test_lost_lock_answer_is_recognised_as_our_lock(world, name):
    from reconciler_sandbox.core import FaultRule

    server, creds = world
    server.faults.configure(rules=[FaultRule("502", nth=(1,), method="POST", path=r"/lock$", after=True)])
    store = store_for(server, creds["maintainer"], name)
    handle = store.acquire("apply")  # applied, answer lost, retried: 409 naming our own lock id
    assert server.service.terraform_state(PROJECT, name)["lock"]["ID"] == handle.id
    store.save_ledger(Ledger([record("a")]))
    handle.release()
    assert server.service.terraform_state(PROJECT, name)["lock"] is None


def test_developer_cannot_write(world, name):
    server, creds = world
    store = store_for(server, creds["developer"], name)
    with pytest.raises(StateError, match=r"saving the ledger failed: HTTP 403: .*Maintainer"):
        store.save_ledger(Ledger())


def test_corrupt_remote_document_is_a_state_error(world, name):
    server, creds = world
    gl = client(server, creds["maintainer"])
    path = f"/projects/{PROJECT.replace('/', '%2F')}/terraform/state/{name}"
    gl.http_request("post", path, post_data=b'{"serial": 1, "something": "else"}', raw=True)
    with pytest.raises(StateError, match="not a reconcile state document"):
        store_for(server, creds["maintainer"], name).load_ledger()
    gl.http_request("post", path, post_data=b'{"serial": 2, "reconc', raw=True)
    with pytest.raises(StateError, match=rf"GitLab Terraform state '{name}' of project ops/reconcile-state .*not valid JSON"):
        store_for(server, creds["maintainer"], name).load_ledger()


def test_unknown_project_is_a_clear_error(world, name):
    server, creds = world
    store = GitLabStore(client(server, creds["maintainer"]), "no/such", name)
    with pytest.raises(StateError, match="HTTP 404: no such project"):
        store.save_ledger(Ledger())


def test_saves_under_the_lock_skip_the_read_and_stay_consistent(world, name):
    server, creds = world
    store = store_for(server, creds["maintainer"], name)
    key = parse_key(generate_key(), "K")
    store.save_ledger(Ledger([record("seed")]))
    start = server.log.count()
    with store.acquire("apply"):
        ledger = store.load_ledger()
        escrow = Escrow(store, key)
        escrow.put("pat", "9", Secret(_value("testvalue-")), "2026-05-01T00:00:00Z")
        for i in range(5):
            ledger.record(record(f"c{i}"))
            store.save_ledger(ledger)
        escrow.drop("pat")
    calls = [(e.method, e.path.rsplit("/", 1)[-1]) for e in server.log.snapshot()[start:]]
    assert calls.count(("GET", name)) <= 2  # the ledger read (+ the escrow's first read), not one per save
    assert calls.count(("POST", name)) == 7
    fresh = store_for(server, creds["maintainer"], name)
    assert [r.consumer for r in fresh.load_ledger().records()] == ["c0", "c1", "c2", "c3", "c4", "seed"]
    assert Escrow(fresh, key).tokens() == []


# --- the holder and its lease: GitLab keeps only ID, user and time, so the ID names the holder ---


def _document(server, name) -> dict:
    versions = server.service.terraform_state(PROJECT, name)["versions"]
    return json.loads(base64.b64decode(versions[-1]["data"]))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_id_names_host_and_pid_and_saves_carry_the_lease(world, name):
    server, creds = world
    first, other = store_for(server, creds["maintainer"], name), store_for(server, creds["maintainer"], name)
    with first.acquire("apply 1") as handle:
        assert f"/{os.getpid()}@{socket.gethostname()}/{process_space()}" in handle.id
        first.save_ledger(Ledger([record("a")]))
        assert _document(server, name)["reconcile"]["lock"]["expires"] == handle.info.expires
        holder = other.lock_holder()
        assert (holder.pid, holder.host, holder.expires) == (os.getpid(), socket.gethostname(), handle.info.expires)
        assert holder.stale_reason() is None  # this very process: alive
        with pytest.raises(StateError, match="the state is locked"):
            other.acquire("apply 2")


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(world, name):
    server, creds = world
    crashed = store_for(server, creds["maintainer"], name)
    pid = _dead_pid()
    stale = crashed._new_lock("crashed apply")
    stale = dataclasses.replace(stale, pid=pid, id=stale.id.replace(f"/{os.getpid()}@", f"/{pid}@"))
    assert crashed._try_lock(stale) is None  # taken, and its process dies before any save
    store = store_for(server, creds["maintainer"], name)
    with store.acquire("next apply") as handle:
        assert f"its process {pid} on this host ({socket.gethostname()}) no longer exists" in handle.taken_over
        assert f"lock id {stale.id}" in handle.taken_over
        assert server.service.terraform_state(PROJECT, name)["lock"]["ID"] == handle.id
        store.save_ledger(Ledger([record("a")]))


def test_a_lock_whose_lease_ran_out_is_taken_over_and_a_renewed_one_is_not(world, name):
    server, creds = world
    holder = store_for(server, creds["maintainer"], name)
    handle = holder.acquire("stalled apply")
    handle._stop.set()  # its renewer stops, as when the machine running it vanished
    other = store_for(server, creds["maintainer"], name)
    holder._renew(dataclasses.replace(handle.info, expires="2026-01-01T00:00:00Z"))
    with other.acquire("next apply") as taken:
        assert "its lease ran out at 2026-01-01T00:00:00Z" in taken.taken_over
    with pytest.raises(StateError, match="cannot release lock"):
        handle.release()  # the stalled apply comes back: the lock is not its own any more


def test_the_lease_is_renewed_while_the_lock_is_held(world, name):
    server, creds = world
    store = store_for(server, creds["maintainer"], name)
    store.lease = 3.0  # renewed every second
    with store.acquire("long apply") as handle:
        first = handle.info.expires
        time.sleep(2.5)
        assert _document(server, name)["reconcile"]["lock"]["expires"] > first
        assert handle.renew_error is None
