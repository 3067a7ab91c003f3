"""Small seeded worlds for the apply tests: one source kind and some consumer kinds, each consumer
holding the source's current (old) value, every credential minted here at random (never written
to a file the leak guard scans), served by the real GitLab and Zendesk sandboxes on loopback.

`Scenario.start()` -> `Live` (the running world and its environment); `Live.apply()` /
`Live.plan()` run the engine through the real clients; `Live.held(consumer)` reads what a
consumer holds through the sandboxes' test hooks, and `Live.works(value)` /
`Live.dead(value)` prove a value authenticates (or no longer does) over HTTP.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from reconciler.apply import ApplyResult, apply_plan
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, open_session
from reconciler.pipeline import observe_and_plan
from reconciler.plan import Plan
from reconciler.state import generate_key
from reconciler_sandbox.core import Clock, SandboxServer
from reconciler_sandbox.gitlab import GitLabService
from reconciler_sandbox.zendesk import ZendeskService

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
NOW_TEXT = "2026-11-22T12:00:00Z"
SUB = "acme"
ZD_HOST = f"{SUB}.zendesk.com"

SOURCES = ("pat", "project_token", "group_token", "trigger", "oauth_token", "client_secret", "external")
# SOURCE_YAML also has "service_account" (a group service account's token, renewed by overlap)
# and "service_account_in_place" (the same, rotated): outside SOURCES, so the every-source matrices and their recorded cassettes stay as they are; the
# crash points exercise it.
CONSUMERS = ("variable", "hidden_variable", "hook", "hook_recreate", "app_setting", "zd_webhook", "zd_endpoint")

# rotate_before 21d, max_age 90d: every seeded source (created 100 days ago) is due
HEADER = """\
providers:
  gl: {{kind: gitlab, url: https://gitlab.example.com, auth: {{token_env: GL_TOKEN}}}}
  zd: {{kind: zendesk, subdomain: acme, auth: {{oauth_token_env: ZD_TOKEN}}}}
defaults:
  rotation: {{rotate_before: 21d, lifetime: 180d, max_age: 90d}}
tokens:
  subject:
    description: the token under test
    owner: "@ops"
{source}
    consumers:
{consumers}
"""

SOURCE_YAML = {
    "pat": "    source: {kind: gitlab_personal_access_token, provider: gl, name: Sync PAT, scopes: [api]}",
    "project_token": "    source: {kind: gitlab_project_access_token, provider: gl, project: acme/src, name: Deploy,"
                     " scopes: [api], access_level: 40}",
    "group_token": "    source: {kind: gitlab_group_access_token, provider: gl, group: acme, name: Group bot, scopes: [api],"
                   " access_level: 30, strategy: overlap}",
    "trigger": "    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/src, description: Sync trigger}",
    "service_account": "    source: {kind: gitlab_service_account_token, provider: gl, group: acme, account: sync-bot,"
                       " name: Sync SA, scopes: [api]}",
    "service_account_in_place": "    source: {kind: gitlab_service_account_token, provider: gl, group: acme,"
                                " account: sync-bot, name: Sync SA, scopes: [api], strategy: in_place}",
    "oauth_token": "    source: {kind: zendesk_oauth_token, provider: zd, client: sync, scopes: [read]}",
    "client_secret": "    source: {kind: zendesk_oauth_client_secret, provider: zd, client: portal}",
    # a credential pair: its consumers take both parts (PAIR_TEMPLATE)
    "oauth_client": "    source: {kind: zendesk_oauth_client, provider: zd, identifier: portal, scopes: [read]}",
    # nothing live to age: due because no consumer can be verified, which the rotation must say
    "external": "    source: {kind: external, value_env: EXT_VALUE}\n    rotation: {on_unverifiable: rotate}",
}

CONSUMER_YAML = {
    "variable": "      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: TOKEN, masked: true}",
    "hidden_variable": "      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: HIDDEN, masked: true,"
                       " hidden: true}",
    "hook": "      - {kind: gitlab_webhook, provider: gl, project: acme/app, hook: 'https://hooks.example/deploy',"
            " mode: update}",
    "hook_recreate": "      - {kind: gitlab_webhook, provider: gl, project: acme/app, hook: 'https://hooks.example/recreate',"
                     " mode: recreate, secret: {custom_header: X-Token}, custom_headers: {X-Source: app}}",
    "app_setting": "      - {kind: zendesk_app_setting, provider: zd, app: Sync App, setting: token}",
    "zd_webhook": "      - {kind: zendesk_webhook, provider: zd, webhook: Notify, authentication: {type: bearer_token}}",
    "zd_endpoint": "      - {kind: zendesk_webhook, provider: zd, webhook: Trigger call,"
                   " endpoint: 'https://hooks.example/trigger?token=${token}'}",
}

PAIR_TEMPLATE = "${token.identifier}:${token.secret}"  # what a consumer of a credential pair holds
PAIR_SOURCES = ("oauth_client",)

GITLAB_PREFIX = {"pat": "glpat-", "project_token": "glpat-", "group_token": "glpat-", "trigger": "glptt-",
                 "service_account": "glpat-", "service_account_in_place": "glpat-"}


# `chain`: a pipeline trigger created with the subject's value (a project access token's bot owns
# it), its value in a CI/CD variable; "fresh": the trigger is not due; "aged": it is due too
CHAIN_YAML = """\
  bot-trigger:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/src, description: Bot trigger,
             created_with: subject}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: TRIGGER, masked: true}
