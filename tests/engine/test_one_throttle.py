"""One throttle per provider for the whole process: the GitLab state backend, observe, discovery
and the check issue reach a GitLab through the same `Throttle`, so RECONCILE_MAX_RATE bounds
them together. Measured at the sandbox: every request its log holds, the state backend's and
observe's, was counted in the one budget of that provider."""

from __future__ import annotations

import secrets
from datetime import timedelta

from reconciler.check import publish_issue, run_check
from reconciler.engine import open_session
from reconciler.pipeline import observe_and_plan
from reconciler_sandbox.gitlab import serve_gitlab

STATE_PATH = "/api/v4/projects/ops/state/terraform/state/reconcile"

INVENTORY = """\
providers:
  gl: {{kind: gitlab, url: {url}, auth: {{token_env: GL_TOKEN}}}}
  scanned: {{kind: gitlab, url: {url}, auth: {{token_env: SCAN_TOKEN}}}}
state: {{backend: gitlab, provider: gl, project: ops/state}}
discovery:
  gitlab:
    - {{provider: scanned, projects: [g/app]}}
tokens:
  trig:
    source: {{kind: gitlab_pipeline_trigger, provider: gl, project: g/app, description: deploy}}
    consumers:
      - {{kind: gitlab_ci_variable, provider: gl, project: g/app, key: A}}
"""


def seed(value: str, trigger: str) -> dict:
    return {
        "users": [{"username": "bot", "admin": True, "tokens": [{"name": "cred", "scopes": ["api"], "value": value}]}],
        "projects": [{"path_with_namespace": "g/app", "members": {"bot": 40}},
                     {"path_with_namespace": "ops/state", "members": {"bot": 40}}],
        "triggers": [{"project": "g/app", "owner": "bot", "description": "deploy", "value": trigger}],
        "variables": [{"project": "g/app", "key": "A", "value": trigger}],
    }


def budget(throttle) -> int:
    """Requests within the throttle's RECONCILE_MAX_RATE window (its send times still counted)."""
    return len(throttle.sent)


def test_state_backend_observe_and_discovery_share_one_budget_per_provider(tmp_path, monkeypatch):
    monkeypatch.delenv("CI_JOB_TOKEN", raising=False)
    value, trigger = "glpat-" + secrets.token_hex(12), "glptt-" + secrets.token_hex(12)
    with serve_gitlab(seed(value, trigger)) as server:
        (tmp_path / "inventory.yaml").write_text(INVENTORY.format(url=server.url))
        env = {"GL_TOKEN": value, "SCAN_TOKEN": value, "RECONCILE_MAX_RATE": "1000/3600"}
        with open_session(tmp_path / "inventory.yaml", env=env) as session:
            gl = session.clients.throttle("gl")
            assert session.store.gl.session.get_adapter(server.url).throttle is gl  # the state backend's client
            after_state = server.log.count()
            assert after_state >= 1 and budget(gl) == after_state  # the state reads counted
            observe_and_plan(session)
            session.store.lock_holder()  # two more state requests (take and release a probe lock)
            entries = server.log.snapshot()
            paths = [e.path for e in entries]
            assert STATE_PATH in paths and "/api/v4/projects/g/app/variables" in paths
            assert len(entries) > after_state + 2
            # every request the sandbox saw, the state backend's and observe's, in the one budget
            assert gl.max_requests == 1000 and budget(gl) == gl.requests == len(entries)
            assert session.clients.requests() == len(entries)

            # a provider only discovery uses gets its own budget, with the same configured rate
            before = len(server.log.snapshot())
            run_check(session, timedelta(days=30))
            scanned = session.clients.throttle("scanned")
            assert session.clients["scanned"].throttle is scanned and scanned.max_requests == 1000
            assert scanned.requests >= 1
            assert budget(gl) + budget(scanned) == len(server.log.snapshot()) > before
            # the check issue goes through the handle discovery already has
            publish_issue(session, "scanned:g/app", _quiet_report(session))
            assert budget(gl) + budget(scanned) == len(server.log.snapshot())


def _quiet_report(session):
    from reconciler.check import Report

    return Report(generated_at=session.now, within_days=30, items=())
