"""A Zendesk OAuth token source is the tokens of the provider credential's own user (the user
`POST /api/v2/oauth/tokens` mints for): another user's token of the same client and scopes, which
`GET /api/v2/oauth/tokens?all=true` lists too, is neither the current token nor an orphan, so an
overlap rotation never revokes it."""

from __future__ import annotations

from typing import Any

from apply_world import SUB, Scenario, mint


class WithForeignToken(Scenario):
    """The oauth_token world plus an agent holding a NEWER token of the same client and scopes."""

    foreign = mint()

    def seeds(self, old: str, cred: str, zcred: str) -> tuple[dict[str, Any], dict[str, Any]]:
        gl, zd = super().seeds(old, cred, zcred)
        inst = zd["instances"][SUB]
        inst["users"] = [{"name": "Admin", "email": "admin@acme.example", "role": "admin"},
                         {"name": "Agent", "email": "agent@acme.example", "role": "agent"}]
        inst["oauth_tokens"].append({"client": "sync", "scopes": ["read"], "value": self.foreign,
                                     "user": "agent@acme.example", "created_at": "now-1d"})
        return gl, zd


def test_another_users_token_of_the_same_client_and_scopes_survives_a_rotation(live_world):
    live = live_world(WithForeignToken("oauth_token", ("variable",)))
    before = live.plan().tokens[0]
    assert before.action == "rotate", before.why if hasattr(before, "why") else before.reasons
    assert before.orphans == ()
    foreign = live.zd.token_by_value(SUB, WithForeignToken.foreign)
    assert before.live is not None and before.live["id"] != str(foreign["id"])

    result = live.apply()
    assert result.ok, result.failed
    assert live.zd.token_by_value(SUB, WithForeignToken.foreign)["active"], "another user's token was revoked"
    held = live.held("variable")
    assert held is not None and held != WithForeignToken.foreign and live.works(held)
    assert not live.works(live.old)
    after = live.plan()
    assert not after.has_changes, [t.name for t in after.tokens if t.changes]
