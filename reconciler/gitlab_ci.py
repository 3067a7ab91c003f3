"""What the GitLab pipeline (`.gitlab-ci.yml`) does besides plan, apply and check: publish the plan
on the merge request as one note updated in place, post the apply summary on the merge request a
merge came from, and write GitLab Code Quality reports.

Everything reads the pipeline's predefined variables (`CIContext.from_env`) and can be given
explicitly instead, so the commands also run outside CI.

Credentials: notes are written with the inventory's GitLab provider token for the GitLab the
pipeline runs on (`CI_SERVER_URL`), or the variable named by `--token-env`. `CI_JOB_TOKEN` cannot
be used: GitLab does not accept job tokens on the merge request and notes endpoints (the job token
allowlist in doc/ci/jobs/ci_job_token.md has no notes or merge requests; gitlab-org/gitlab#545150
"Add support for job token to access merge request endpoints" is open, and
semantic-release/gitlab#859 records that "job tokens are unable to comment on merge requests").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import markdown as md
from reconciler.errors import ReconcileError
from reconciler.trust import TRUSTED_PROVIDERS_ENV, origin, parse_trusted

if TYPE_CHECKING:
    from reconciler.plan_model import Plan

PLAN_MARKER = "<!-- reconcile:plan -->"
APPLY_MARKER = "<!-- reconcile:apply -->"
NOTE_LIMIT = 1_000_000  # GitLab's maximum note length (Note::MAX_NOTE_LENGTH)

# Credential shapes that must never reach a note even if a command misbehaved: GitLab token
# prefixes (doc/security/tokens: glpat, glptt, gldt, glrt, glcbt, gloas, glsoat...), bearer values.
CREDENTIAL = re.compile(
    r"\b(?:gl(?:pat|ptt|dt|rt|cbt|oas|soat|ffct|agent|imt|ft|wt)-[A-Za-z0-9_.-]{8,})"
    r"|(?i:(?<=bearer )[A-Za-z0-9_.~+/=-]{16,})"
)


class CIError(ReconcileError):
    """A problem the user fixes (one line, exit 1)."""


@dataclass(frozen=True)
class CIContext:
    """The pipeline facts these commands use (GitLab's predefined CI/CD variables)."""

    server_url: str | None = None  # CI_SERVER_URL
    project: str | None = None  # CI_PROJECT_ID (or a path)
    mr_iid: int | None = None  # CI_MERGE_REQUEST_IID
    commit_sha: str | None = None  # CI_COMMIT_SHA
    pipeline_url: str | None = None  # CI_PIPELINE_URL
    pipeline_id: str | None = None  # CI_PIPELINE_ID
    job_url: str | None = None  # CI_JOB_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> CIContext:
        """The context from `env` (default os.environ); keyword arguments that are not None win."""
        env = os.environ if env is None else env
        iid = env.get("CI_MERGE_REQUEST_IID") or None
        found: dict[str, Any] = {
            "server_url": env.get("CI_SERVER_URL") or None,
            "project": env.get("CI_PROJECT_ID") or None,
            "mr_iid": int(iid) if iid and iid.isdigit() else None,
            "commit_sha": env.get("CI_COMMIT_SHA") or None,
            "pipeline_url": env.get("CI_PIPELINE_URL") or None,
            "pipeline_id": env.get("CI_PIPELINE_ID") or None,
            "job_url": env.get("CI_JOB_URL") or None,
        }
        found.update({k: v for k, v in given.items() if v is not None})
        return cls(**found)

    def need(self, *names: str) -> None:
        flags = {"server_url": "--gitlab-url or CI_SERVER_URL", "project": "--project or CI_PROJECT_ID",
                 "mr_iid": "--mr or CI_MERGE_REQUEST_IID", "commit_sha": "--sha or CI_COMMIT_SHA"}
        missing = [flags[n] for n in names if getattr(self, n) in (None, "")]
        if missing:
            raise CIError(f"not in a GitLab pipeline and not given: {', '.join(missing)}")

    def footer(self, what: str) -> str:
        parts = [f"posted by `reconcile ci {what}`"]
        if self.pipeline_url:
            parts.append(f"pipeline [#{self.pipeline_id or 'link'}]({self.pipeline_url})")
        if self.job_url:
            parts.append(f"[job log]({self.job_url})")
        if self.commit_sha:
            parts.append(f"commit {md.code(self.commit_sha[:8])}")
        return "<sub>" + " · ".join(parts) + "</sub>"


# --- credentials and client ----------------------------------------------------------------------


def gitlab_providers(inventory_path: str | Path) -> list[tuple[str, str]]:
    """(url, token_env) of every GitLab provider of the inventory. When the inventory does not load
    (a merge request that breaks it must still get its note), read from the raw YAML files."""
    from reconciler.inventory import diagnose
    from reconciler.inventory.model import GitLabProvider

    model, _ = diagnose(inventory_path)
    if model is not None:
        return [(p.url, p.token_env) for p in model.providers.values() if isinstance(p, GitLabProvider)]
    import yaml

    root = Path(inventory_path)
    files = [root] if root.is_file() else sorted(root.rglob("*.y*ml"))
    found = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        providers = data.get("providers") if isinstance(data, dict) else None
        for p in (providers or {}).values() if isinstance(providers, dict) else ():
            auth = p.get("auth") if isinstance(p, dict) else None
            if isinstance(p, dict) and p.get("kind") == "gitlab" and isinstance(auth, dict) and auth.get("token_env"):
                found.append((str(p.get("url", "")), str(auth["token_env"])))
    return found


def note_token_env(inventory_path: str | Path, server_url: str, token_env: str | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """The environment variable holding the token that writes notes on `server_url`: `token_env`
    when given, else the token_env of the inventory's GitLab provider with that URL (the first
    whose variable is set, when several providers name that GitLab)."""
    if token_env:
        return token_env
    env = os.environ if env is None else env
    matching = [name for url, name in gitlab_providers(inventory_path) if url.rstrip("/") == server_url.rstrip("/")]
    if env.get(TRUSTED_PROVIDERS_ENV, "").strip():  # the trusted set names the variable, not the change
        matching = [name for where, name in sorted(parse_trusted(env[TRUSTED_PROVIDERS_ENV])) if where == origin(server_url)]
    if matching:
        return next((name for name in matching if env.get(name)), matching[0])
    raise CIError(f"no GitLab provider in {inventory_path} has url {server_url}: pass --token-env NAME "
                  f"(CI_JOB_TOKEN cannot write merge request notes)")


def connect_gitlab(server_url: str, token_env: str, env: Mapping[str, str] | None = None, *,
                   timeout: float = 30.0):
    """python-gitlab for `server_url` with the token in `token_env`, its requests within
    RECONCILE_CONCURRENCY and RECONCILE_MAX_RATE like every provider client's, reached where the
    environment's endpoint override says (as every provider's GitLab: `Endpoints.from_env`)."""
    from reconciler.clients import Endpoints, ProviderError, gitlab_client, throttle_from_env

    env = os.environ if env is None else env
    token = env.get(token_env, "")
    if not token:
        raise CIError(f"{token_env} is not set: it holds the GitLab token that writes merge request notes "
                      f"(a masked, protected CI/CD variable; CI_JOB_TOKEN cannot write notes)")
    try:
        throttle, endpoints = throttle_from_env(env), Endpoints.from_env(env)
    except ProviderError as err:
        raise CIError(str(err)) from None
    url = endpoints.gitlab(server_url) if endpoints else server_url
    return gitlab_client(url, throttle, timeout=timeout, private_token=token)


def describe_gitlab_error(err: Exception) -> str:
    """A python-gitlab error as one line: the status once (GitLab's own message often starts with
    it, e.g. "404 Project Not Found"), then the message."""
    code = str(getattr(err, "response_code", None) or "")
    message = str(getattr(err, "error_message", None) or err)
    return message if not code or message.startswith(code) else f"{code} {message}"


# --- notes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteOutcome:
    action: str  # created | updated | unchanged
    note_id: int
    mr_iid: int

    def describe(self) -> str:
        return f"{self.action} note {self.note_id} on merge request !{self.mr_iid}"


def find_own_note(mr: Any, marker: str, user_id: int) -> Any | None:
    """The oldest note on `mr` written by `user_id` whose body carries `marker`."""
    for note in mr.notes.list(iterator=True, sort="asc", order_by="created_at"):
        author = getattr(note, "author", None) or {}
        if marker in (note.body or "") and author.get("id") == user_id:
            return note
    return None


def upsert_note(mr: Any, body: str, marker: str, user_id: int) -> NoteOutcome:
    """Create the note carrying `marker`, or update the one this user wrote before: one note per
    merge request, however many pipelines run."""
    body = fit_note(body if marker in body else f"{marker}\n{body}")
    note = find_own_note(mr, marker, user_id)
    if note is None:
        # Sent once: a retry after a lost answer would post a second note; the next run finds
        # this one by its marker and updates it.
        created = mr.notes.create({"body": body}, retry_transient_errors=False)
        return NoteOutcome("created", created.id, mr.iid)
    if note.body == body:
        return NoteOutcome("unchanged", note.id, mr.iid)
    note.body = body
    note.save()
    return NoteOutcome("updated", note.id, mr.iid)


def fit_note(body: str) -> str:
    if len(body) <= NOTE_LIMIT:
        return body
    cut = "\n\n… (cut to GitLab's note size limit; the full plan is the job's plan.json artifact)\n"
    return body[: NOTE_LIMIT - len(cut)] + cut


def redact(text: str) -> str:
    """`text` with anything credential-shaped replaced: a second line of defence for notes."""
    return CREDENTIAL.sub("<redacted>", text)


def merge_request(gl: Any, ctx: CIContext) -> Any:
    import gitlab.exceptions  # lazy: validate --codequality imports this module

    ctx.need("project", "mr_iid")
    try:
        return gl.projects.get(ctx.project, lazy=True).mergerequests.get(ctx.mr_iid)
    except gitlab.exceptions.GitlabError as err:
        raise CIError(f"merge request !{ctx.mr_iid} of project {ctx.project}: {describe_gitlab_error(err)}") from None


def find_merged_merge_request(gl: Any, project: str, sha: str) -> Any | None:
    """The merge request a default-branch commit came from (`GET .../commits/:sha/merge_requests`,
    i.e. GitLab's by_related_commit_sha): the merged one whose merge, squash or head commit is
    `sha`, else any merged one containing it. None when the commit came from no merge request
    (a direct push; GitLab answers [] or, for an unknown commit, 404)."""
    import gitlab.exceptions

    proj = gl.projects.get(project, lazy=True)
    try:
        found = proj.commits.get(sha, lazy=True).merge_requests(get_all=True)
    except gitlab.exceptions.GitlabError as err:
        if getattr(err, "response_code", None) == 404:
            return None
        raise CIError(f"merge requests of commit {sha[:8]} in project {project}: {describe_gitlab_error(err)}") from None
    merged = [m for m in found if m.get("state") == "merged"]
    exact = [m for m in merged if sha in (m.get("merge_commit_sha"), m.get("squash_commit_sha"), m.get("sha"))]
    chosen = (exact or merged or [None])[0]
    if chosen is None:
        return None
    return proj.mergerequests.get(chosen["iid"])


def current_user_id(gl: Any) -> int:
    gl.auth()
    return int(gl.user.id)


def plan_note_body(plan: Plan, ctx: CIContext) -> str:
    """The merge request note for a saved plan: the markdown rendering (summary on top, a
    collapsible block per token) under the marker, with where it came from."""
    from reconciler.render import render_markdown

    return f"{PLAN_MARKER}\n{redact(render_markdown(plan))}\n{ctx.footer('plan-note')}\n"


def missing_plan_body(ctx: CIContext, why: str) -> str:
    return (f"{PLAN_MARKER}\n### reconcile plan\n\n**No plan:** {md.inline(why)}. See the job log for the error.\n\n"
            f"{ctx.footer('plan-note')}\n")


def apply_note_body(output: str, exit_code: int, ctx: CIContext) -> str:
    """The merge request note for an apply: the outcome on top, the (redacted) output below."""
    outcome = {0: "succeeded", 2: "succeeded with changes pending"}.get(exit_code, f"failed (exit {exit_code})")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = next((ln for ln in reversed(lines) if ln.lower().startswith(("apply:", "apply complete", "no changes",
                                                                          "error"))), lines[-1] if lines else "")
    head = f"### reconcile apply {outcome}"
    body = [APPLY_MARKER, head, ""]
    if last:
        body += [md.inline(redact(last)), ""]
    body += ["<details><summary>apply output</summary>", ""]
    body += md.fenced((redact(output.rstrip()) or "(no output)").split("\n"), "text")
    body += ["", "</details>", "", ctx.footer("apply-note"), ""]
    return "\n".join(body)


# --- Code Quality --------------------------------------------------------------------------------


_AT = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?::\d+)?$")


def _relative(path: str, root: Path) -> str:
    """A report path relative to the repository root (GitLab matches it against the MR diff)."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix().removeprefix("./")


def _issue(check: str, description: str, severity: str, path: str, line: int, identity: str) -> dict[str, Any]:
    # The fingerprint leaves out the line, so an issue that only moves is not "new" in the MR widget.
    fingerprint = hashlib.sha256(f"{check}\0{path}\0{identity}".encode()).hexdigest()
    return {"description": description, "check_name": check, "fingerprint": fingerprint,
            "severity": {"error": "major", "warning": "minor"}.get(severity, "info"),
            "location": {"path": path, "lines": {"begin": max(1, int(line))}}}


def codequality_from_diagnostics(diagnostics: Iterable[Any], root: Path | None = None) -> list[dict[str, Any]]:
    """GitLab Code Quality issues for `validate` diagnostics (schema, meaning and policy)."""
    root = Path.cwd() if root is None else root
    issues = []
    for d in diagnostics:
        path = _relative(d.pos.file, root)
        issues.append(_issue("reconcile-validate", f"{d.key}: {d.message}", d.severity, path, d.pos.line,
                             f"{d.key}\0{d.message}"))
    return issues


def codequality_from_plan(plan: Any, inventory_path: str | Path, root: Path | None = None) -> list[dict[str, Any]]:
    """GitLab Code Quality issues for a plan's errors and warnings (blocked rotations, policy
    violations found against live state, unmanaged tokens...), at the inventory line each cites."""
    root = Path.cwd() if root is None else root
    issues = []
    for f in plan.all_findings():
        m = _AT.match(f.at or "")
        path, line = (m.group("path"), int(m.group("line"))) if m else (str(inventory_path), 1)
        where = ".".join(p for p in (f.token and f"tokens.{f.token}", f.consumer) if p)
        description = f"{where}: {f.message}" if where else f.message
        issues.append(_issue(f"reconcile-plan-{f.code}", redact(description), f.severity,
                             _relative(path, root), line, f"{where}\0{f.code}\0{f.message}"))
    return issues


def write_codequality(path: str | Path, issues: list[dict[str, Any]]) -> None:
    """Write the report (a JSON array; `[]` when clean, so the MR widget shows the issues resolved)."""
    unique: dict[str, dict[str, Any]] = {}
    for issue in issues:
        unique.setdefault(issue["fingerprint"], issue)  # the first of each fingerprint, in order
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(list(unique.values()), indent=2) + "\n")


__all__ = [
    "APPLY_MARKER", "PLAN_MARKER", "CIContext", "CIError", "NoteOutcome", "apply_note_body",
    "codequality_from_diagnostics", "codequality_from_plan", "connect_gitlab", "current_user_id",
    "find_merged_merge_request", "find_own_note", "gitlab_providers", "merge_request", "missing_plan_body", "note_token_env",
    "plan_note_body", "redact", "upsert_note", "write_codequality",
]
