"""The pipelines of .gitlab-ci.yml run end to end against the GitLab sandbox.

For each pipeline source the jobs whose `rules` match are selected (tests/ci/ci_pipeline.py), and
their `script` lines run in bash in a checkout-like directory holding a small inventory, with the
variables GitLab would set and the credential variables the inventory names. The inventory's
GitLab provider is the sandbox on loopback and its ledger is the sandbox's Terraform-state
endpoint, reached with CI_JOB_TOKEN (the state's provider has no token in the job), so
`reconcile` runs exactly as in CI: python-gitlab over HTTP, nothing mocked.

Jobs whose command is not in the CLI (`apply`, `check`) are skipped with a reason, and run as soon
as the command is there.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import gitlab
import pytest
from ci_pipeline import load, run_job, select

from reconciler.cli import cli
from reconciler.gitlab_ci import APPLY_MARKER, PLAN_MARKER
from reconciler.state import generate_key
from reconciler_sandbox.core import known_secrets
from reconciler_sandbox.gitlab import serve_gitlab

HAS_APPLY = "apply" in cli.commands
HAS_CHECK = "check" in cli.commands
needs_apply = pytest.mark.skipif(not HAS_APPLY, reason="`reconcile apply` is not in the CLI")
needs_check = pytest.mark.skipif(not HAS_CHECK, reason="`reconcile check` is not in the CLI")


def mint(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


BOT, ALICE, TRIGGER, JOB = mint("glpat-"), mint("glpat-"), mint("glptt-"), mint("glcbt-")
ESCROW_KEY = generate_key()
PROJECT_ID = 100
HEAD = "1" * 40

INVENTORY = """\
providers:
  gitlab:
    kind: gitlab
    url: {url}
    auth: {{token_env: RECONCILE_GITLAB_TOKEN}}
  pipeline-gitlab:  # the GitLab the pipeline runs on; its variable is not set, so CI_JOB_TOKEN reaches the ledger
    kind: gitlab
    url: {url}
    auth: {{token_env: RECONCILE_STATE_TOKEN}}
state:
  backend: gitlab
  provider: pipeline-gitlab
  project: ops/inventory
  name: reconcile
check:
  within: 21d
  issue_title: "Token Checker: tokens expiring soon"
  issue_label: token-checker
tokens:
  sync-trigger:
    description: Lets the app start the ticket sync pipeline
    owner: "@ops"
    source: {{kind: gitlab_pipeline_trigger, provider: gitlab, project: ops/sync, description: Ticket sync}}
    rotation: {{max_age: 90d}}
    consumers:
      - kind: gitlab_ci_variable
        provider: gitlab
        project: ops/app
        key: SYNC_TRIGGER_TOKEN
        masked: true
        protected: true
