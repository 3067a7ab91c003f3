"""A stateful fake of the Zendesk Support API subset this tool uses, for several instances at once.

Routing: zenpy reads `ZENPY_FORCE_SCHEME`/`ZENPY_FORCE_NETLOC` from the environment on every
request, so every instance shares the netloc `127.0.0.1:PORT`; instances are told apart by the
`Host` header `{subdomain}.zendesk.com`, as on the real service. A client passes its own
`requests.Session` carrying that header (see `session_for` and `zenpy_client`). With Host
`127.0.0.1` and exactly one instance seeded, that instance answers.

Endpoints live in `zendesk_credentials` (OAuth clients and tokens, API tokens), `zendesk_oauth`
(the grant endpoint `POST /oauth/tokens`: codes, refresh, client credentials), `zendesk_apps` (app installations) and `zendesk_webhooks`; state and seeding in
`zendesk_state`; shared shapes in `zendesk_http`. See docs/sandbox-zendesk.md.
"""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from reconciler_sandbox.core import (
    Clock,
    HTTPError,
    RateLimiter,
    Request,
    Response,
    SandboxServer,
    Service,
)
from reconciler_sandbox.zendesk_http import (
    INVALID_TOKEN_TEXT,
    RATE_LIMITED_TEXT,
    Caller,
    forbidden,
    scope_allows,
    support_error,
)
from reconciler_sandbox.zendesk_state import Instance, SeedError, from_iso

ZendeskHandler = Callable[[Caller, Request], Response]
DEFAULT_RATE_LIMIT = 700  # requests per minute: Zendesk Enterprise (reference section 5)
HOST_SUFFIX = ".zendesk.com"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


