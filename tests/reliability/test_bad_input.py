"""Bad input beyond the inventory corpus: every case gets one clear message
that names what is wrong (the file, provider, environment variable, option or live object), exit
code 1, no traceback, and not one mutating request in either sandbox's request log.

Each case is a row: how to break the world (inventory text, environment, state files, a saved plan,
live faults) and the command to run. The inventory corpus (tests/inventory/bad/, 70 cases) covers
the inventory's own mistakes; these cover everything around it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rig as R

from reconciler.observed import parse_time, to_iso
from reconciler.secret import Secret
from reconciler.state import Escrow, LocalStore, generate_key
from reconciler.state.escrow import parse_key
from reconciler_sandbox.core import FaultRule

SANDBOX_DIR = Path(".reconcile/sandbox")


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]  # substrings of the message (stdout + stderr)
    env: dict[str, str | None] = field(default_factory=dict)  # overrides of the rig's environment
    tokens: Callable[[str], str] | None = None  # rewrite the inventory's tokens.yaml
    providers: Callable[[str], str] | None = None
    files: dict[str, str | bytes | None] = field(default_factory=dict)  # path (cwd) -> content (None: mkdir)
    setup: Callable[[R.Rig], None] | None = None  # faults etc.
    before: tuple[str, ...] = ()  # a command run first, with the same environment (its exit code ignored)
    xfail: str | None = None


PLAN = ("plan", "--sandbox", "--now", R.NOW_TEXT)
CHECK = ("check", "--sandbox", "--now", R.NOW_TEXT)
STATE_SHOW = ("state", "show", "--state-dir", str(SANDBOX_DIR))
APPLY = ("apply", "--sandbox", "--auto-approve", "--now", R.NOW_TEXT)
APPLY_PLAN = (*APPLY, "saved-plan.json")
EXTERNAL = """  ext:
    description: pasted by a person
    owner: "@support"
    source: {kind: external, value_env: EXT_MISSING}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: support/sync, key: EXT}
"""
ESCROW_KEY_A = generate_key()  # the key an earlier apply escrowed with


def escrowed(key: str, tamper: bool = False) -> Callable[[R.Rig], None]:
    """An escrow entry for bot-pat's live token sealed with `key`, as an interrupted apply leaves it
    (bound to the live instance: its id and creation time)."""

    def setup(rig: R.Rig) -> None:
        store = LocalStore(rig.workdir / SANDBOX_DIR)
        [live] = [t for t in rig.gitlab.service.tokens(name="Bot PAT") if t["active"]]
        created = to_iso(parse_time(live["created_at"]).replace(microsecond=0))  # type: ignore[union-attr]
        Escrow(store, parse_key(key, R.ESCROW_ENV), R.ESCROW_ENV).put(
            "bot-pat", str(live["id"]), Secret(R.mint("glpat-")), created)
        if tamper:
            doc = json.loads(store.escrow_path.read_text())
            entry = doc["entries"]["bot-pat"]
            entry["ciphertext"] = ("A" if entry["ciphertext"][0] != "A" else "B") + entry["ciphertext"][1:]
            store.escrow_path.write_text(json.dumps(doc))

    return setup


FOREIGN_PLAN = {"schema_version": 1, "generated_at": "2026-11-22T12:00:00Z", "inventory_digest": "sha256:" + "0" * 64,
                "observed_digest": "sha256:" + "1" * 64, "targets": [], "tokens": [], "findings": []}
PLAN_NOTE = ("ci", "plan-note", "--plan", "saved-plan.json", "--project", "support/sync", "--mr", "1",
             "--token-env", R.GL_ENV)


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)

    return edit


def ledger(doc: Any) -> dict[str, str]:
    return {str(SANDBOX_DIR / "ledger.json"): doc if isinstance(doc, str | bytes) else json.dumps(doc)}


def escrow(doc: Any) -> dict[str, str]:
    return {str(SANDBOX_DIR / "escrow.json"): doc if isinstance(doc, str | bytes) else json.dumps(doc)}


def saved_plan(doc: Any) -> dict[str, str | bytes]:
    return {"saved-plan.json": doc if isinstance(doc, str | bytes) else json.dumps(doc)}


def fault(server: str, **rule: Any) -> Callable[[R.Rig], None]:
    def setup(rig: R.Rig) -> None:
        getattr(rig, server).faults.configure(rules=[FaultRule(**rule)], seed=1)

    return setup


GOOD_RECORD = {"consumer": "x", "token": "sync-trigger", "token_id": "1", "token_created_at": "2026-01-01T00:00:00Z",
               "fingerprint": "sha256:" + "0" * 64, "delivered_at": "2026-01-02T00:00:00Z", "verified": True}
ZD_WEBHOOK = "webhook: Ticket sync trigger"
GL_HOOK_CONSUMER = """      - kind: gitlab_webhook
        provider: gl
        project: support/sync
        hook: {url}
        mode: {mode}
        secret: {secret}