"""


def seed() -> dict:
    return {
        "users": [
            {"username": "reconcile-bot", "tokens": [{"name": "reconcile", "scopes": ["api"], "value": BOT,
                                                      "expires_at": "now+300d", "created_at": "now-10d"}]},
            {"username": "alice", "tokens": [{"name": "alice", "scopes": ["api"], "value": ALICE,
                                              "expires_at": "now+300d"}]},
        ],
        "projects": [
            {"path_with_namespace": "ops/inventory", "id": PROJECT_ID, "default_branch": "main"},
            {"path_with_namespace": "ops/sync"},
            {"path_with_namespace": "ops/app"},
        ],
        "triggers": [{"project": "ops/sync", "owner": "reconcile-bot", "description": "Ticket sync",
                      "created_at": "now-120d", "value": TRIGGER}],
        "variables": [{"project": "ops/app", "key": "SYNC_TRIGGER_TOKEN", "value": TRIGGER, "masked": True,
                       "protected": True}],
        "merge_requests": [{"project": "ops/inventory", "iid": 1, "sha": HEAD, "title": "Rotate the sync trigger",
                            "source_branch": "rotate-sync", "author": "alice"}],
        "job_tokens": [{"project": "ops/inventory", "user": "alice", "value": JOB}],
    }


@pytest.fixture(scope="module")
def shared():
    with serve_gitlab() as server:
        yield server


@pytest.fixture
def world(shared, tmp_path):
    shared.service.reset(seed())
    shared.log.clear()
    checkout = tmp_path / "checkout"
    (checkout / "inventory").mkdir(parents=True)
    (checkout / "inventory" / "reconcile.yaml").write_text(INVENTORY.format(url=shared.url))
    return shared, checkout


def variables(server, source: str, **extra: str) -> dict[str, str]:
    """What GitLab sets for a job of this pipeline, plus the protected variables: the masked
    credentials and the trusted provider set."""
    found = {
        "CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": source, "CI_PROJECT_ID": str(PROJECT_ID),
        "CI_PROJECT_PATH": "ops/inventory", "CI_DEFAULT_BRANCH": "main", "CI_JOB_TOKEN": JOB,
        "CI_SERVER_URL": server.url, "CI_API_V4_URL": f"{server.url}/api/v4", "CI_PIPELINE_ID": "501",
        "CI_PIPELINE_URL": f"{server.url}/ops/inventory/-/pipelines/501", "CI_JOB_URL": f"{server.url}/ops/inventory/-/jobs/9001",
        "RECONCILE_GITLAB_TOKEN": BOT, "RECONCILE_ESCROW_KEY": ESCROW_KEY,
        # the protected variable naming the trusted providers (README, "Running in GitLab CI")
        "RECONCILE_TRUSTED_PROVIDERS": f"{server.url}=RECONCILE_GITLAB_TOKEN {server.url}=RECONCILE_STATE_TOKEN",
    }
    found.update(extra)
    return found


class Pipeline:
    """One pipeline's jobs, run in stage order. Like GitLab, each job starts from a fresh copy of
    the checkout and gets the `artifacts:paths` of the jobs of earlier stages."""

    def __init__(self, checkout: Path, env: dict[str, str], changed: list[str] | None) -> None:
        self.config = load()
        self.checkout, self.env = checkout, env
        self.jobs = select(self.config, env, changed)
        self.results: dict[str, tuple[int, str]] = {}
        self.workspaces: dict[str, Path] = {}
        runs = len(list(checkout.parent.glob("pipeline-*")))
        self.root = checkout.parent / f"pipeline-{runs + 1}"

    def run(self) -> Pipeline:
        order = self.config["stages"]
        for name, job in sorted(self.jobs.items(), key=lambda item: order.index(item[1].get("stage", "test"))):
            workspace = self.root / name
            shutil.copytree(self.checkout, workspace)
            for earlier, done in self.workspaces.items():
                for path in (self.jobs[earlier].get("artifacts") or {}).get("paths") or []:
                    if (done / path).is_file():
                        shutil.copy(done / path, workspace / path)
            self.workspaces[name] = workspace
            self.results[name] = run_job(self.config, name, job, self.env, workspace)
            print(f"--- job {name} (exit {self.results[name][0]}) ---\n{self.results[name][1]}")  # leak-scanned
        return self

    def code(self, name: str) -> int:
        return self.results[name][0]

    def log(self, name: str) -> str:
        return self.results[name][1]

    def artifact(self, job: str, path: str) -> Path:
        return self.workspaces[job] / path

    def assert_no_secret(self) -> None:
        """No credential in any job log or file a job wrote (the suite's guard scans them too)."""
        values = [v for v in known_secrets() | {ESCROW_KEY, JOB, BOT} if len(v) >= 8]
        places = {f"log of {name}": out for name, (_, out) in self.results.items()}
        places |= {f"file {p.relative_to(self.root)}": p.read_text(errors="replace")
                   for p in self.root.rglob("*") if p.is_file()}
        for place, text in places.items():
            assert not [v for v in values if v in text], f"a credential appeared in the {place}"


def run_pipeline(checkout: Path, env: dict[str, str], changed: list[str] | None) -> Pipeline:
    return Pipeline(checkout, env, changed).run()


def project(server, token=BOT):
    return gitlab.Gitlab(server.url, private_token=token, timeout=10).projects.get(PROJECT_ID, lazy=True)


def marked_notes(server, iid: int, marker: str) -> list:
    return [n for n in project(server).mergerequests.get(iid).notes.list(get_all=True) if marker in n.body]


# --- merge request pipeline --------------------------------------------------------------------------


def test_merge_request_pipeline_posts_one_plan_note_and_updates_it_on_the_next_push(world):
    server, checkout = world
    env = variables(server, "merge_request_event", CI_MERGE_REQUEST_IID="1", CI_COMMIT_SHA=HEAD)
    first = run_pipeline(checkout, env, ["inventory/reconcile.yaml"])
    assert set(first.results) == {"reconcile-validate", "reconcile-plan"}
    assert first.code("reconcile-validate") == 0 and first.code("reconcile-plan") == 0, first.results
    assert "plan note: created note" in first.log("reconcile-plan")
    notes = marked_notes(server, 1, PLAN_MARKER)
    assert len(notes) == 1
    body = notes[0].body
    assert body.index("Plan: 0 to create, 1 to rotate") < body.index("<details>")  # summary on top
    assert "sync-trigger" in body and "older than max_age 90d" in body
    assert json.loads(first.artifact("reconcile-plan", "plan.json").read_text())["has_changes"] is True
    for job in ("reconcile-validate", "reconcile-plan"):
        assert json.loads(first.artifact(job, "gl-code-quality-report.json").read_text()) == []
    # plan changes nothing live: the one write is the note
    ledger = [e for e in server.log.snapshot() if "/terraform/state/" in e.path]
    assert ledger and all(e.method == "GET" and e.status in (200, 204, 404) for e in ledger)  # via CI_JOB_TOKEN
    writes = [f"{r.method} {r.path}" for r in server.log.mutations()]
    assert writes == [f"POST /api/v4/projects/{PROJECT_ID}/merge_requests/1/notes"], writes

    second_sha = "2" * 40
    second = run_pipeline(checkout, {**env, "CI_COMMIT_SHA": second_sha, "CI_PIPELINE_ID": "502"},
                          ["inventory/reconcile.yaml"])
    assert second.code("reconcile-plan") == 0, second.results
    assert "plan note: updated note" in second.log("reconcile-plan")
    again = marked_notes(server, 1, PLAN_MARKER)
    assert [n.id for n in again] == [notes[0].id]
    assert second_sha[:8] in again[0].body and HEAD[:8] not in again[0].body
    first.assert_no_secret()
    second.assert_no_secret()


def test_merge_request_with_a_policy_violation_fails_with_a_code_quality_report_and_no_stale_plan(world):
    server, checkout = world
    env = variables(server, "merge_request_event", CI_MERGE_REQUEST_IID="1", CI_COMMIT_SHA=HEAD)
    assert run_pipeline(checkout, env, ["inventory/reconcile.yaml"]).code("reconcile-plan") == 0  # a good plan first
    inventory = checkout / "inventory" / "reconcile.yaml"
    inventory.write_text(inventory.read_text().replace("check:", "policy:\n  max_lifetime: 30d\ndefaults:\n"
                                                       "  rotation: {lifetime: 365d}\ncheck:"))
    bad = run_pipeline(checkout, {**env, "CI_COMMIT_SHA": "3" * 40}, ["inventory/reconcile.yaml"])
    assert bad.code("reconcile-validate") == 1 and bad.code("reconcile-plan") == 1
    report = json.loads(bad.artifact("reconcile-validate", "gl-code-quality-report.json").read_text())
    assert len(report) == 1
    issue = report[0]
    line = next(n for n, text in enumerate(inventory.read_text().splitlines(), 1) if "lifetime: 365d" in text)
    assert issue["location"] == {"path": "inventory/reconcile.yaml", "lines": {"begin": line}}
    assert issue["severity"] == "major" and len(issue["fingerprint"]) == 64
    assert "lifetime 365d exceeds policy.max_lifetime 30d" in issue["description"]
    notes = marked_notes(server, 1, PLAN_MARKER)  # the earlier plan is replaced, not left standing
    assert len(notes) == 1 and "No plan" in notes[0].body and "Plan: 0 to create" not in notes[0].body
    bad.assert_no_secret()


def test_validate_job_report_names_file_line_and_key(world):
    server, checkout = world
    inventory = checkout / "inventory" / "reconcile.yaml"
    inventory.write_text(inventory.read_text().replace("masked: true", "maskd: true"))
    config = load()
    env = variables(server, "merge_request_event", CI_MERGE_REQUEST_IID="1", CI_COMMIT_SHA=HEAD)
    code, out = run_job(config, "reconcile-validate", select(config, env, ["inventory/reconcile.yaml"])["reconcile-validate"], env,
                        checkout)
    assert code == 1 and "maskd" in out
    report = json.loads((checkout / "gl-code-quality-report.json").read_text())
    line = next(n for n, text in enumerate(inventory.read_text().splitlines(), 1) if "maskd" in text)
    assert any("maskd" in i["description"] and i["location"]["lines"]["begin"] == line for i in report), report


# --- default branch pipeline (after a merge) ---------------------------------------------------------


def merge(server) -> str:
    mr = project(server, ALICE).mergerequests.get(1)
    mr.merge()
    return mr.merge_commit_sha


APPLY_NOTE_JOB = {"script": ['reconcile ci apply-note --inventory "$RECONCILE_INVENTORY" --log apply.log --exit-code 0']}


def test_apply_note_lands_on_the_merged_merge_request_once(world):
    """`reconcile ci apply-note` alone (the apply job's last step), so it runs before apply lands."""
    server, checkout = world
    sha = merge(server)
    (checkout / "apply.log").write_text("~ token sync-trigger: rotated\nApply complete: 1 rotated, 1 consumer updated.\n")
    env = variables(server, "push", CI_COMMIT_SHA=sha, CI_COMMIT_BRANCH="main")
    retried = {**env, "CI_JOB_URL": f"{server.url}/ops/inventory/-/jobs/9002"}  # the job retried
    outputs = [run_job(load(), "apply-note", APPLY_NOTE_JOB, e, checkout) for e in (env, env, retried)]
    assert [code for code, _ in outputs] == [0, 0, 0], outputs
    assert ["created note" in outputs[0][1], "unchanged note" in outputs[1][1], "updated note" in outputs[2][1]] \
        == [True, True, True], outputs
    notes = marked_notes(server, 1, APPLY_MARKER)
    assert len(notes) == 1 and "reconcile apply succeeded" in notes[0].body
    assert "Apply complete: 1 rotated" in notes[0].body and sha[:8] in notes[0].body

    direct = {**env, "CI_COMMIT_SHA": "f" * 40}  # a direct push: no merge request to tell
    code, out = run_job(load(), "apply-note", APPLY_NOTE_JOB, direct, checkout)
    assert code == 0 and "came from no merged merge request" in out
    assert len(marked_notes(server, 1, APPLY_MARKER)) == 1


def converged(checkout: Path, env: dict[str, str]) -> tuple[int, str]:
    return run_job(load(), "converged", {"script": [
        'reconcile plan --inventory "$RECONCILE_INVENTORY" --detailed-exitcode']}, env, checkout)


@needs_apply
def test_default_branch_pipeline_applies_converges_and_posts_the_summary_on_the_merged_mr(world):
    server, checkout = world
    sha = merge(server)
    env = variables(server, "push", CI_COMMIT_SHA=sha, CI_COMMIT_BRANCH="main")
    pipeline = run_pipeline(checkout, env, ["inventory/reconcile.yaml"])
    assert set(pipeline.results) == {"reconcile-apply"}
    assert pipeline.code("reconcile-apply") == 0, pipeline.log("reconcile-apply")
    variable = next(v for v in server.service.table("variables") if v["key"] == "SYNC_TRIGGER_TOKEN")
    live = [t for t in server.service.table("triggers") if t["value"] == variable["value"]]
    assert variable["value"] != TRIGGER and len(live) == 1
    assert not [t for t in server.service.table("triggers") if t["value"] == TRIGGER]  # the old one is gone
    notes = marked_notes(server, 1, APPLY_MARKER)
    assert len(notes) == 1 and "reconcile apply succeeded" in notes[0].body
    code, out = converged(checkout, env)
    assert code == 0, out
    pipeline.assert_no_secret()


# --- schedules ---------------------------------------------------------------------------------------


@needs_apply
def test_daily_apply_schedule_rotates_what_is_due_and_converges(world):
    server, checkout = world
    env = variables(server, "schedule", CI_COMMIT_SHA=HEAD, CI_COMMIT_BRANCH="main", RECONCILE_SCHEDULE="daily-apply")
    pipeline = run_pipeline(checkout, env, None)
    assert set(pipeline.results) == {"reconcile-daily-apply"} and pipeline.code("reconcile-daily-apply") == 0, pipeline.results
    code, out = converged(checkout, env)
    assert code == 0, out
    pipeline.assert_no_secret()


@needs_check
def test_weekly_check_schedule_creates_the_issue_then_updates_it(world):
    server, checkout = world
    expiring = seed()
    expiring["triggers"][0]["expires_at"] = "now+10d"  # within the 21-day window: needs attention
    server.service.reset(expiring)
    env = variables(server, "schedule", CI_COMMIT_SHA=HEAD, CI_COMMIT_BRANCH="main", RECONCILE_SCHEDULE="weekly-check")
    allowed = [0, *load()["reconcile-weekly-check"]["allow_failure"]["exit_codes"]]
    runs = []
    for _ in range(2):
        pipeline = run_pipeline(checkout, env, None)
        assert set(pipeline.results) == {"reconcile-weekly-check"}
        assert pipeline.code("reconcile-weekly-check") == 2 and 2 in allowed, pipeline.results  # attention, not failure
        pipeline.assert_no_secret()
        runs.append([(i.iid, i.updated_at) for i in project(server).issues.list(get_all=True, labels="token-checker")])
    assert len(runs[0]) == 1 and len(runs[1]) == 1  # created, then the same issue again
    assert runs[0][0][0] == runs[1][0][0]
    issue = project(server).issues.get(runs[1][0][0])
    assert issue.state == "opened" and "Token Checker" in issue.title


def test_plan_errors_go_to_the_note_and_the_code_quality_report(world):
    """A recreate that would lose an undeclared custom header is refused by the plan (an error at
    the consumer's line): the plan job fails, the note shows the blocked token, the report has it."""
    server, checkout = world
    server.service.seed({"hooks": [{"project": "ops/app", "url": "https://deploy.example.com/hook",
                                    "custom_headers": {"X-Deploy-Token": TRIGGER, "X-Other": mint("hdr-")}}]})
    inventory = checkout / "inventory" / "reconcile.yaml"
    inventory.write_text(inventory.read_text() + """\
      - kind: gitlab_webhook
        provider: gitlab
        project: ops/app
        hook: https://deploy.example.com/hook
        mode: recreate
        secret: {custom_header: X-Deploy-Token}
""")
    env = variables(server, "merge_request_event", CI_MERGE_REQUEST_IID="1", CI_COMMIT_SHA=HEAD)
    pipeline = run_pipeline(checkout, env, ["inventory/reconcile.yaml"])
    assert pipeline.code("reconcile-validate") == 0 and pipeline.code("reconcile-plan") == 1, pipeline.results
    report = json.loads(pipeline.artifact("reconcile-plan", "gl-code-quality-report.json").read_text())
    errors = [i for i in report if i["severity"] == "major"]
    assert errors and errors[0]["check_name"].startswith("reconcile-plan-")
    assert errors[0]["location"]["path"] == "inventory/reconcile.yaml" and errors[0]["location"]["lines"]["begin"] > 20
    note = marked_notes(server, 1, PLAN_MARKER)
    assert len(note) == 1 and "**blocked**" in note[0].body and "1 error(s)" in note[0].body
    pipeline.assert_no_secret()
