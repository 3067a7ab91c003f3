"""The MR note is posted once: a lost answer to its create is not retried (a retry would post a
second note); the next run finds the note by its marker and updates it."""

from __future__ import annotations

import secrets

import gitlab
import pytest

from reconciler.gitlab_ci import PLAN_MARKER, upsert_note
from reconciler_sandbox.core import FaultRule
from reconciler_sandbox.gitlab import serve_gitlab

BOT = "glpat-" + secrets.token_urlsafe(15)[:20]


def test_a_lost_answer_to_the_note_create_never_leads_to_a_second_note():
    seed = {
        "users": [{"username": "bot", "tokens": [{"name": "ci", "scopes": ["api"], "value": BOT}]}],
        "projects": [{"path_with_namespace": "ops/inventory", "members": {"bot": 40}}],
        "merge_requests": [{"project": "ops/inventory", "iid": 1, "sha": "a" * 40, "title": "Rotate",
                            "source_branch": "rotate", "author": "bot"}],
    }
    with serve_gitlab(seed) as server:
        gl = gitlab.Gitlab(server.url, private_token=BOT, timeout=5, retry_transient_errors=True)
        gl.auth()
        mr = gl.projects.get("ops/inventory").mergerequests.get(1)
        server.faults.configure(rules=[FaultRule("502", nth=(1,), method="POST", path=r"/notes$", after=True)])
        with pytest.raises(gitlab.GitlabCreateError):
            upsert_note(mr, "plan, first push", PLAN_MARKER, gl.user.id)
        assert len(mr.notes.list(get_all=True)) == 1  # created once, not retried
        server.faults.configure(rules=[])
        outcome = upsert_note(mr, "plan, second push", PLAN_MARKER, gl.user.id)
        notes = mr.notes.list(get_all=True)
        assert outcome.action == "updated" and len(notes) == 1 and "second push" in notes[0].body
