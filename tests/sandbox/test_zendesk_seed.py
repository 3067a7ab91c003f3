"""Zendesk sandbox seeding, ids, relative timestamps, save/load, and the documented seed schema."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler_sandbox.core import Clock, parse_when
from reconciler_sandbox.zendesk import SeedError, ZendeskService

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def documented_seed() -> dict:
    text = (DOCS / "sandbox-zendesk.md").read_text()
    block = re.search(r"## Seed.*?```yaml\n(.*?)```", text, re.S)
    assert block, "docs/sandbox-zendesk.md has an example seed"
    return yaml.safe_load(block.group(1))


def test_the_documented_seed_is_valid_against_the_schema_and_loads():
    schema = json.loads((DOCS / "sandbox-zendesk-seed.schema.json").read_text())
    seed = documented_seed()
    jsonschema.validate(seed, schema)
    service = ZendeskService(Clock(NOW), seed)
    gitlab = service.instance("gitlab")
    assert [t["last_used"] for t in gitlab.api_tokens] == ["2026-09-01T00:00:00Z", "2026-07-23T12:00:00Z"]
    assert service.secure_setting("gitlab", gitlab.installations[0]["id"], "pipeline_trigger_token") == "seeded-trigger"
    federal = service.instance("gitlab-federal-support")
    assert len(federal.oauth_tokens[0]["token"]) == 64  # minted: nothing was given
    assert federal.oauth_tokens[0]["token"] in service.secrets()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"instances": {"x": {"webhooks": [{"name": "no endpoint"}]}}}, schema)


def test_relative_and_absolute_timestamps():
    clock = Clock(NOW)
    assert parse_when("now", clock) == NOW
    assert parse_when("now-300d", clock) == NOW - timedelta(days=300)
    assert parse_when("now+10d", clock) == NOW + timedelta(days=10)
    assert parse_when("now-12h", clock) == NOW - timedelta(hours=12)
    assert parse_when("2026-10-27", clock) == datetime(2026, 10, 27, tzinfo=UTC)
    assert parse_when("2026-10-27T01:02:03Z", clock) == datetime(2026, 10, 27, 1, 2, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_when("yesterday", clock)


def test_random_values_have_zendesk_lengths_and_ids_are_deterministic():
    seed = {"instances": {"a": {"oauth_clients": [{"identifier": "c"}], "oauth_tokens": [{}], "api_tokens": [{}],
                                "webhooks": [{"name": "w", "endpoint": "https://e.example"}]}}}
    one, two = ZendeskService(Clock(NOW), seed).instance("a"), ZendeskService(Clock(NOW), seed).instance("a")
    assert len(one.oauth_clients[0]["secret"]) == 64
    assert re.fullmatch(r"[0-9a-f]{64}", one.oauth_tokens[0]["token"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", one.api_tokens[0]["token"])
    assert one.oauth_tokens[0]["token"] != two.oauth_tokens[0]["token"]
    assert [u["id"] for u in one.users] == [u["id"] for u in two.users]
    assert one.webhooks[0]["id"] == two.webhooks[0]["id"] and len(one.webhooks[0]["id"]) == 26


def test_ulids_are_time_ordered_by_the_clock_and_monotonic_within_a_millisecond():
    clock = Clock(NOW)
    inst = ZendeskService(clock, {"instances": {"a": {}}}).instance("a")
    same_ms = [inst.new_ulid() for _ in range(3)]
    clock.advance(timedelta(days=1))
    later = inst.new_ulid()
    assert same_ms == sorted(same_ms) and len(set(same_ms)) == 3 and later > same_ms[-1]
    clock.set(NOW - timedelta(days=365))
    assert inst.new_ulid()[:10] < same_ms[0][:10]  # the time part follows the clock


@pytest.mark.parametrize(("seed", "message"), [
    ({"instances": {"a": {"webhooks": [{"name": "w"}]}}}, r"instances\.a\.webhooks\[0\]\.endpoint: required"),
    ({"instances": {"a": {"oauth_tokens": [{"client": "nope"}]}}}, r"instances\.a\.oauth_tokens\[0\]\.client"),
    ({"instances": {"a": {"api_tokens": [{"last_used": "last week"}]}}}, r"instances\.a\.api_tokens\[0\]\.last_used"),
    ({"instances": {"a": {"installations": [{"app": "Missing"}]}}}, r"instances\.a\.installations\[0\]\.app"),
    ({"instances": {"a": {"tickets": []}}}, r"instances\.a: unknown key\(s\) tickets"),
    ({"instances": {"a": {"users": [{"role": "owner"}]}}}, r"instances\.a\.users\[0\]\.role"),
    ({"zendesk": {}}, r"single key 'instances'"),
])
def test_bad_seeds_name_the_place(seed, message):
    with pytest.raises(SeedError, match=message):
        ZendeskService(Clock(NOW), seed)


def test_seed_from_a_yaml_file_and_save_load_round_trip(tmp_path):
    path = tmp_path / "seed.sandbox.yaml"  # a sandbox's own input: the leak guard skips *.sandbox.*
    path.write_text(yaml.safe_dump({"instances": {"a": {"webhooks": [
        {"name": "w", "endpoint": "https://e.example", "authentication": {"type": "basic_auth", "data": {
            "username": "u", "password": "file-seeded-pw"}}}]}}}))
    service = ZendeskService(Clock(NOW), path)
    hook_id = service.instance("a").webhooks[0]["id"]
    state = tmp_path / "world.sandbox.json"
    service.save(state)
    restored = ZendeskService(Clock(NOW))
    restored.load(state)
    assert restored.webhook_credential("a", hook_id)["data"]["password"] == "file-seeded-pw"
    assert "file-seeded-pw" in restored.secrets()
    assert restored.dump_state() == service.dump_state()
    assert restored.instance("a").new_ulid() == service.instance("a").new_ulid()  # the ULID state survives


def test_an_instance_defined_twice_is_an_error():
    service = ZendeskService(Clock(NOW), {"instances": {"a": {}}})
    with pytest.raises(SeedError, match="defined twice"):
        service.seed({"instances": {"a": {}}})


def test_a_seeded_id_used_twice_is_an_error_naming_the_item():
    """Zendesk never gives two records one id. A seed that did made the sandbox answer for the
    wrong record (a revoke of one token deleted the tool's own credential)."""
    seed = {"instances": {"a": {
        "oauth_clients": [{"id": 7, "identifier": "c", "name": "C"}],
        "oauth_tokens": [{"id": 7, "client": "c", "scopes": ["read"]}],
    }}}
    with pytest.raises(SeedError, match=r"instances\.a\.oauth_tokens\[0\]\.id: id 7 is already taken"):
        ZendeskService(Clock(NOW), seed)
