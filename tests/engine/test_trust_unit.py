"""The trusted provider set (reconciler.trust), without HTTP: entries, defaults, Zendesk domains."""

from __future__ import annotations

import pytest

from reconciler.inventory.model import GitLabProvider, ZendeskProvider
from reconciler.trust import (
    TRUSTED_PROVIDERS_ENV,
    TrustError,
    origin,
    parse_trusted,
    trust_from_env,
    trusted_value,
)

GL = GitLabProvider(name="gl", url="https://GitLab.example.com/", token_env="GL_TOKEN")
ZD = ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN")


def test_entries_match_by_origin_and_credential_variable():
    trust = trust_from_env({TRUSTED_PROVIDERS_ENV: "https://gitlab.example.com=GL_TOKEN,\n https://acme.zendesk.com=ZD_TOKEN"})
    assert trust.refusal("gl", GL) is None and trust.refusal("zd", ZD) is None
    moved = GitLabProvider(name="gl", url="https://gitlab.example.com.evil.test", token_env="GL_TOKEN")
    assert "not in the trusted provider set" in (trust.refusal("gl", moved) or "")
    other_env = GitLabProvider(name="gl", url="https://gitlab.example.com", token_env="RECONCILE_ESCROW_KEY")
    assert trust.refusal("gl", other_env) is not None
    assert trust.refusal("zd", ZendeskProvider(name="zd", subdomain="evil", oauth_token_env="ZD_TOKEN")) is not None


def test_the_value_for_the_variable_round_trips():
    value = trusted_value({"gl": GL, "zd": ZD})
    assert value == "https://acme.zendesk.com=ZD_TOKEN https://gitlab.example.com=GL_TOKEN"
    trust = trust_from_env({TRUSTED_PROVIDERS_ENV: value})
    assert trust.refusal("gl", GL) is None and trust.refusal("zd", ZD) is None


@pytest.mark.parametrize("entry", ["https://gitlab.com", "gitlab.com=GL", "https://u:p@gitlab.com=GL",
                                   "https://gitlab.com=GL-TOKEN", "https://gitlab.com?x=1=GL", "ftp://h=GL"])
def test_a_bad_entry_is_a_clear_error(entry):
    with pytest.raises(TrustError, match=TRUSTED_PROVIDERS_ENV):
        parse_trusted(entry)


def test_defaults():
    assert trust_from_env({}).refusal("gl", GL) is None  # a workstation, the default branch: the inventory
    assert trust_from_env({"CI_PIPELINE_SOURCE": "merge_request_event"}).refusal("gl", GL) is not None
    assert trust_from_env({"CI_MERGE_REQUEST_IID": "3"}, sandbox=True).refusal("gl", GL) is None  # all loopback
    assert origin("HTTPS://Example.COM:8443/gitlab/") == "https://example.com:8443/gitlab"


def test_a_zendesk_domain_other_than_zendesk_com_needs_the_environment():
    odd = ZendeskProvider(name="zd", subdomain="acme", domain="evil.test", oauth_token_env="ZD_TOKEN")
    assert "zendesk.com" in (trust_from_env({}).refusal("zd", odd) or "")
    assert trust_from_env({"RECONCILE_ZENDESK_DOMAINS": "evil.test"}).refusal("zd", odd) is None


def test_the_note_token_comes_from_the_trusted_set_when_there_is_one(tmp_path):
    from reconciler.gitlab_ci import note_token_env

    (tmp_path / "providers.yaml").write_text(
        "providers:\n  gl: {kind: gitlab, url: https://gitlab.example, auth: {token_env: RECONCILE_ESCROW_KEY}}\ntokens: {}\n")
    assert note_token_env(tmp_path, "https://gitlab.example", env={}) == "RECONCILE_ESCROW_KEY"  # as declared
    trusted = {TRUSTED_PROVIDERS_ENV: "https://gitlab.example=RECONCILE_GITLAB_TOKEN"}
    assert note_token_env(tmp_path, "https://gitlab.example/", env=trusted) == "RECONCILE_GITLAB_TOKEN"


def test_a_trusted_inventory_that_does_not_load_is_a_clear_error(tmp_path):
    (tmp_path / "providers.yaml").write_text("providers: {gl: {kind: gitlab}}\n")
    with pytest.raises(TrustError, match=r"RECONCILE_TRUSTED_INVENTORY: .* is not a valid inventory"):
        trust_from_env({"RECONCILE_TRUSTED_INVENTORY": str(tmp_path)})
    with pytest.raises(TrustError, match="RECONCILE_TRUSTED_INVENTORY"):
        trust_from_env({"RECONCILE_TRUSTED_INVENTORY": str(tmp_path / "missing")})
