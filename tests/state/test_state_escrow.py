"""Escrow: AES-GCM sealing, key format, wrong key, tampering, swapped blobs, no plaintext on disk."""

from __future__ import annotations

import base64
import json
import os
import secrets

import pytest

from reconciler.inventory.model import StateConfig
from reconciler.secret import Secret
from reconciler.state import (
    Escrow,
    Ledger,
    LedgerRecord,
    LocalStore,
    StateError,
    escrow_available,
    generate_key,
    open_escrow,
    parse_key,
)
from reconciler.state.escrow import EscrowDocument

MINTED = "2026-06-01T10:00:00Z"


def fresh_value() -> str:
    # a value minted by the test itself, shaped like no real credential prefix
    return "testvalue-" + secrets.token_urlsafe(24)


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "state")


def test_put_get_drop_round_trip_across_instances(store, key):
    value = fresh_value()
    escrow = Escrow(store, key)
    escrow.put("pat-a", "41", Secret(value), MINTED)
    escrow.put("trigger-b", "7", Secret(fresh_value()), MINTED)
    again = Escrow(LocalStore(store.dir), key)
    entry = again.get("pat-a")
    assert entry.value.reveal() == value and entry.token_id == "41" and entry.minted_at == MINTED
    assert again.tokens() == ["pat-a", "trigger-b"]
    assert [p.token_id for p in again.pending()] == ["41", "7"]
    assert value not in repr(entry) and value not in str(entry)
    again.drop("pat-a")
    again.drop("never-there")
    assert Escrow(LocalStore(store.dir), key).tokens() == ["trigger-b"]
    assert again.get("pat-a") is None


def test_put_overwrites_a_token_entry(store, key):
    escrow = Escrow(store, key)
    escrow.put("t", "1", Secret(fresh_value()), MINTED)
    second = fresh_value()
    escrow.put("t", "2", Secret(second), MINTED)
    assert Escrow(store, key).get("t").value.reveal() == second


def test_no_plaintext_in_any_file_the_store_writes(store, key):
    values = [fresh_value() for _ in range(3)]
    escrow = Escrow(store, key)
    ledger = Ledger()
    for i, value in enumerate(values):
        escrow.put(f"tok{i}", str(i), Secret(value), MINTED)
        ledger.record(
            LedgerRecord(
                consumer=f"c{i}",
                token=f"tok{i}",
                token_id=str(i),
                token_created_at=MINTED,
                fingerprint=Secret(value).fingerprint(),
                delivered_at=MINTED,
                verified=False,
            )
        )
    store.save_ledger(ledger)
    with store.acquire("test"):
        written = {p.name: p.read_bytes() for p in store.dir.rglob("*") if p.is_file()}
    assert {"ledger.json", "escrow.json", "lock"} <= set(written)
    for value in values:
        for encoded in (value.encode(), base64.b64encode(value.encode()), value.encode().hex().encode()):
            assert all(encoded not in data for data in written.values())
    # the key is not stored either, only its one-way id
    assert all(base64.urlsafe_b64encode(key) not in data for data in written.values())