"""
BOT_USERNAME = "project_1_bot_deploy"


def mint(prefix: str = "") -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Scenario:
    source: str
    consumers: tuple[str, ...]
    escrow_key: bool = True
    # a trigger created with the subject (CHAIN_YAML): "fresh" (not due), "aged" (due), "person"
    # (not due, but owned by the provider credential's user: the bot must take it over)
    chain: str | None = None
    crowd: int = 0  # other webhooks in the instance and variables in acme/app: lists of several pages

    @property
    def id(self) -> str:
        return f"{self.source}-{'+'.join(self.consumers)}" + (f"-chain-{self.chain}" if self.chain else "")

    def inventory(self) -> str:
        lines = [CONSUMER_YAML[c] for c in self.consumers]
        if self.source in PAIR_SOURCES:
            lines = [line[:-1] + f", value: '{PAIR_TEMPLATE}'}}" for line in lines]
        text = HEADER.format(source=SOURCE_YAML[self.source], consumers="\n".join(lines))
        return text + (CHAIN_YAML if self.chain else "")

    def held_value(self, old: str) -> str:
        """What a consumer holds of the source's value `old` before any apply."""
        return f"portal:{old}" if self.source in PAIR_SOURCES else old

    def seeds(self, old: str, cred: str, zcred: str) -> tuple[dict[str, Any], dict[str, Any]]:
        bot_tokens = [{"name": "reconcile", "scopes": ["api"], "value": cred, "created_at": "now-10d",
                       "expires_at": "now+300d"}]
        gl: dict[str, Any] = {
            "users": [{"username": "bot", "tokens": bot_tokens}],
            "projects": [{"path_with_namespace": "acme/src"}, {"path_with_namespace": "acme/app"}],
            "access_tokens": [], "triggers": [], "variables": [], "hooks": [],
        }
        inst: dict[str, Any] = {
            "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}],
            "oauth_tokens": [{"client": "reconcile", "scopes": ["read", "write"], "value": zcred}],
            "apps": [], "installations": [], "webhooks": [],
        }
        aged = {"created_at": "now-100d"}
        match self.source:
            case "pat":
                bot_tokens.append({"name": "Sync PAT", "scopes": ["api"], "value": old, "expires_at": "now+200d", **aged})
            case "project_token":
                gl["access_tokens"].append({"project": "acme/src", "name": "Deploy", "scopes": ["api"],
                                            "access_level": 40, "value": old, "expires_at": "now+200d", **aged,
                                            "bot": {"username": BOT_USERNAME}})
            case "group_token":
                gl["access_tokens"].append({"group": "acme", "name": "Group bot", "scopes": ["api"], "access_level": 30,
                                            "value": old, "expires_at": "now+200d", **aged})
            case "service_account" | "service_account_in_place":
                gl["groups"] = [{"full_path": "acme", "members": {"bot": 50}}]  # an Owner manages its accounts
                gl["service_accounts"] = [{"group": "acme", "username": "sync-bot", "tokens": [
                    {"name": "Sync SA", "scopes": ["api"], "value": old, "expires_at": "now+200d", **aged}]}]
            case "trigger":
                gl["triggers"].append({"project": "acme/src", "owner": "bot", "description": "Sync trigger",
                                       "value": old, **aged})
            case "oauth_token":
                inst["oauth_clients"].append({"identifier": "sync", "name": "Sync"})
                inst["oauth_tokens"].append({"client": "sync", "scopes": ["read"], "value": old, **aged})
            case "client_secret":
                inst["oauth_clients"].append({"identifier": "portal", "name": "Portal", "secret": old, **aged})
            case "oauth_client":
                inst["oauth_clients"].append({"identifier": "portal", "name": "Portal", "secret": old,
                                              "company": "Acme", "redirect_uri": ["https://portal.example/cb"], **aged})
        old = self.held_value(old)
        for c in self.consumers:
            match c:
                case "variable":
                    gl["variables"].append({"project": "acme/app", "key": "TOKEN", "value": old, "masked": True})
                case "hidden_variable":
                    gl["variables"].append({"project": "acme/app", "key": "HIDDEN", "value": old, "masked": True,
                                            "hidden": True})
                case "hook":
                    gl["hooks"].append({"project": "acme/app", "url": "https://hooks.example/deploy",
                                        "name": "Deploy hook", "push_events": True, "token": old})
                case "hook_recreate":
                    gl["hooks"].append({"project": "acme/app", "url": "https://hooks.example/recreate",
                                        "name": "Recreate hook", "issues_events": True,
                                        "custom_headers": {"X-Token": old, "X-Source": "app"}})
                case "app_setting":
                    inst["apps"].append({"id": 9001, "name": "Sync App",
                                         "parameters": [{"name": "token", "secure": True}, {"name": "region"}]})
                    inst["installations"].append({"id": 7001, "app": "Sync App",
                                                  "settings": {"name": "Sync App", "token": old, "region": "eu"}})
                case "zd_webhook":
                    inst["webhooks"].append({"name": "Notify", "endpoint": "https://hooks.example/notify",
                                             "http_method": "POST", "request_format": "json",
                                             "authentication": {"type": "bearer_token", "data": {"token": old},
                                                                "add_position": "header"}})
                case "zd_endpoint":
                    inst["webhooks"].append({"name": "Trigger call", "endpoint": f"https://hooks.example/trigger?token={old}",
                                             "http_method": "POST", "request_format": "json"})
        for i in range(self.crowd):
            inst["webhooks"].append({"name": f"Other {i}", "endpoint": f"https://hooks.example/other/{i}",
                                     "http_method": "POST", "request_format": "json"})
            gl["variables"].append({"project": "acme/app", "key": f"OTHER_{i}", "value": f"plain-{i}"})
        return gl, {"instances": {SUB: inst}}

    def chained(self, gl: dict[str, Any], trigger: str) -> None:
        """The bot's trigger and the variable holding its value."""
        created = "now-100d" if self.chain == "aged" else "now-10d"
        owner = "bot" if self.chain == "person" else BOT_USERNAME  # "bot" is the provider credential's user
        gl["triggers"].append({"project": "acme/src", "owner": owner, "description": "Bot trigger",
                               "value": trigger, "created_at": created})
        gl["variables"].append({"project": "acme/app", "key": "TRIGGER", "value": trigger, "masked": True})

    def start(self, directory: Path) -> Live:
        old = mint(GITLAB_PREFIX.get(self.source, ""))
        cred, zcred = mint("glpat-"), mint()
        gl_seed, zd_seed = self.seeds(old, cred, zcred)
        trigger = mint("glptt-")
        if self.chain:
            self.chained(gl_seed, trigger)
        clock = Clock(NOW)
        gitlab_service, zendesk_service = GitLabService(clock), ZendeskService(clock)
        gitlab_service.seed(gl_seed)
        zendesk_service.seed(zd_seed)
        gitlab = SandboxServer(gitlab_service).start()
        zendesk = SandboxServer(zendesk_service).start()
        inv = directory / "inventory"
        inv.mkdir(parents=True, exist_ok=True)
        (inv / "inventory.yaml").write_text(self.inventory())
        env = {"GL_TOKEN": cred, "ZD_TOKEN": zcred, SANDBOX_ENV_GITLAB: gitlab.url,
               SANDBOX_ENV_ZENDESK: f"127.0.0.1:{zendesk.port}"}
        if self.escrow_key:
            env["RECONCILE_ESCROW_KEY"] = generate_key()
        external = mint("ext-") if self.source == "external" else None
        if external:
            env["EXT_VALUE"] = external
        return Live(self, gitlab, zendesk, inv, env, old, external, trigger)


