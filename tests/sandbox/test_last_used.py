"""The sandboxes record a credential's last use as the real services do, on the sandbox clock:
GitLab an access token's `last_used_at` at most every 10 minutes (a use within 10 minutes of the
recorded one is not recorded), a trigger's `last_used` at each pipeline it starts, Zendesk an
OAuth token's `used_at` at each use."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import requests

from reconciler_sandbox.core import Clock
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.zendesk import serve_zendesk

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_gitlab_records_a_token_use_at_most_every_10_minutes():
    value = "glpat-" + secrets.token_hex(10)
    trigger = "glptt-" + secrets.token_hex(10)
    clock = Clock(NOW)
    seed = {"users": [{"username": "alice", "tokens": [{"name": "t", "scopes": ["api"], "value": value,
                                                        "expires_at": "now+100d"}]}],
            "projects": [{"path_with_namespace": "g/p"}],
            "triggers": [{"project": "g/p", "owner": "alice", "description": "d", "value": trigger}]}
    with serve_gitlab(seed, clock) as server:
        def use() -> str | None:
            assert requests.get(f"{server.url}/api/v4/user", headers={"PRIVATE-TOKEN": value}, timeout=5).ok
            answer = requests.get(f"{server.url}/api/v4/personal_access_tokens/self",
                                  headers={"PRIVATE-TOKEN": value}, timeout=5).json()
            return answer["last_used_at"]

        assert use() == "2026-06-01T12:00:00.000Z"
        clock.advance(timedelta(minutes=9, seconds=59))
        assert use() == "2026-06-01T12:00:00.000Z"  # within 10 minutes: not recorded
        clock.advance(timedelta(seconds=1))
        assert use() == "2026-06-01T12:10:00.000Z"

        def trigger_last_used() -> str | None:
            rows = requests.get(f"{server.url}/api/v4/projects/g%2Fp/triggers", headers={"PRIVATE-TOKEN": value},
                                timeout=5).json()
            return rows[0]["last_used"]

        assert trigger_last_used() is None
        clock.advance(timedelta(minutes=1))
        assert requests.post(f"{server.url}/api/v4/projects/g%2Fp/trigger/pipeline",
                             data={"token": trigger, "ref": "main"}, timeout=5).status_code == 201
        assert trigger_last_used().startswith("2026-06-01T12:11:00")


def test_zendesk_records_an_oauth_token_use_each_time():
    value = secrets.token_hex(32)
    clock = Clock(NOW)
    seed = {"instances": {"acme": {"oauth_clients": [{"identifier": "c", "name": "C"}],
                                   "oauth_tokens": [{"client": "c", "scopes": ["read"], "value": value}]}}}
    with serve_zendesk(seed, clock) as server:
        def use() -> str:
            answer = requests.get(f"http://127.0.0.1:{server.port}/api/v2/oauth/tokens/current.json",
                                  headers={"Authorization": f"Bearer {value}", "Host": "acme.zendesk.com"}, timeout=5)
            assert answer.ok
            return server.service.token_by_value("acme", value)["used_at"]

        first = use()
        clock.advance(timedelta(seconds=30))
        assert use() != first and use().startswith("2026-06-01T12:00:30")
