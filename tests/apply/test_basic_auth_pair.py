"""Multi-part credentials beyond OAuth clients: an `external` basic-auth pair (a declared username
and a supplied password) delivered part by part, the username shown, the password kept secret.
Real engine, real sandboxes."""

from __future__ import annotations

from dataclasses import dataclass

from apply_world import HEADER, Scenario

INVENTORY = HEADER.split("tokens:")[0].format() + """tokens:
  subject:
    description: a basic-auth login a person renews
    source: {kind: external, value_env: EXT_VALUE, username: svc-bot}
    rotation: {on_unverifiable: rotate}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: TOKEN, masked: true,
         value: '${token.username}:${token.password}'}
      - {kind: zendesk_webhook, provider: zd, webhook: Notify, authentication: {type: bearer_token},
         value: '${token.password}'}
"""


@dataclass
class BasicAuth(Scenario):
    def inventory(self) -> str:
        return INVENTORY


def test_a_basic_auth_pair_reaches_each_consumer_part_by_part(workdir, capsys):
    live = BasicAuth("external", ("variable", "zd_webhook")).start(workdir)
    try:
        result = live.apply()
        assert result.ok, result.failed
        assert result.delivered == 2
        assert live.held("variable") == f"svc-bot:{live.external}"
        assert live.held("zd_webhook") == live.external
        after = live.plan()
        assert not after.has_changes and not after.errors
    finally:
        live.stop()
