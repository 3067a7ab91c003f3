"""A small world for the reliability tests: a GitLab and a Zendesk sandbox seeded with a few
tokens and consumers, an inventory that matches them, and a way to run `reconcile` against them
as `--sandbox` does with a served sandbox (environment variables name the servers; the state is
the local store under `.reconcile/sandbox/` of the working directory).

Values are minted per process (the leak guard knows them through `known_secrets()`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.core import Clock, SandboxServer
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.zendesk import serve_zendesk

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
NOW_TEXT = "2026-11-22T12:00:00Z"
GL_ENV, ZD_ENV, ESCROW_ENV = "RIG_GITLAB_TOKEN", "RIG_ZENDESK_TOKEN", "RIG_ESCROW_KEY"


def mint(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


ADMIN = mint("glpat-")
READER = mint("glpat-")  # read_api only: may read, may not write
ROTATE_ONLY = mint("glpat-")  # self_rotate only: may not even read
EXPIRED = mint("glpat-")
ZD_ADMIN = secrets.token_hex(32)
ZD_READER = secrets.token_hex(32)
ZD_TICKETS = secrets.token_hex(32)  # tickets:read only: may not read webhooks or apps


def gitlab_seed() -> dict[str, Any]:
    return {
        "users": [
            {"username": "reconcile-bot", "tokens": [
                {"name": "reconcile", "scopes": ["api"], "value": ADMIN, "expires_at": "now+300d"},
                {"name": "reader", "scopes": ["read_api"], "value": READER, "expires_at": "now+300d"},
                {"name": "rotator", "scopes": ["self_rotate"], "value": ROTATE_ONLY, "expires_at": "now+300d"},
                {"name": "expired", "scopes": ["api"], "value": EXPIRED, "expires_at": "now-1d"},
                {"name": "Bot PAT", "scopes": ["api"], "value": mint("glpat-"), "created_at": "now-200d",
                 "expires_at": "now+5d"},
            ]},
        ],
        "groups": [{"full_path": "support", "members": {"reconcile-bot": 50}}],
        "projects": [
            {"path_with_namespace": "support/sync", "id": 4711, "members": {"reconcile-bot": 50}},
            {"path_with_namespace": "support/other", "id": 4712, "members": {"reconcile-bot": 50}},
        ],
        "triggers": [{"project": "support/sync", "owner": "reconcile-bot", "description": "Ticket sync",
                      "value": mint("glptt-"), "created_at": "now-100d"}],
        "variables": [
            {"project": "support/other", "key": "SYNC_TRIGGER_TOKEN", "value": mint("glptt-"), "masked": True},
            {"project": "support/sync", "key": "BOT_TOKEN", "value": mint("glpat-"), "masked": True},
        ],
        "hooks": [
            {"project": "support/sync", "url": "https://hooks.example/deploy", "token": mint("whs-"),
             "push_events": True},
            {"project": "support/sync", "url": "https://hooks.example/twice", "token": mint("whs-")},
            {"project": "support/sync", "url": "https://hooks.example/twice", "token": mint("whs-")},
            {"project": "support/sync", "url": "https://hooks.example/headers",
             "custom_headers": {"X-Token": mint("hdr-"), "X-Other": mint("hdr-")}},
        ],
    }


def zendesk_seed() -> dict[str, Any]:
    return {"instances": {"acme": {
        "users": [{"email": "admin@acme.example", "role": "admin"}],
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}],
        "oauth_tokens": [{"client": "reconcile", "value": ZD_ADMIN, "scopes": ["read", "write"]},
                         {"client": "reconcile", "value": ZD_READER, "scopes": ["read"]},
                         {"client": "reconcile", "value": ZD_TICKETS, "scopes": ["tickets:read"]}],
        "apps": [{"id": 9001, "name": "GitLab Ticket Sync",
                  "parameters": [{"name": "pipeline_trigger_token", "secure": True}, {"name": "project_id"}]}],
        "installations": [{"id": 7001, "app": "GitLab Ticket Sync",
                           "settings": {"name": "GitLab Ticket Sync", "project_id": "4711",
                                        "pipeline_trigger_token": mint("glptt-")}}],
        "webhooks": [
            {"name": "Ticket sync trigger", "endpoint": "https://gitlab.example/api/v4/projects/4711/trigger/pipeline",
             "authentication": {"type": "bearer_token", "data": {"token": mint()}, "add_position": "header"}},
            {"name": "Duplicated", "endpoint": "https://a.example/1"},
            {"name": "Duplicated", "endpoint": "https://a.example/2"},
        ],
    }}}


PROVIDERS = f"""\
providers:
  gl:
    kind: gitlab
    url: https://gitlab.example
    auth: {{token_env: {GL_ENV}}}
  zd:
    kind: zendesk
    subdomain: acme
    title: Zendesk Acme
    auth: {{oauth_token_env: {ZD_ENV}}}
