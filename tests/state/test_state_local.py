"""LocalStore: round trips, atomic writes, clear errors on corrupt or truncated files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from reconciler.inventory.model import GitLabProvider, StateConfig
from reconciler.state import InFlight, Ledger, LedgerRecord, LocalStore, StateError, open_store


def record(consumer: str, token_id: str = "7") -> LedgerRecord:
    return LedgerRecord(
        consumer=consumer,
        token="sync-trigger",
        token_id=token_id,
        token_created_at="2026-05-01T00:00:00Z",
        fingerprint="sha256:" + "0" * 64,
        delivered_at="2026-05-01T00:01:00Z",
        verified=True,
    )


def test_empty_store_reads_empty_and_creates_nothing(tmp_path):
    store = LocalStore(tmp_path / "state")
    assert store.load_ledger().records() == []
    assert store.load_escrow_doc() is None
    assert store.lock_holder() is None
    assert not (tmp_path / "state").exists()


def test_ledger_round_trip_and_private_files(tmp_path):
    store = LocalStore(tmp_path / "state")
    ledger = Ledger([record("a"), record("b", "8")])
    store.save_ledger(ledger)
    assert LocalStore(tmp_path / "state").load_ledger() == ledger
    assert stat.S_IMODE(os.stat(store.ledger_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    # no temporary file is left behind
    assert sorted(p.name for p in store.dir.iterdir()) == ["ledger.json"]


def test_escrow_doc_round_trip(tmp_path):
    store = LocalStore(tmp_path)
    store.save_escrow_doc({"version": 1, "key_id": None, "entries": {}})
    assert store.load_escrow_doc() == {"version": 1, "key_id": None, "entries": {}}


def test_failed_write_keeps_the_old_document(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StateError, match=r"ledger\.json: cannot write: No space left on device"):
        store.save_ledger(Ledger([record("b")]))
    monkeypatch.undo()
    assert [r.consumer for r in store.load_ledger().records()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"version": 1, "records": [', "not valid JSON"),  # truncated
        ("", "not valid JSON"),
        ("\x00\x01garbage", "not valid JSON"),
        ('{"version": 1, "records": [{"consumer": "x"}]}', "records[0] lacks"),
        ('["not", "an", "object"]', "expected a JSON object"),
    ],
)
def test_corrupt_ledger_names_the_file(tmp_path, content, fragment):
    (tmp_path / "ledger.json").write_text(content)
    with pytest.raises(StateError) as err:
        LocalStore(tmp_path).load_ledger()
    assert str(tmp_path / "ledger.json") in str(err.value)
    assert fragment in str(err.value)


def test_corrupt_escrow_file_names_the_file(tmp_path):
    (tmp_path / "escrow.json").write_text('{"version": 1, "entr')
    with pytest.raises(StateError, match=r"escrow\.json: corrupt escrow: not valid JSON"):
        LocalStore(tmp_path).load_escrow_doc()
    (tmp_path / "escrow.json").write_text("[1]")
    with pytest.raises(StateError, match=r"escrow\.json: corrupt escrow: expected a JSON object"):
        LocalStore(tmp_path).load_escrow_doc()


def test_corrupt_json_error_does_not_quote_the_content(tmp_path):
    (tmp_path / "ledger.json").write_text('{"version": 1, "records": [{"x": "some-private-text"')
    with pytest.raises(StateError) as err:
        LocalStore(tmp_path).load_ledger()
    assert "some-private-text" not in str(err.value)


def test_open_store_local_default_and_base_dir(tmp_path):
    store = open_store(StateConfig(), {}, {}, base_dir=tmp_path)
    assert isinstance(store, LocalStore) and store.dir == tmp_path / ".reconcile"
    store = open_store(StateConfig(path=str(tmp_path / "abs")), {}, {}, base_dir="/elsewhere")
    assert store.dir == tmp_path / "abs"


def test_open_store_gitlab_config_errors():
    with pytest.raises(StateError, match="needs a GitLab provider"):
        open_store(StateConfig(backend="gitlab", provider="nope", project="g/p"), {}, {})
    gl = GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL_TOKEN")
    with pytest.raises(StateError, match="needs a project"):
        open_store(StateConfig(backend="gitlab", provider="gl"), {"gl": gl}, {})
    with pytest.raises(StateError, match="set GL_TOKEN"):
        open_store(StateConfig(backend="gitlab", provider="gl", project="g/p"), {"gl": gl}, {})


def test_open_store_gitlab_uses_job_token_in_ci_on_the_same_server():
    gl = GitLabProvider(name="gl", url="https://gitlab.example/", token_env="GL_TOKEN")
    env = {"CI_JOB_TOKEN": "job-token-for-test", "CI_SERVER_URL": "https://gitlab.example"}
    store = open_store(StateConfig(backend="gitlab", provider="gl", project="g/p"), {"gl": gl}, env)
    # the job token goes as basic auth, the only form GitLab accepts on the state routes
    assert store.gl.http_username == "gitlab-ci-token" and store.gl.job_token is None
    assert store.path == "/projects/g%2Fp/terraform/state/reconcile"
    with pytest.raises(StateError, match="set GL_TOKEN"):
        open_store(
            StateConfig(backend="gitlab", provider="gl", project="g/p"),
            {"gl": gl},
            {**env, "CI_SERVER_URL": "https://other.example"},
        )


def test_written_files_are_json(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    assert json.loads(store.ledger_path.read_text())["version"] == 1


def test_unusable_directory_is_a_state_error(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    store = LocalStore(tmp_path / "afile" / "state")
    with pytest.raises(StateError, match="cannot create the state directory"):
        store.acquire("x")
    with pytest.raises(StateError, match="cannot create the state directory"):
        store.save_ledger(Ledger())
    with pytest.raises(StateError, match=r"cannot read the ledger: NotADirectoryError"):
        LocalStore(tmp_path / "afile").load_ledger()


# --- the ledger journal: a save appends what changed; compaction writes the whole ledger ----------


def test_saves_of_a_loaded_ledger_append_to_the_journal_and_leave_ledger_json_alone(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record(f"c{i}") for i in range(50)]))
    base = store.ledger_path.read_bytes()
    ledger = store.load_ledger()
    for i in range(10):
        ledger.record(record(f"c{i}", token_id="9"))
        store.save_ledger(ledger, durable=i % 2 == 0)
    ledger.forget("c49")
    ledger.in_flight["sync-trigger"] = InFlight().overlapping(["7"], "2026-05-01T00:00:00Z")
    store.save_ledger(ledger)
    assert store.ledger_path.read_bytes() == base  # never rewritten: each save cost one line
    lines = store.journal_path.read_text().splitlines()
    assert len(lines) == 11
    assert json.loads(lines[0]) == {"records": {"c0": record("c0", "9").to_json()}, "in_flight": {}}
    assert LocalStore(tmp_path).load_ledger() == ledger
    store.compact_ledger(ledger)
    assert not store.journal_path.exists()
    assert LocalStore(tmp_path).load_ledger() == ledger
    assert json.loads(store.ledger_path.read_text())["in_flight"]["sync-trigger"]["op"] == "overlap"


def test_a_save_without_changes_writes_nothing(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    ledger = store.load_ledger()
    store.save_ledger(ledger)
    assert not store.journal_path.exists()


def test_a_journal_line_cut_short_by_a_crash_is_ignored_and_the_next_save_starts_a_new_line(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    ledger = store.load_ledger()
    ledger.record(record("b"))
    store.save_ledger(ledger)
    with store.journal_path.open("ab") as f:
        f.write(b'{"records": {"c": {"consu')  # the process died in the middle of this append
    again = LocalStore(tmp_path)
    loaded = again.load_ledger()
    assert [r.consumer for r in loaded.records()] == ["a", "b"]
    loaded.record(record("d"))
    again.save_ledger(loaded)
    assert [r.consumer for r in LocalStore(tmp_path).load_ledger().records()] == ["a", "b", "d"]


def test_replaying_a_journal_over_the_ledger_compacted_from_it_changes_nothing(tmp_path):
    """A crash between writing ledger.json whole and removing the journal: entries are idempotent."""
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    ledger = store.load_ledger()
    ledger.record(record("a", "8"))
    ledger.forget("a")
    ledger.record(record("b"))
    store.save_ledger(ledger)
    ledger.in_flight["t"] = InFlight().rotating("7", "2026-05-01T00:00:00Z")
    store.save_ledger(ledger)
    ledger.in_flight.pop("t")
    store.save_ledger(ledger)
    journal = store.journal_path.read_bytes()
    store.compact_ledger(ledger)
    store.journal_path.write_bytes(journal)
    assert LocalStore(tmp_path).load_ledger() == ledger


def test_a_corrupt_journal_line_is_a_clear_error_naming_the_file_and_line(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    store.journal_path.write_text('{"records": {}, "in_flight": {}}\n[1, 2\n')
    with pytest.raises(StateError, match=r"ledger\.journal: line 2: corrupt ledger journal: not valid JSON"):
        LocalStore(tmp_path).load_ledger()
    store.journal_path.write_text('{"records": {"x": {"consumer": "y"}}}\n')
    with pytest.raises(StateError, match=r"ledger\.journal: line 1: corrupt journal entry"):
        LocalStore(tmp_path).load_ledger()


def test_the_journal_is_compacted_once_it_outgrows_the_ledger(tmp_path):
    store = LocalStore(tmp_path)
    store.save_ledger(Ledger([record("a")]))
    ledger = store.load_ledger()
    for i in range(1003):
        ledger.record(record("a", str(i)))
        store.save_ledger(ledger, durable=False)
    assert len(store.journal_path.read_text().splitlines()) < 1003
    assert LocalStore(tmp_path).load_ledger() == ledger