@dataclass
class Live:
    scenario: Scenario
    gitlab: SandboxServer
    zendesk: SandboxServer
    inventory: Path
    env: dict[str, str]
    old: str
    external: str | None
    trigger: str = ""  # the chained trigger's seeded value
    results: list[ApplyResult] = field(default_factory=list)
    now: str = NOW_TEXT  # the time the engine runs at (the sandbox clock starts at NOW)

    def stop(self) -> None:
        stop_soon(self.gitlab, self.zendesk)


    # -- the engine ----------------------------------------------------------------------------

    def apply(self, **kwargs: Any) -> ApplyResult:
        with open_session(self.inventory, sandbox=True, now=self.now, env=self.env) as session:
            result = apply_plan(session, **kwargs)
        self.results.append(result)
        return result

    def plan(self) -> Plan:
        with open_session(self.inventory, sandbox=True, now=self.now, env=self.env) as session:
            return observe_and_plan(session)[1]

    def after_quiet(self) -> ApplyResult | None:
        """When an apply kept an old token until quiet (a use of it after delivery could not be
        excluded: apply's own identification of a held value is a use), two days pass unused on
        the sandbox clock and the engine's, and apply runs again: it revokes the token. None when
        nothing was kept."""
        if not any(r.kept for r in self.results):
            return None
        later = datetime.fromisoformat(self.now.replace("Z", "+00:00")) + timedelta(days=2)
        self.gitlab.service.clock.advance(timedelta(days=2))  # the clock both sandboxes share
        self.now = later.strftime("%Y-%m-%dT%H:%M:%SZ")
        result = self.apply()
        assert result.ok and result.revoked and not result.kept, (result.failed, result.kept)
        return result

    def mutations(self) -> list[Any]:
        return self.gitlab.log.mutations() + self.zendesk.log.mutations()

    def faults(self) -> list[Any]:
        return [self.gitlab.faults, self.zendesk.faults]

    # -- what the consumers hold (test hooks; values never printed) -----------------------------

    @property
    def gl(self) -> Any:
        return self.gitlab.service

    @property
    def zd(self) -> Any:
        return self.zendesk.service

    def hook(self, url: str) -> dict[str, Any] | None:
        found = [h for h in self.gl.table("hooks") if h["url"] == url]
        assert len(found) <= 1, f"{len(found)} hooks with the URL {url}"
        return found[0] if found else None

    def webhook_id(self, name: str) -> str:
        return next(w["id"] for w in self.zd.instance(SUB).webhooks if w["name"] == name)

    def held(self, consumer: str) -> str | None:
        match consumer:
            case "variable":
                return self.gl.variable_value("project", "acme/app", "TOKEN")
            case "hidden_variable":
                return self.gl.variable_value("project", "acme/app", "HIDDEN")
            case "hook":
                hook = self.hook("https://hooks.example/deploy")
                return None if hook is None else self.gl.hook_secrets(hook["id"])["token"]
            case "hook_recreate":
                hook = self.hook("https://hooks.example/recreate")
                if hook is None:
                    return None
                held = self.gl.hook_secrets(hook["id"])
                assert held["custom_headers"].get("X-Source") == "app", "the declared header was lost"
                return held["custom_headers"].get("X-Token")
            case "app_setting":
                settings = self.zd.instance(SUB).find(self.zd.instance(SUB).installations, 7001)["settings"]
                assert settings.get("region") == "eu", "another setting changed"
                return self.zd.secure_setting(SUB, 7001, "token")
            case "zd_webhook":
                return self.zd.webhook_credential(SUB, self.webhook_id("Notify"))["data"]["token"]
            case "zd_endpoint":
                endpoint = self.zd.webhook_credential(SUB, self.webhook_id("Trigger call"))["endpoint"]
                prefix = "https://hooks.example/trigger?token="
                assert endpoint.startswith(prefix)
                return endpoint[len(prefix):]
        raise KeyError(consumer)

    # -- does a value work? (over HTTP where the source is an API credential) --------------------

    # -- the chained trigger ------------------------------------------------------------------

    def bot_triggers(self) -> list[dict[str, Any]]:
        """The live triggers described "Bot trigger", as the sandbox keeps them."""
        return [t for t in self.gl.table("triggers") if t["description"] == "Bot trigger"]

    def bot_id(self) -> int:
        return next(u["id"] for u in self.gl.table("users") if u["username"] == BOT_USERNAME)

    def held_trigger(self) -> str | None:
        """What the chained trigger's variable holds."""
        return self.gl.variable_value("project", "acme/app", "TRIGGER")

    def trigger_works(self, value: str | None) -> bool:
        """`value` runs a pipeline in acme/src (the trigger API, no other credential)."""
        answer = requests.post(f"{self.gitlab.url}/api/v4/projects/acme%2Fsrc/trigger/pipeline",
                               data={"token": value or "", "ref": "main"}, timeout=5)
        return answer.status_code == 201

    def works(self, value: str) -> bool:
        source = self.scenario.source
        if source in ("pat", "project_token", "group_token", "service_account", "service_account_in_place"):
            answer = requests.get(f"{self.gitlab.url}/api/v4/personal_access_tokens/self",
                                  headers={"PRIVATE-TOKEN": value}, timeout=5)
            return answer.status_code == 200
        if source == "trigger":
            answer = requests.post(f"{self.gitlab.url}/api/v4/projects/acme%2Fsrc/trigger/pipeline",
                                   data={"token": value, "ref": "main"}, timeout=5)
            return answer.status_code == 201
        if source == "oauth_token":
            answer = requests.get(f"http://127.0.0.1:{self.zendesk.port}/api/v2/oauth/tokens/current.json",
                                  headers={"Authorization": f"Bearer {value}", "Host": ZD_HOST}, timeout=5)
            return answer.status_code == 200
        if source == "client_secret":
            return self.zd.client_secret_valid(SUB, "portal", value)
        if source == "oauth_client":  # the pair as a consumer holds it, or the first client's secret
            identifier, _, secret = value.rpartition(":")
            return self.zd.client_secret_valid(SUB, identifier or "portal", secret)
        return value == self.external

    def live_credentials(self) -> int:
        """How many live credentials the source's name now has (1 after convergence: no orphan)."""
        match self.scenario.source:
            case "pat":
                return len([t for t in self.gl.tokens(name="Sync PAT") if t["active"]])
            case "project_token":
                return len([t for t in self.gl.tokens(name="Deploy") if t["active"]])
            case "group_token":
                return len([t for t in self.gl.tokens(name="Group bot") if t["active"]])
            case "service_account" | "service_account_in_place":
                return len([t for t in self.gl.tokens(name="Sync SA") if t["active"]])
            case "trigger":
                return len([t for t in self.gl.table("triggers") if t["description"] == "Sync trigger"])
            case "oauth_token":
                inst = self.zd.instance(SUB)
                client = inst.client("sync")
                return len([t for t in inst.oauth_tokens if t["client_id"] == client["id"]
                            and self.zd.token_by_value(SUB, t["token"])["active"]])
            case "oauth_client":
                return len([c for c in self.zd.instance(SUB).oauth_clients if c["identifier"].startswith("portal")])
        return 1

    def rotations(self) -> int:
        """Mint/rotate requests the servers applied or answered (a lost answer counts)."""
        paths = {
            "pat": r"/personal_access_tokens/\d+/rotate$",
            "project_token": r"/access_tokens/\d+/rotate$",
            "group_token": r"/groups/[^/]+/access_tokens$",
            "service_account": r"/service_accounts/\d+/personal_access_tokens$",
            "service_account_in_place": r"/service_accounts/\d+/personal_access_tokens/\d+/rotate$",
            "trigger": r"/triggers$",
            "oauth_token": r"/api/v2/oauth/tokens(\.json)?$",
            "client_secret": r"/generate_secret(\.json)?$",
            "oauth_client": r"/api/v2/oauth/clients(\.json)?$",
        }
        import re

        pattern = paths.get(self.scenario.source)
        if pattern is None:
            return 0
        entries = self.gitlab.log.snapshot() + self.zendesk.log.snapshot()
        return len([e for e in entries if e.method in ("POST", "PUT") and re.search(pattern, e.path)])


def stop_soon(*servers: Any) -> None:
    """Stop servers in the background: a shutdown waits out the server's poll interval (0.5 s),
    which tests need not wait for."""
    import threading

    for server in servers:
        threading.Thread(target=server.stop, daemon=True).start()
