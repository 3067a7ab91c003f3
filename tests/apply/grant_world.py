"""A world for the refreshable OAuth grant (`zendesk_oauth_grant`): a Zendesk client whose tokens
expire after 30 minutes (a client created after 2026-04-30 gets the default lifetimes), a grant
of it whose refresh token a person supplies in $SYNC_REFRESH, and two consumers of the access
token (a GitLab CI/CD variable and a Zendesk webhook's bearer token), served by the real sandboxes
on loopback with one clock. Every credential is minted here at random."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.observed import to_iso
from reconciler.state import generate_key
from reconciler_sandbox.core import Clock, SandboxServer
from reconciler_sandbox.gitlab import GitLabService
from reconciler_sandbox.zendesk import ZendeskService

START = datetime(2026, 11, 22, 12, tzinfo=UTC)
SUB = "acme"

INVENTORY = """\
providers:
  gl: {{kind: gitlab, url: https://gitlab.example.com, auth: {{token_env: GL_TOKEN}}}}
  zd: {{kind: zendesk, subdomain: acme, auth: {{oauth_token_env: ZD_TOKEN}}}}
tokens:
  sync-grant:
    description: the sync app's OAuth grant
    owner: "@ops"
    source: {{kind: zendesk_oauth_grant, provider: zd, client: sync-app, scopes: [read],
             refresh_token_env: SYNC_REFRESH, client_secret_env: SYNC_CLIENT_SECRET{fallback}}}
    rotation: {{rotate_before: {rotate_before}}}
    consumers:
      - {{kind: gitlab_ci_variable, provider: gl, project: acme/app, key: ZENDESK_TOKEN, masked: true}}
      - {{kind: zendesk_webhook, provider: zd, webhook: Notify, authentication: {{type: bearer_token}}}}
"""


def mint(prefix: str = "") -> str:
    return prefix + secrets.token_hex(32)


@dataclass
class GrantWorld:
    clock: Clock
    gitlab: SandboxServer
    zendesk: SandboxServer
    env: dict[str, str]
    access: str  # the access token of the authorization the person made
    refresh: str  # its refresh token, supplied in $SYNC_REFRESH

    @classmethod
    def start(cls, directory: Path, *, rotate_before: str = "10m", fallback: bool = False) -> GrantWorld:
        cred, zcred, secret, access, refresh = mint("glpat-")[:26], mint(), mint()[:64], mint(), mint()
        clock = Clock(START)
        gitlab_service, zendesk_service = GitLabService(clock), ZendeskService(clock)
        gitlab_service.seed({"users": [{"username": "bot", "tokens": [
            {"name": "reconcile", "scopes": ["api"], "value": cred, "created_at": "now-10d", "expires_at": "now+300d"}]}],
            "projects": [{"path_with_namespace": "acme/app"}],
            "variables": [{"project": "acme/app", "key": "ZENDESK_TOKEN", "value": access, "masked": True}]})
        zendesk_service.seed({"instances": {SUB: {
            "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"},
                              {"identifier": "sync-app", "name": "Sync app", "secret": secret,
                               "created_at": "2026-05-02"}],
            "oauth_tokens": [{"client": "reconcile", "scopes": ["read", "write"], "value": zcred},
                             {"client": "sync-app", "scopes": ["read"], "value": access, "created_at": "now-5m",
                              "expires_at": "now+25m", "refresh_token": refresh,
                              "refresh_token_expires_at": "now+30d"}],
            "webhooks": [{"name": "Notify", "endpoint": "https://hooks.example/notify", "http_method": "POST",
                          "request_format": "json", "authentication": {
                              "type": "bearer_token", "data": {"token": access}, "add_position": "header"}}],
        }}})
        gitlab, zendesk = SandboxServer(gitlab_service).start(), SandboxServer(zendesk_service).start()
        inv = directory / "inventory"
        inv.mkdir(parents=True, exist_ok=True)
        (inv / "inventory.yaml").write_text(INVENTORY.format(
            rotate_before=rotate_before, fallback=", fallback: client_credentials" if fallback else ""))
        env = {"GL_TOKEN": cred, "ZD_TOKEN": zcred, "SYNC_REFRESH": refresh, "SYNC_CLIENT_SECRET": secret,
               "RECONCILE_ESCROW_KEY": generate_key(), SANDBOX_ENV_GITLAB: gitlab.url,
               SANDBOX_ENV_ZENDESK: f"127.0.0.1:{zendesk.port}"}
        return cls(clock, gitlab, zendesk, env, access, refresh)

    def stop(self) -> None:
        for server in (self.gitlab, self.zendesk):
            server.stop()

    @property
    def now(self) -> str:
        return to_iso(self.clock.now())

    def held(self) -> dict[str, str]:
        """What each consumer holds now (through the sandboxes' test hooks)."""
        zd = self.zendesk.service
        webhook = next(w["id"] for w in zd.instance(SUB).webhooks if w["name"] == "Notify")
        return {"variable": self.gitlab.service.variable_value("project", "acme/app", "ZENDESK_TOKEN"),
                "webhook": zd.webhook_credential(SUB, webhook)["data"]["token"]}

    def token_row(self, value: str) -> dict[str, Any] | None:
        """The sandbox's record of an access token, None once it is gone (refreshed away)."""
        return next((t for t in self.zendesk.service.instance(SUB).oauth_tokens if t["token"] == value), None)

    def works(self, value: str) -> bool:
        answer = requests.get(f"http://127.0.0.1:{self.zendesk.port}/api/v2/oauth/tokens/current.json",
                              headers={"Authorization": f"Bearer {value}", "Host": f"{SUB}.zendesk.com"}, timeout=5)
        return answer.status_code == 200

    def refreshes(self) -> int:
        """Grants the Zendesk sandbox applied (refresh and client_credentials; a lost answer counts)."""
        return len([e for e in self.zendesk.log.snapshot() if e.method == "POST" and e.path.startswith("/oauth/tokens")
                    and e.applied])