def test_wrong_key_is_reported_as_such_without_the_key(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    other = os.urandom(32)
    escrow = Escrow(store, other)
    with pytest.raises(StateError) as err:
        escrow.get("t")
    message = str(err.value)
    assert "not the key these values were escrowed with" in message and str(store.dir) in message
    assert base64.urlsafe_b64encode(other).decode() not in message
    assert base64.urlsafe_b64encode(key).decode() not in message
    # nor may a second key add entries beside the first key's
    with pytest.raises(StateError, match="not the key"):
        escrow.put("u", "2", Secret(fresh_value()), MINTED)


def test_emptied_escrow_can_be_rekeyed(store, key):
    escrow = Escrow(store, key)
    escrow.put("t", "1", Secret(fresh_value()), MINTED)
    escrow.drop("t")
    Escrow(store, os.urandom(32)).put("u", "2", Secret(fresh_value()), MINTED)


def _edit_entry(store: LocalStore, token: str, **changes) -> None:
    doc = json.loads(store.escrow_path.read_text())
    doc["entries"][token].update(changes)
    store.escrow_path.write_text(json.dumps(doc))


def test_tampered_ciphertext_is_refused(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    doc = json.loads(store.escrow_path.read_text())
    sealed = bytearray(base64.b64decode(doc["entries"]["t"]["ciphertext"]))
    sealed[0] ^= 1
    _edit_entry(store, "t", ciphertext=base64.b64encode(bytes(sealed)).decode())
    with pytest.raises(StateError, match=r"escrowed value of token t does not decrypt: .*tampered"):
        Escrow(store, key).get("t")


def test_relabelled_metadata_is_refused(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    _edit_entry(store, "t", token_id="999")
    with pytest.raises(StateError, match="does not decrypt"):
        Escrow(store, key).get("t")


def test_swapped_blobs_are_refused(store, key):
    Escrow(store, key).put("a", "1", Secret(fresh_value()), MINTED)
    Escrow(store, key).put("b", "1", Secret(fresh_value()), MINTED)
    doc = json.loads(store.escrow_path.read_text())
    doc["entries"]["a"], doc["entries"]["b"] = doc["entries"]["b"], doc["entries"]["a"]
    store.escrow_path.write_text(json.dumps(doc))
    for token in ("a", "b"):
        with pytest.raises(StateError, match=f"token {token} does not decrypt"):
            Escrow(store, key).get(token)


def test_garbage_base64_is_refused(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    _edit_entry(store, "t", nonce="!!!not base64!!!")
    with pytest.raises(StateError, match="does not decrypt"):
        Escrow(store, key).get("t")


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"version": 3, "entries": {}}, "unsupported escrow version"),
        ({"version": 1, "key_id": None, "entries": []}, "'entries' must be an object"),
        ({"version": 1, "key_id": None, "entries": {"t": {"token_id": "1"}}}, "entry 't' lacks a field"),
    ],
)
def test_corrupt_escrow_document(store, key, doc, fragment):
    store.save_escrow_doc(doc)
    with pytest.raises(StateError) as err:
        Escrow(store, key).tokens()
    assert fragment in str(err.value) and str(store.dir) in str(err.value)