state:
  backend: local
  escrow_key_env: {ESCROW_ENV}
"""

TOKENS = """\
tokens:
  sync-trigger:
    description: Lets Zendesk start the sync pipeline
    owner: "@support"
    source:
      kind: gitlab_pipeline_trigger
      provider: gl
      project: support/sync
      description: Ticket sync
    rotation: {max_age: 90d}
    consumers:
      - kind: gitlab_ci_variable
        provider: gl
        project: support/other
        key: SYNC_TRIGGER_TOKEN
        masked: true
      - kind: zendesk_app_setting
        provider: zd
        app: GitLab Ticket Sync
        setting: pipeline_trigger_token
  bot-pat:
    description: The bot's own token
    owner: "@support"
    source:
      kind: gitlab_personal_access_token
      provider: gl
      name: Bot PAT
      scopes: [api]
    consumers:
      - kind: gitlab_ci_variable
        provider: gl
        project: support/sync
        key: BOT_TOKEN
        masked: true
      - kind: zendesk_webhook
        provider: zd
        webhook: Ticket sync trigger
        authentication: {type: bearer_token}
"""


@dataclass
class Rig:
    """Both sandboxes (shared by a module, re-seeded per test) and a working directory."""

    gitlab: SandboxServer
    zendesk: SandboxServer
    clock: Clock
    workdir: Path = field(default_factory=Path)

    def reset(self) -> None:
        self.clock.set(NOW)
        self.gitlab.service.reset(gitlab_seed())
        with self.zendesk.service.lock:
            self.zendesk.service.load_state({"instances": {}})
            self.zendesk.service.seed(zendesk_seed())
        for server in (self.gitlab, self.zendesk):
            server.faults.clear()
            server.log.clear()

    def env(self, **overrides: str | None) -> dict[str, str]:
        from reconciler.state import generate_key

        env = {GL_ENV: ADMIN, ZD_ENV: ZD_ADMIN, ESCROW_ENV: generate_key(),
               SANDBOX_ENV_GITLAB: self.gitlab.url, SANDBOX_ENV_ZENDESK: f"127.0.0.1:{self.zendesk.port}"}
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def mutations(self) -> list[Any]:
        return self.gitlab.log.mutations() + self.zendesk.log.mutations()

    def write_inventory(self, providers: str = PROVIDERS, tokens: str = TOKENS, extra: Mapping[str, str] = ()) -> Path:
        inv = self.workdir / "inventory"
        inv.mkdir(exist_ok=True)
        (inv / "providers.yaml").write_text(providers)
        (inv / "tokens.yaml").write_text(tokens)
        for name, text in dict(extra).items():
            (inv / name).write_text(text)
        return inv


def start_rig() -> Rig:
    clock = Clock(NOW)
    return Rig(gitlab=serve_gitlab(gitlab_seed(), clock), zendesk=serve_zendesk(zendesk_seed(), clock), clock=clock)


def run(capsys, monkeypatch, env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    """`reconcile ARGS` in-process with exactly `env` for the variables the rig uses."""
    for name in (GL_ENV, ZD_ENV, ESCROW_ENV, SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "RECONCILE_NOW",
                 "ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