class ZendeskService(Service):
    """Several Zendesk instances, each `{subdomain}.zendesk.com` with its own state."""

    name = "zendesk"

    def __init__(self, clock: Clock, seed: dict[str, Any] | str | Path | None = None) -> None:
        super().__init__(clock)
        self.instances: dict[str, Instance] = {}
        from reconciler_sandbox import zendesk_apps, zendesk_credentials, zendesk_oauth, zendesk_webhooks

        for module in (zendesk_credentials, zendesk_oauth, zendesk_apps, zendesk_webhooks):
            module.register(self)
        if seed is not None:
            self.seed(seed)

    # --- seeding and state ----------------------------------------------------------------

    def seed(self, seed: dict[str, Any] | str | Path) -> None:
        """Add the instances of a seed (a dict, or a YAML/JSON file)."""
        if isinstance(seed, str | Path):
            seed = yaml.safe_load(Path(seed).read_text()) or {}
        if not isinstance(seed, dict) or set(seed) - {"instances"}:
            raise SeedError("seed: expected a mapping with the single key 'instances'")
        with self.lock:
            for subdomain, data in (seed.get("instances") or {}).items():
                self.add_instance(str(subdomain), data or {})

    def add_instance(self, subdomain: str, data: dict[str, Any] | None = None) -> Instance:
        if subdomain in self.instances:
            raise SeedError(f"instances.{subdomain}: defined twice")
        instance = Instance(subdomain, self.clock)
        instance.seed(data or {})
        self.instances[subdomain] = instance
        return instance

    def dump_state(self) -> dict[str, Any]:
        return {"instances": {name: inst.dump() for name, inst in self.instances.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.instances = {name: Instance.load(name, self.clock, data)
                          for name, data in state.get("instances", {}).items()}

    # --- routing, authentication, authorization ----------------------------------------------

    def api(self, method: str, template: str, handler: ZendeskHandler, *, resource: str | None,
            role: str = "admin", write: bool | None = None) -> None:
        """Register an authenticated endpoint. `resource` names the OAuth scope resource
        (`webhooks`, `apps`; None: only the global read/write scopes); `role` the least role."""
        needs_write = method != "GET" if write is None else write

        def wrapped(request: Request) -> Response:
            caller = self.authenticate(self.instance_for(request), request)
            if not scope_allows(caller.scopes, resource, needs_write):
                raise forbidden()
            if role == "admin" and not caller.is_admin or role == "agent" and caller.user["role"] == "end-user":
                raise forbidden()
            return handler(caller, request)

        self.router.add(method, template, wrapped)

    def public(self, method: str, template: str, handler: Callable[[Instance, Request], Response]) -> None:
        """Register an endpoint that takes no API credential (the OAuth grant endpoint)."""
        self.router.add(method, template, lambda request: handler(self.instance_for(request), request))

    def instance_for(self, request: Request) -> Instance:
        host = request.host
        if host.endswith(HOST_SUFFIX) and host[: -len(HOST_SUFFIX)] in self.instances:
            return self.instances[host[: -len(HOST_SUFFIX)]]
        if host in LOOPBACK_HOSTS and len(self.instances) == 1:
            return next(iter(self.instances.values()))
        served = ", ".join(f"{name}{HOST_SUFFIX}" for name in sorted(self.instances)) or "none"
        raise support_error(404, "RecordNotFound",
                            f"No Zendesk instance for Host '{host}': send 'Host: SUBDOMAIN.zendesk.com' "
                            f"(this sandbox serves {served})")

    def authenticate(self, instance: Instance, request: Request) -> Caller:
        header = (request.header("Authorization") or "").strip()
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer":
            return self._bearer(instance, credential.strip())
        if scheme.lower() == "basic":
            caller = self._basic(instance, credential.strip())
            if caller is not None:
                return caller
        raise HTTPError(401, {"error": "Couldn't authenticate you"}, {"WWW-Authenticate": 'Basic realm="Web Password"'})

    def _bearer(self, instance: Instance, value: str) -> Caller:
        token = next((t for t in instance.oauth_tokens if t["token"] == value), None)
        now = self.clock.now()
        expires = from_iso(token["expires_at"]) if token else None
        user = instance.user(token["user_id"]) if token else None
        if token is None or (expires is not None and now >= expires) or user is None or not user["active"]:
            raise HTTPError(401, {"error": "invalid_token", "error_description": INVALID_TOKEN_TEXT},
                            {"WWW-Authenticate": 'Bearer realm="Zendesk", error="invalid_token"'})
        token["used_at"] = instance.now()
        return Caller(instance, user, list(token["scopes"]), token)

    def _basic(self, instance: Instance, encoded: str) -> Caller | None:
        """`email/token:api_token`. Password authentication was removed (Jan 2026): refused."""
        try:
            login, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not login.endswith("/token"):
            return None
        user = instance.user(login[: -len("/token")])
        token = next((t for t in instance.api_tokens if t["token"] == secret), None)
        if user is None or not user["active"] or token is None:
            return None
        active, deleted = instance.api_token_state(token)
        if not active or deleted:
            return None
        token["last_used"] = instance.now()
        return Caller(instance, user, None)

    # --- generic answers in Zendesk's shapes -------------------------------------------------

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if response.status == 405:  # the router's generic 405, in Zendesk's shape
            response.body = {"error": "InvalidEndpoint", "description": "Not found"}
        return response

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def rate_limit_headers(self, limit: int, remaining: int, reset_at: int) -> dict[str, str]:
        return {"X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining)}

    def rate_limited(self, retry_after: int) -> Response:
        return Response(429, RATE_LIMITED_TEXT, {"Retry-After": str(retry_after)})

    def server_error(self, status: int) -> Response:
        return Response(status, {"error": "ServerError", "description": f"{status} Server Error"})

    def identity(self, request: Request) -> str:
        return request.host  # Zendesk's limits are per account

    def is_mutating(self, request: Request) -> bool:
        # Testing a webhook sends a request elsewhere; it changes nothing in Zendesk.
        return super().is_mutating(request) and not request.path.rstrip("/").endswith("/webhooks/test")

    # --- test hooks (Python only; never reachable over HTTP) -------------------------------

    def instance(self, subdomain: str) -> Instance:
        return self.instances[subdomain]

    def secrets(self) -> set[str]:
        """Every credential value ever seeded or minted, in every instance (the leak guard)."""
        with self.lock:
            return set().union(*(inst.secrets for inst in self.instances.values()))

    def webhook_credential(self, subdomain: str, webhook_id: str) -> dict[str, Any]:
        """What the webhook would send: endpoint, method, authentication (with its secret), and
        the resulting headers. For a test to show a delivered value really arrived."""
        from reconciler_sandbox.zendesk_webhooks import outgoing_headers

        with self.lock:
            hook = self.instances[subdomain].find(self.instances[subdomain].webhooks, webhook_id)
            if hook is None:
                raise KeyError(f"no webhook {webhook_id} in {subdomain}")
            auth = copy.deepcopy(hook.get("authentication"))
            return {"endpoint": hook["endpoint"], "http_method": hook["http_method"],
                    "type": auth["type"] if auth else None, "data": auth["data"] if auth else {},
                    "add_position": auth["add_position"] if auth else None,
                    "headers": outgoing_headers(hook)}

    def secure_setting(self, subdomain: str, installation_id: int | str, name: str) -> Any:
        """The value an installation's setting holds, secure or not (None when unset)."""
        with self.lock:
            inst = self.instances[subdomain]
            installation = inst.find(inst.installations, installation_id)
            if installation is None:
                raise KeyError(f"no installation {installation_id} in {subdomain}")
            return installation["settings"].get(name)

    def token_by_value(self, subdomain: str, value: str) -> dict[str, Any] | None:
        """The OAuth token or API token record holding `value`, with `kind` and `active`; for a
        refresh token, the record of its access token with `kind` "refresh_token"."""
        with self.lock:
            inst = self.instances[subdomain]
            for token in inst.oauth_tokens:
                for kind, key, expiry in (("oauth_token", "token", "expires_at"),
                                          ("refresh_token", "refresh_token", "refresh_token_expires_at")):
                    if token[key] == value:
                        expires = from_iso(token[expiry])
                        return {**copy.deepcopy(token), "kind": kind,
                                "active": expires is None or self.clock.now() < expires}
            for token in inst.api_tokens:
                if token["token"] == value:
                    active, deleted = inst.api_token_state(token)
                    if deleted:
                        return None
                    return {**copy.deepcopy(token), "kind": "api_token", "active": active}
            return None

    def authorization_code(self, subdomain: str, client: str, *, user: Any = None, scopes: list[str] | None = None,
                           redirect_uri: str | None = None, code_challenge: str | None = None,
                           code_challenge_method: str = "S256") -> str:
        """A fresh code for `client` (identifier), as a user's consent would issue it."""
        with self.lock:
            item = {"client": client, "user": user, "scopes": scopes or ["read"], "redirect_uri": redirect_uri,
                    "code_challenge": code_challenge, "code_challenge_method": code_challenge_method}
            return self.instances[subdomain].seed_authorization_code(item, "authorization_code")["code"]

    def client_secret_valid(self, subdomain: str, identifier: str, secret: str) -> bool:
        with self.lock:
            client = self.instances[subdomain].client(identifier)
            return client is not None and client["secret"] == secret


def serve_zendesk(seed: dict[str, Any] | str | Path | None = None, clock: Clock | None = None,
                  **server_kwargs: Any) -> SandboxServer:
    """A started sandbox server for the instances in `seed` (rate limit: 700/min per instance
    unless `rate_limit=RateLimiter(...)` is given)."""
    server_kwargs.setdefault("rate_limit", RateLimiter(limit=DEFAULT_RATE_LIMIT, window=60.0))
    return SandboxServer(ZendeskService(clock or Clock(), seed), **server_kwargs).start()


# --- clients for tests and the embedded sandbox ----------------------------------------------


def session_for(server: SandboxServer, subdomain: str, *, oauth_token: str | None = None,
                email: str | None = None, api_token: str | None = None) -> requests.Session:
    """A `requests.Session` that reaches `subdomain` on this sandbox (Host header) with the given
    credential: `oauth_token` (Bearer), or `email` + `api_token` (Basic email/token:value)."""
    session = requests.Session()
    session.headers["Host"] = f"{subdomain}{HOST_SUFFIX}"
    if oauth_token is not None:
        session.headers["Authorization"] = f"Bearer {oauth_token}"
    elif api_token is not None:
        session.auth = (f"{email}/token", api_token)
    return session


def zenpy_client(server: SandboxServer, subdomain: str, *, oauth_token: str | None = None,
                 email: str | None = None, api_token: str | None = None, timeout: float = 5,
                 **zenpy_kwargs: Any):
    """An unmodified `zenpy.Zenpy` pointed at this sandbox.

    Sets ZENPY_FORCE_SCHEME/ZENPY_FORCE_NETLOC in the process environment (zenpy reads them on
    every request; every instance of a server shares them, the Host header tells them apart).
    The zenpy cache is off so that reads see the sandbox's state, not zenpy's memory.
    """
    from zenpy import Zenpy

    os.environ["ZENPY_FORCE_SCHEME"] = "http"
    os.environ["ZENPY_FORCE_NETLOC"] = f"127.0.0.1:{server.port}"
    session = session_for(server, subdomain, oauth_token=oauth_token, email=email, api_token=api_token)
    credentials: dict[str, Any] = {"oauth_token": oauth_token} if oauth_token else {"email": email, "token": api_token}
    zenpy_kwargs.setdefault("disable_cache", True)
    return Zenpy(subdomain=subdomain, session=session, timeout=timeout, **credentials, **zenpy_kwargs)


__all__ = ["ZendeskService", "SeedError", "serve_zendesk", "session_for", "zenpy_client"]