"""
ZD_WEBHOOK_CONSUMER = """      - kind: zendesk_webhook
        provider: zd
        webhook: Ticket sync trigger
        authentication: {type: bearer_token}
"""

CASES = [
    # --- options ---------------------------------------------------------------------------
    Case("now-not-a-date", ("plan", "--sandbox", "--now", "garbage"), ("--now", "'garbage'", "not an ISO date")),
    Case("now-impossible-date", ("plan", "--sandbox", "--now", "2026-13-45"), ("--now", "'2026-13-45'")),
    Case("now-env-bad", ("plan", "--sandbox"), ("RECONCILE_NOW", "'yesterday'"), env={"RECONCILE_NOW": "yesterday"}),
    Case("check-now-bad", ("check", "--sandbox", "--now", "soon"), ("--now", "'soon'")),
    Case("target-unknown", (*PLAN, "--target", "nope"), ("--target", "no token named nope", "inventory")),
    Case("target-one-of-two-unknown", (*PLAN, "--target", "sync-trigger", "--target", "ghost"),
         ("--target", "ghost")),
    Case("within-bad-unit", (*CHECK, "--within", "3x"), ("--within", "'3x'", "not a duration")),
    Case("within-no-unit", (*CHECK, "--within", "21"), ("--within", "'21'")),
    Case("within-negative", (*CHECK, "--within", "-5d"), ("--within", "'-5d'")),
    Case("format-unknown", (*PLAN, "--format", "yaml"), ("--format", "'yaml'")),
    Case("check-format-unknown", (*CHECK, "--format", "html"), ("--format", "'html'")),
    Case("unknown-option", (*PLAN, "--colour"), ("--colour",)),
    Case("inventory-missing", (*PLAN, "--inventory", "nowhere"), ("nowhere",)),
    Case("inventory-empty-dir", (*PLAN, "--inventory", "empty"), ("empty",), files={"empty": None}),
    Case("sandbox-seed-missing", ("plan", "--sandbox", "--sandbox-seed", "noseed.yaml"), ("noseed.yaml",),
         env={"RECONCILE_SANDBOX_GITLAB_URL": None, "RECONCILE_SANDBOX_ZENDESK_NETLOC": None}),
    Case("sandbox-seed-bad-yaml", ("plan", "--sandbox", "--sandbox-seed", "seed.yaml"), ("seed.yaml", "YAML"),
         env={"RECONCILE_SANDBOX_GITLAB_URL": None, "RECONCILE_SANDBOX_ZENDESK_NETLOC": None},
         files={"seed.yaml": "gitlab: [unclosed\n"}),
    Case("sandbox-seed-unknown-key", ("plan", "--sandbox", "--sandbox-seed", "seed.yaml"), ("seed.yaml", "jira"),
         env={"RECONCILE_SANDBOX_GITLAB_URL": None, "RECONCILE_SANDBOX_ZENDESK_NETLOC": None},
         files={"seed.yaml": "jira: {}\n"}),
    Case("record-dir-under-a-file", (*PLAN, "--record", "notes.txt/recordings"), ("--record", "notes.txt/recordings"),
         files={"notes.txt": "not a directory"}),
    # --- environment -----------------------------------------------------------------------
    Case("gitlab-credential-missing", PLAN, ("missing credential", R.GL_ENV, "provider gl"), env={R.GL_ENV: None}),
    Case("zendesk-credential-missing", PLAN, ("missing credential", R.ZD_ENV, "provider zd"), env={R.ZD_ENV: None}),
    Case("both-credentials-missing", PLAN, (R.GL_ENV, R.ZD_ENV), env={R.GL_ENV: None, R.ZD_ENV: None}),
    Case("gitlab-credential-empty", PLAN, ("missing credential", R.GL_ENV), env={R.GL_ENV: ""}),
    Case("check-credential-missing", CHECK, (R.ZD_ENV,), env={R.ZD_ENV: None}),
    Case("escrow-key-short", PLAN, (R.ESCROW_ENV, "not a valid escrow key"), env={R.ESCROW_ENV: "short"}),
    Case("escrow-key-bad-characters", PLAN, (R.ESCROW_ENV, "not a valid escrow key"),
         env={R.ESCROW_ENV: "!" * 44}),
    Case("escrow-key-too-long", PLAN, (R.ESCROW_ENV, "not a valid escrow key"), env={R.ESCROW_ENV: "A" * 88}),
    # --- providers -------------------------------------------------------------------------
    Case("gitlab-unreachable", PLAN, ("GitLab provider gl", "cannot be reached", R.GL_ENV),
         env={"RECONCILE_SANDBOX_GITLAB_URL": "http://127.0.0.1:9"}),
    Case("zendesk-unreachable", PLAN, ("Zendesk provider zd", "cannot be reached", R.ZD_ENV),
         env={"RECONCILE_SANDBOX_ZENDESK_NETLOC": "127.0.0.1:9"}),
    Case("gitlab-credential-unknown", PLAN, ("GitLab provider gl", "refused the credential", R.GL_ENV, "401"),
         env={R.GL_ENV: R.mint("glpat-")}),
    Case("gitlab-credential-expired", PLAN, ("GitLab provider gl", "refused the credential", R.GL_ENV),
         env={R.GL_ENV: R.EXPIRED}),
    Case("zendesk-credential-unknown", PLAN, ("Zendesk provider zd", "refused the credential", R.ZD_ENV, "401"),
         env={R.ZD_ENV: "ab" * 32}),
    Case("gitlab-credential-without-read-scope", PLAN, ("403",), env={R.GL_ENV: R.ROTATE_ONLY}),
    Case("zendesk-credential-without-webhook-scope", PLAN, ("403",), env={R.ZD_ENV: R.ZD_TICKETS}),
    Case("gitlab-always-5xx", PLAN, ("gl", "500"), setup=fault("gitlab", kind="500", rate=1.0)),
    Case("zendesk-always-5xx", PLAN, ("503",), setup=fault("zendesk", kind="503", rate=1.0)),
    Case("check-gitlab-unreachable", CHECK, ("GitLab provider gl", "cannot be reached"),
         env={"RECONCILE_SANDBOX_GITLAB_URL": "http://127.0.0.1:9"}),
    # --- live objects that do not exist or are ambiguous -----------------------------------
    Case("source-project-missing", PLAN, ("sync-trigger", "could not be observed", "Project Not Found", "tokens.yaml:5"),
         tokens=replace("project: support/sync\n      description", "project: support/nope\n      description")),
    Case("variable-project-missing", PLAN, ("SYNC_TRIGGER_TOKEN", "support/gone"),
         tokens=replace("project: support/other", "project: support/gone")),
    Case("variable-group-missing", PLAN, ("SYNC_TRIGGER_TOKEN", "nogroup"),
         tokens=replace("project: support/other", "group: nogroup")),
    Case("installation-missing", PLAN, ("No Such App",), tokens=replace("app: GitLab Ticket Sync", "app: No Such App")),
    Case("zendesk-webhook-missing", PLAN, ("Nope hook",), tokens=replace(ZD_WEBHOOK, "webhook: Nope hook")),
    Case("zendesk-webhook-id-missing", PLAN, ("01HZZZZZZZZZZZZZZZZZZZZZZZ",),
         tokens=replace(ZD_WEBHOOK, "webhook: 01HZZZZZZZZZZZZZZZZZZZZZZZ")),
    Case("zendesk-webhook-name-matches-two", PLAN, ("2 webhooks are named 'Duplicated'", "by its id", "tokens.yaml:35"),
         tokens=replace(ZD_WEBHOOK, "webhook: Duplicated")),
    Case("apply-zendesk-webhook-name-matches-two", (*APPLY, "--target", "bot-pat"), ("2 webhooks are named 'Duplicated'",),
         tokens=replace(ZD_WEBHOOK, "webhook: Duplicated")),
    Case("gitlab-hook-url-matches-two", PLAN, ("2 hooks match 'https://hooks.example/twice'", "by its id"),
         tokens=replace(ZD_WEBHOOK_CONSUMER, GL_HOOK_CONSUMER.format(url="https://hooks.example/twice", mode="update",
                                                                     secret="token"))),
    Case("gitlab-hook-missing", PLAN, ("https://hooks.example/none",),
         tokens=replace(ZD_WEBHOOK_CONSUMER, GL_HOOK_CONSUMER.format(url="https://hooks.example/none", mode="update",
                                                                     secret="token"))),
    Case("gitlab-hook-recreate-loses-header", PLAN, ("X-Other",),
         tokens=replace(ZD_WEBHOOK_CONSUMER, GL_HOOK_CONSUMER.format(
             url="https://hooks.example/headers", mode="recreate", secret="{custom_header: X-Token}"))),
    Case("personal-token-missing", PLAN, ("Nope PAT", "by hand"), tokens=replace("name: Bot PAT", "name: Nope PAT")),
    Case("zendesk-instance-unknown", PLAN, ("could not be observed", "nosuch.zendesk.com"), providers=replace("subdomain: acme", "subdomain: nosuch")),
    # --- state files -----------------------------------------------------------------------
    Case("ledger-not-json", PLAN, ("ledger.json",), files=ledger("{not json")),
    Case("ledger-truncated", PLAN, ("ledger.json",),
         files=ledger(json.dumps({"version": 1, "records": [GOOD_RECORD]})[:40])),
    Case("ledger-empty-file", PLAN, ("ledger.json",), files=ledger("")),
    Case("ledger-a-list", PLAN, ("ledger.json", "expected a JSON object"), files=ledger([])),
    Case("ledger-other-version", PLAN, ("ledger.json", "version 99"), files=ledger({"version": 99, "records": []})),
    Case("ledger-records-not-a-list", PLAN, ("ledger.json", "'records' must be a list"),
         files=ledger({"version": 1, "records": {}})),
    Case("ledger-record-missing-fields", PLAN, ("ledger.json", "records[0]"),
         files=ledger({"version": 1, "records": [{"consumer": "x"}]})),
    Case("ledger-binary", PLAN, ("ledger.json",), files=ledger(b"\xff\xfe\x00garbage")),
    Case("ledger-is-a-directory", PLAN, ("ledger.json",), files={str(SANDBOX_DIR / "ledger.json"): None}),
    Case("state-show-ledger-corrupt", STATE_SHOW, ("ledger.json",), files=ledger("[1, 2")),
    Case("escrow-not-json", STATE_SHOW, ("escrow.json",), files=escrow("{oops")),
    Case("escrow-truncated", STATE_SHOW, ("escrow.json",), files=escrow('{"version": 1, "entr')),
    Case("escrow-a-list", STATE_SHOW, ("escrow.json", "expected a JSON object"), files=escrow([1])),
    Case("escrow-binary", STATE_SHOW, ("escrow.json",), files=escrow(b"\x00\x01\x02\xff")),
    Case("lock-corrupt", ("state", "unlock", "--state-dir", str(SANDBOX_DIR)), ("lock",),
         files={str(SANDBOX_DIR / "lock"): "{half a lock"}),
    # --- saved plans -----------------------------------------------------------------------
    Case("plan-file-not-json", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan("nope")),
    Case("plan-file-truncated", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan('{"schema_version": 1, "tokens": [{"na')),
    Case("plan-file-empty", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan("")),
    Case("plan-file-a-list", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan([])),
    Case("plan-file-null", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan("null")),
    Case("plan-file-other-version", PLAN_NOTE, ("saved-plan.json", "schema version 99"),
         files=saved_plan({"schema_version": 99, "tokens": []})),
    Case("plan-file-no-tokens", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan({"schema_version": 1, "generated_at": "2026-11-22T12:00:00Z"})),
    Case("plan-file-foreign-token-fields", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan({"schema_version": 1, "generated_at": "2026-11-22T12:00:00Z", "inventory_digest": "x",
                           "observed_digest": "y", "findings": [], "tokens": [{"name": "a", "colour": "red"}]})),
    Case("plan-file-binary", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan(b"\x89PNG\r\n\x1a\n\x00\x00")),
    Case("plan-file-terraform-plan", PLAN_NOTE, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan({"format_version": "1.2", "resource_changes": []})),
    Case("plan-note-outside-ci", ("ci", "plan-note", "--plan", "saved-plan.json"), ("CI_SERVER_URL",)),
    # --- apply ------------------------------------------------------------------------------
    Case("apply-plan-not-json", APPLY_PLAN, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan("{")),
    Case("apply-plan-truncated", APPLY_PLAN, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan(json.dumps(FOREIGN_PLAN)[:60])),
    Case("apply-plan-a-list", APPLY_PLAN, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan([])),
    Case("apply-plan-null", APPLY_PLAN, ("saved-plan.json", "not a saved reconcile plan"), files=saved_plan("null")),
    Case("apply-plan-other-version", APPLY_PLAN, ("saved-plan.json", "schema version 2"),
         files=saved_plan({**FOREIGN_PLAN, "schema_version": 2})),
    Case("apply-plan-foreign-fields", APPLY_PLAN, ("saved-plan.json", "not a saved reconcile plan"),
         files=saved_plan({**FOREIGN_PLAN, "tokens": [{"name": "x", "colour": "red"}]})),
    Case("apply-plan-binary", APPLY_PLAN, ("saved-plan.json",), files=saved_plan(b"\xff\xd8\xff\xe0JFIF")),
    Case("apply-plan-missing", (*APPLY, "no-such-plan.json"), ("no-such-plan.json",)),
    Case("apply-plan-from-another-inventory", APPLY_PLAN, ("stale", "inventory changed"), files=saved_plan(FOREIGN_PLAN)),
    Case("apply-plan-target-mismatch", (*APPLY_PLAN, "--target", "bot-pat"), ("--target", "saved plan"),
         files=saved_plan(FOREIGN_PLAN)),
    Case("apply-without-approval", ("apply", "--sandbox", "--now", R.NOW_TEXT), ("--auto-approve",)),
    Case("apply-in-ci-without-approval", ("apply", "--sandbox", "--now", R.NOW_TEXT), ("CI=true", "--auto-approve"),
         env={"CI": "true"}),
    Case("apply-now-bad", (*APPLY[:3], "--now", "tomorrow"), ("--now", "'tomorrow'")),
    Case("apply-target-unknown", (*APPLY, "--target", "nope"), ("--target", "nope")),
    Case("apply-gitlab-credential-read-only", APPLY, ("403", "bot-pat", "sync-trigger"), env={R.GL_ENV: R.READER}),
    Case("apply-gitlab-credential-missing", APPLY, (R.GL_ENV,), env={R.GL_ENV: None}),
    Case("apply-gitlab-unreachable", APPLY, ("GitLab provider gl", "cannot be reached"),
         env={"RECONCILE_SANDBOX_GITLAB_URL": "http://127.0.0.1:9"}),
    Case("apply-ledger-corrupt", APPLY, ("ledger.json",), files=ledger("{]")),
    Case("apply-escrow-corrupt", APPLY, ("escrow.json",), files=escrow("[[")),
    Case("apply-escrow-key-bad", APPLY, (R.ESCROW_ENV, "not a valid escrow key"), env={R.ESCROW_ENV: "x" * 20}),
    Case("apply-escrow-wrong-key", (*APPLY, "--target", "bot-pat"),
         (R.ESCROW_ENV, "is not the key these values were escrowed with"), setup=escrowed(ESCROW_KEY_A)),
    Case("apply-escrow-tampered", (*APPLY, "--target", "bot-pat"), ("escrowed value of token bot-pat", "tampered"),
         setup=escrowed(ESCROW_KEY_A, tamper=True), env={R.ESCROW_ENV: ESCROW_KEY_A}),
    Case("apply-escrow-but-no-key", (*APPLY, "--target", "bot-pat"), ("no escrow key", R.ESCROW_ENV),
         setup=escrowed(ESCROW_KEY_A), env={R.ESCROW_ENV: None}),
    Case("apply-lock-corrupt", APPLY, ("lock",), files={str(SANDBOX_DIR / "lock"): "{half"}),
    Case("apply-target-after-a-failed-apply", (*APPLY, "--target", "ext"), ("EXT_MISSING",),
         tokens=lambda text: text + EXTERNAL, before=APPLY, env={R.GL_ENV: R.READER}),
    # --- inventory files beyond the corpus -------------------------------------------------
    Case("inventory-not-utf8", PLAN, ("tokens.yaml",), tokens=lambda text: text + "# caf\udce9\n"),
    Case("inventory-tab-indent", PLAN, ("tokens.yaml",), tokens=replace("    description: The bot", "\tdescription: The bot")),
    Case("inventory-dangling-symlink", PLAN, ("more.yaml",), setup=lambda rig: (rig.workdir / "inventory" / "more.yaml")
         .symlink_to(rig.workdir / "gone.yaml")),
]


@pytest.fixture(scope="module")
def shared_rig():
    rig = R.start_rig()
    yield rig
    rig.gitlab.stop()
    rig.zendesk.stop()


@pytest.fixture
def rig(shared_rig, tmp_path, monkeypatch):
    shared_rig.reset()
    shared_rig.workdir = tmp_path
    monkeypatch.chdir(tmp_path)
    return shared_rig


def _write(path: Path, content: str | bytes | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir(exist_ok=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input_gets_a_clear_message_exit_1_and_no_mutation(case: Case, rig: R.Rig, capsys, monkeypatch):
    tokens = case.tokens(R.TOKENS) if case.tokens else R.TOKENS
    providers = case.providers(R.PROVIDERS) if case.providers else R.PROVIDERS
    inventory = rig.write_inventory(providers=providers, tokens="")
    if "\udce9" in tokens:  # not UTF-8 on purpose
        (inventory / "tokens.yaml").write_bytes(tokens.encode("utf-8", "surrogateescape"))
    else:
        (inventory / "tokens.yaml").write_text(tokens)
    for name, content in case.files.items():
        _write(rig.workdir / name, content)
    if case.setup:
        case.setup(rig)
    env = rig.env(**case.env)
    if case.args[:2] == ("ci", "plan-note") and "--project" in case.args:
        env["CI_SERVER_URL"] = rig.gitlab.url
    if case.before:
        R.run(capsys, monkeypatch, env, *case.before)
    code, out, err = R.run(capsys, monkeypatch, env, *case.args)
    said = out + err
    assert "Traceback" not in said
    assert code == 1, f"exit {code}: {said[-600:]}"
    for part in case.expect:
        assert part in said, f"{part!r} not in: {said[-800:]}"
    assert rig.mutations() == [], "a mutating request reached a sandbox"
    # a bad credential or key given in the environment is named, never shown
    shown = [name for name, value in case.env.items()
             if name in (R.GL_ENV, R.ZD_ENV, R.ESCROW_ENV) and value and len(value) >= 8 and value in said]
    assert shown == [], f"the value of {shown} appeared in the output"


def test_a_missing_external_value_is_not_bad_input_the_token_waits(rig: R.Rig, capsys, monkeypatch):
    """Once a case of the table (exit 1): an unattended apply cannot do better than leave the
    token for a person, so it says so on a line of its own, changes nothing of it and exits 0."""
    inventory = rig.write_inventory(providers=R.PROVIDERS, tokens="")
    (inventory / "tokens.yaml").write_text(R.TOKENS + EXTERNAL)
    code, out, err = R.run(capsys, monkeypatch, rig.env(), *APPLY, "--target", "ext")
    said = out + err
    assert "Traceback" not in said
    assert code == 0, f"exit {code}: {said[-600:]}"
    assert "Waiting for a person: ext: $EXT_MISSING is not set" in out, said[-800:]
    assert "set EXT_MISSING as a masked, protected CI/CD variable" in out and "1 waiting for a person" in out
    assert rig.mutations() == [], "a mutating request reached a sandbox"


def test_the_table_has_at_least_sixty_cases():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
