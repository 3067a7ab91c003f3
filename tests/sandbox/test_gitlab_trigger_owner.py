"""A pipeline trigger runs as its owner, in the GitLab sandbox through python-gitlab: created with a
project access token's value it belongs to the token's bot user; the bot token's rotation keeps
it working; revoking the bot's token (the bot is removed and blocked) ends it, as in GitLab."""

from __future__ import annotations

import secrets

import gitlab
import pytest
import requests

from reconciler_sandbox.gitlab import serve_gitlab


def mint(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


PERSON, BOT = mint(), mint()


@pytest.fixture
def server():
    seed = {
        "users": [{"username": "person", "tokens": [{"name": "person", "scopes": ["api"], "value": PERSON,
                                                     "expires_at": "now+100d"}]}],
        "projects": [{"path_with_namespace": "support/sync", "members": {"person": 50}}],
        "access_tokens": [{"project": "support/sync", "name": "Support bot", "scopes": ["api"], "access_level": 40,
                           "value": BOT, "expires_at": "now+100d", "bot": {"username": "support_bot"}}],
    }
    with serve_gitlab(seed) as started:
        yield started


def client(server, token: str) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, private_token=token)


def runs(server, value: str) -> requests.Response:
    return requests.post(f"{server.url}/api/v4/projects/support%2Fsync/trigger/pipeline",
                         data={"token": value, "ref": "main"}, timeout=5)


def test_the_bot_owns_what_its_token_creates_and_its_rotation_keeps_it(server):
    project = client(server, BOT).projects.get("support/sync")
    trigger = project.triggers.create({"description": "Sync"})
    assert trigger.owner["username"] == "support_bot"
    # the person sees the first 4 characters only; the bot sees its trigger in full
    assert len(client(server, PERSON).projects.get("support/sync").triggers.get(trigger.id).token) == 4
    assert project.triggers.get(trigger.id).token == trigger.token
    [token] = [t for t in client(server, PERSON).projects.get("support/sync").access_tokens.list()]
    rotated = client(server, PERSON).projects.get("support/sync", lazy=True).access_tokens.rotate(token.id)
    assert rotated["user_id"] == token.user_id
    assert runs(server, trigger.token).status_code == 201


def test_revoking_the_bot_token_ends_the_bot_trigger(server):
    trigger = client(server, BOT).projects.get("support/sync").triggers.create({"description": "Sync"})
    person = client(server, PERSON).projects.get("support/sync")
    [token] = person.access_tokens.list()
    person.access_tokens.delete(token.id)
    answer = runs(server, trigger.token)
    assert answer.status_code == 400
    assert answer.json() == {"message": {"base": ["Insufficient permissions to create a new pipeline"]}}
    assert next(u for u in server.service.table("users") if u["username"] == "support_bot")["state"] == "blocked"
