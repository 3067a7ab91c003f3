"""Apply rotates the provider's own credential in place while the state lives on that same GitLab
(`state: {backend: gitlab}` with the provider's token): the store must continue with the new
credential at the same moment as the provider client, or the escrow put and every later save are
sent with a revoked token and the new value is lost."""

from __future__ import annotations

from typing import Any

import gitlab
from apply_world import NOW_TEXT, Scenario

from reconciler.apply import apply_plan
from reconciler.engine import open_session
from reconciler.state.gitlab import GitLabStore


class SelfRotation(Scenario):
    """The `pat` world whose source is the provider credential itself (aged: due for rotation)."""

    def inventory(self) -> str:
        return super().inventory().replace("name: Sync PAT", "name: reconcile")

    def seeds(self, old: str, cred: str, zcred: str) -> tuple[dict[str, Any], dict[str, Any]]:
        gl, zd = super().seeds(old, cred, zcred)
        own = next(t for t in gl["users"][0]["tokens"] if t["name"] == "reconcile")
        own["created_at"] = "now-100d"
        gl["users"][0]["admin"] = True  # may keep the Terraform state of acme/app
        return gl, zd


def test_rotating_the_credential_that_also_keeps_the_state_continues_with_the_new_one(live_world):
    live = live_world(SelfRotation("pat", ("variable",)))
    cred = live.env["GL_TOKEN"]
    with open_session(live.inventory, sandbox=True, now=NOW_TEXT, env=live.env) as session:
        session.store = GitLabStore(gitlab.Gitlab(live.gitlab.url, private_token=cred, timeout=5), "acme/app")
        result = apply_plan(session)
    assert result.ok, result.failed
    assert result.rotated == ["subject"]
    new = live.held("variable")
    assert new is not None and new != cred and live.works(new) and not live.works(cred)
    store = GitLabStore(gitlab.Gitlab(live.gitlab.url, private_token=new, timeout=5), "acme/app")
    records = store.load_ledger().records()
    assert [r.consumer for r in records] == ["gitlab_ci_variable:gl:project:acme/app:TOKEN:*"]