def test_without_key_put_raises_but_metadata_is_readable(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    keyless = Escrow(store, None)
    assert not keyless.available
    assert keyless.tokens() == ["t"]
    with pytest.raises(StateError, match="no escrow key \\(set RECONCILE_ESCROW_KEY"):
        keyless.put("u", "2", Secret(fresh_value()), MINTED)
    with pytest.raises(StateError, match="no escrow key"):
        keyless.get("t")


def test_put_takes_only_a_secret(store, key):
    with pytest.raises(TypeError):
        Escrow(store, key).put("t", "1", "plain string", MINTED)


def test_key_format_and_availability():
    text = generate_key()
    assert len(text) == 44 and len(parse_key(text, "K")) == 32
    assert parse_key(text.rstrip("="), "K") == parse_key(text, "K")
    assert generate_key() != text
    config = StateConfig(escrow_key_env="MY_KEY")
    assert escrow_available(config, {"MY_KEY": text})
    assert not escrow_available(config, {})
    assert not escrow_available(config, {"MY_KEY": "  "})
    for bad in ("short", text[:-2] + "!!", base64.b64encode(os.urandom(48)).decode(), "x" * 44):
        with pytest.raises(StateError) as err:
            escrow_available(config, {"MY_KEY": bad})
        assert "MY_KEY is not a valid escrow key" in str(err.value)
        assert bad not in str(err.value)


def test_open_escrow_uses_the_configured_variable(store):
    config = StateConfig(escrow_key_env="MY_KEY")
    value = fresh_value()
    open_escrow(store, config, {"MY_KEY": generate_key()}).put("t", "1", Secret(value), MINTED)
    assert not open_escrow(store, config, {}).available


def test_the_stored_document_is_typed_and_round_trips(store, key):
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    stored = json.loads(store.escrow_path.read_text())
    doc = EscrowDocument.from_storage(stored, "here")
    assert doc.key_id == stored["key_id"] and set(doc.entries) == {"t"}
    assert doc.entries["t"].token_id == "1" and doc.entries["t"].minted_at == MINTED
    assert doc.for_storage() == stored
    stored["entries"]["t"]["unknown"] = "x"
    with pytest.raises(StateError, match="here: corrupt escrow: entry 't' lacks a field or has a wrong type or an unknown"):
        EscrowDocument.from_storage(stored, "here")


# --- refresh tokens of OAuth grants ---------------------------------------------------------------


def test_a_grant_is_kept_sealed_for_good_and_its_supplied_seed_only_by_fingerprint(store, key):
    refresh, seed, replacement = fresh_value(), fresh_value(), fresh_value()
    escrow = Escrow(store, key)
    escrow.put("other", "7", Secret(fresh_value()), MINTED)
    escrow.keep_grant("grant", Secret(refresh), MINTED, seed=Secret(seed))
    escrow.drop("other")  # delivered values come and go; the grant stays
    again = Escrow(LocalStore(store.dir), key)
    assert again.grant("grant") == Secret(refresh) and again.tokens() == []
    assert again.seed_taken("grant", Secret(seed)) and not again.seed_taken("grant", Secret(replacement))
    assert again.grants() == [("grant", MINTED)]
    stored = (store.dir / "escrow.json").read_text()
    assert refresh not in stored and seed not in stored and json.loads(stored)["version"] == 2
    again.keep_grant("grant", Secret(replacement), "2026-06-01T10:30:00Z")
    assert Escrow(LocalStore(store.dir), key).grant("grant") == Secret(replacement)
    again.keep_grant("grant", None, "2026-06-01T11:00:00Z")  # a client_credentials grant: nothing to keep
    assert Escrow(LocalStore(store.dir), key).grant("grant") is None


def test_a_grant_pins_the_key_and_a_sealed_refresh_token_cannot_be_moved(store, key):
    escrow = Escrow(store, key)
    escrow.keep_grant("grant-a", Secret(fresh_value()), MINTED)
    with pytest.raises(StateError, match="not the key these values were escrowed with"):
        Escrow(LocalStore(store.dir), os.urandom(32)).grant("grant-a")
    doc = json.loads((store.dir / "escrow.json").read_text())
    doc["grants"]["grant-b"] = doc["grants"].pop("grant-a")
    (store.dir / "escrow.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="does not decrypt"):
        Escrow(LocalStore(store.dir), key).grant("grant-b")


def test_an_escrow_without_grants_is_still_written_as_version_1(store, key):
    escrow = Escrow(store, key)
    escrow.put("pat", "41", Secret(fresh_value()), MINTED)
    assert json.loads((store.dir / "escrow.json").read_text())["version"] == 1


def test_check_key_refuses_a_key_other_than_the_stored_values_before_anything_is_sealed(store, key):
    """A refresh spends its refresh token: apply asks check_key first, so a wrong key stops it
    before the answer (which must be sealed) exists. The right key, or no stored value, passes."""
    Escrow(store, key).put("t", "1", Secret(fresh_value()), MINTED)
    Escrow(store, key).check_key("keep the refresh token of g")
    with pytest.raises(StateError, match="is not the key these values were escrowed with"):
        Escrow(store, os.urandom(32)).check_key("keep the refresh token of g")
    with pytest.raises(StateError, match="cannot keep the refresh token of g: no escrow key"):
        Escrow(store, None).check_key("keep the refresh token of g")
    assert Escrow(store, key).tokens() == ["t"]  # nothing was changed by asking
