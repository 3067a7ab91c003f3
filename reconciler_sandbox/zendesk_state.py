"""State of one sandboxed Zendesk instance (account): records, seeding, ids and time rules.

Records are plain JSON-able dicts so that the whole world can be saved and loaded as JSON.
Values that are credentials (OAuth tokens, API tokens, client secrets, webhook credentials,
signing secrets, secure app settings) are held here in full; the HTTP layer decides what the
API shows, and `secrets` remembers every value ever seeded or minted for the leak guard.
"""

from __future__ import annotations

import base64
import copy
import random
import secrets as _secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from reconciler_sandbox.core import Clock, parse_when

# Zendesk's API-token retirement: "Migrating from API tokens to OAuth access tokens",
# developer.zendesk.com/documentation/api-basics/authentication/oauth-migration/ (checked
# December 2026), and support.zendesk.com/hc/en-us/articles/10840968198042.
INACTIVITY_RULE_FROM = datetime(2026, 7, 28, tzinfo=UTC)  # unused 30 days -> deactivated
INACTIVITY_PERIOD = timedelta(days=30)
DELETED_AFTER_DEACTIVATION = timedelta(days=60)
NO_CREATION_FROM = datetime(2026, 10, 27, tzinfo=UTC)  # no new API tokens, "through the UI or API"
SUNSET = datetime(2027, 4, 30, tzinfo=UTC)  # every API token stops authenticating
DEFAULT_REFRESH_LIFETIME = timedelta(days=30)  # refresh_token_expires_in's default, 2,592,000 s

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_HEX = "0123456789abcdef"
_ALNUM = string.ascii_letters + string.digits


def iso(dt: datetime | None) -> str | None:
    """Zendesk's timestamp format: seconds, UTC, `Z`."""
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def random_value(alphabet: str, length: int) -> str:
    return "".join(_secrets.choice(alphabet) for _ in range(length))


def new_oauth_token() -> str:
    return random_value(_HEX, 64)


def new_api_token() -> str:
    return random_value(_ALNUM, 40)


def new_client_secret() -> str:
    return random_value(_ALNUM, 64)


def new_signing_secret() -> str:
    # Recorded secrets are base64 of 32 bytes (e.g. "wMZJ...7zs=").
    return base64.b64encode(_secrets.token_bytes(32)).decode()


class SeedError(ValueError):
    """A seed that cannot be loaded; the message names the instance, list and item."""


# Seeding order: what later records refer to comes first.
SEED_ORDER = ("users", "oauth_clients", "oauth_tokens", "authorization_codes", "api_tokens", "apps", "installations",
              "webhooks")


class DuplicateId(SeedError):
    """A seeded id another record of the instance already has (the seed loop names the item)."""


class Instance:
    """One Zendesk account: `{subdomain}.zendesk.com`."""

    def __init__(self, subdomain: str, clock: Clock) -> None:
        self.subdomain = subdomain
        self.clock = clock
        self.next_id = 1000  # numeric ids: deterministic, shared by every record kind
        self.taken_ids: set[int] = set()
        # Whether PUT /apps/installations/:id merges the given settings into the others or replaces
        # them is undocumented (reference section 3). "merge" is the default; tests set "replace"
        # to prove the client notices and puts the other settings back.
        self.settings_put: Literal["merge", "replace"] = "merge"
        self.ulid_ms = 0
        self.ulid_random = 0
        self.rng = random.Random(subdomain)  # ULID randomness: deterministic per instance
        self.users: list[dict[str, Any]] = []
        self.oauth_clients: list[dict[str, Any]] = []
        self.oauth_tokens: list[dict[str, Any]] = []  # each holds its refresh token, if it has one
        self.authorization_codes: list[dict[str, Any]] = []  # what a user's consent would have issued
        self.api_tokens: list[dict[str, Any]] = []
        self.apps: list[dict[str, Any]] = []
        self.installations: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []  # what POST /webhooks/test would have sent
        self.secrets: set[str] = set()

    # ids ---------------------------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1
        self.taken_ids.add(self.next_id)
        return self.next_id

    def claim_id(self, given: Any) -> int:
        """A seeded id. Zendesk never gives two records one id: a seed that does would make
        the sandbox answer for the wrong record (a revoke deleting another token), so refuse it."""
        value = int(given)
        if value in self.taken_ids:
            raise DuplicateId(f"id {value} is already taken by another record of this instance")
        self.taken_ids.add(value)
        self.next_id = max(self.next_id, value)
        return value

    def new_ulid(self) -> str:
        """A 26-character ULID, time-ordered by the sandbox clock (monotonic within a ms)."""
        ms = int(self.clock.now().timestamp() * 1000)
        if ms == self.ulid_ms:
            self.ulid_random += 1
        else:
            self.ulid_random = self.rng.getrandbits(79)  # headroom so increments never overflow
        self.ulid_ms = ms
        number = (ms << 80) | self.ulid_random
        return "".join(CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))

    def remember(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value:
                self.secrets.add(value)

    def now(self) -> str:
        return iso(self.clock.now())  # type: ignore[return-value]

    def when(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        try:
            return iso(parse_when(value, self.clock))
        except ValueError as exc:
            raise SeedError(f"{where}: {exc}") from None

    # lookups -----------------------------------------------------------------------------

    def user(self, key: Any) -> dict[str, Any] | None:
        for u in self.users:
            if u["id"] == key or str(u["id"]) == str(key) or u["email"] == key:
                return u
        return None

    def find(self, records: list[dict[str, Any]], record_id: Any) -> dict[str, Any] | None:
        for record in records:
            if str(record["id"]) == str(record_id):
                return record
        return None

    def client(self, key: Any) -> dict[str, Any] | None:
        for c in self.oauth_clients:
            if str(c["id"]) == str(key) or c["identifier"] == key:
                return c
        return None

    def app(self, key: Any) -> dict[str, Any] | None:
        for a in self.apps:
            if str(a["id"]) == str(key) or a["name"] == key:
                return a
        return None

    def secure_names(self, installation: dict[str, Any]) -> set[str]:
        app = self.app(installation["app_id"])
        return {p["name"] for p in (app or {}).get("parameters", []) if p.get("secure")}

    # API-token time rules ----------------------------------------------------------------

    def api_token_state(self, token: dict[str, Any]) -> tuple[bool, bool]:
        """(active, deleted) of an API token now, by the sandbox clock.

        From 2026-07-28 a token unused for 30 days is deactivated, and a deactivated token is
        deleted 60 days after its deactivation (the migration page says "Deactivated tokens are
        permanently deleted 60 days after deactivation", without distinguishing how they were
        deactivated; the sandbox counts a deactivation from before 2026-07-28 from that date).
        From 2027-04-30 no API token is active. The 30 days run from the latest of creation,
        last use and reactivation: a guess, Zendesk documents only "hasn't been used for 30 days".
        """
        now = self.clock.now()
        if not token["active"]:
            deactivated = from_iso(token.get("deactivated_at")) or from_iso(token["created_at"])
            assert deactivated is not None
            return False, now >= max(deactivated, INACTIVITY_RULE_FROM) + DELETED_AFTER_DEACTIVATION
        starts = [from_iso(token.get(key)) for key in ("created_at", "last_used", "reactivated_at")]
        last = max(when for when in starts if when is not None)
        lapse = max(last + INACTIVITY_PERIOD, INACTIVITY_RULE_FROM)
        if now >= lapse:
            token.update(active=False, deactivated_at=iso(lapse), auto_deactivated=True, updated_at=iso(lapse))
            return self.api_token_state(token)
        return now < SUNSET, False

    # seeding -----------------------------------------------------------------------------

    def seed(self, data: dict[str, Any]) -> None:
        where = f"instances.{self.subdomain}"
        if not isinstance(data, dict):
            raise SeedError(f"{where}: must be a mapping")
        unknown = sorted(set(data) - set(SEED_ORDER))
        if unknown:
            raise SeedError(f"{where}: unknown key(s) {', '.join(unknown)}")
        for key in SEED_ORDER:
            items = data.get(key) or ([{"name": "Sandbox Admin", "role": "admin"}] if key == "users" else [])
            for index, item in enumerate(items):
                item_where = f"{where}.{key}[{index}]"
                if not isinstance(item, dict):
                    raise SeedError(f"{item_where}: must be a mapping")
                try:
                    getattr(self, "seed_" + key[:-1])(item, item_where)
                except DuplicateId as err:
                    raise SeedError(f"{item_where}.id: {err}") from None

    def _id(self, item: dict[str, Any]) -> int:
        return self.claim_id(item["id"]) if item.get("id") is not None else self.new_id()

    def _owner(self, item: dict[str, Any], key: str, where: str) -> int:
        if item.get(key) is None:
            return self.users[0]["id"]
        user = self.user(item[key])
        if user is None:
            raise SeedError(f"{where}.{key}: no user {item[key]!r} in this instance")
        return user["id"]

    def seed_user(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role", "admin")
        if role not in ("admin", "agent", "end-user"):
            raise SeedError(f"{where}.role: must be admin, agent or end-user")
        uid = self._id(item)
        self.users.append({
            "id": uid,
            "name": item.get("name", f"User {uid}"),
            "email": item.get("email", f"user{uid}@{self.subdomain}.example"),
            "role": role,
            "active": item.get("active", True),
        })

    def seed_oauth_client(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        if not item.get("identifier") and not item.get("name"):
            raise SeedError(f"{where}: needs identifier or name")
        secret = item.get("secret") or new_client_secret()
        self.remember(secret)
        created = self.when(item.get("created_at", "now"), f"{where}.created_at")
        cid = self._id(item)
        record = {
            "id": cid,
            "name": item.get("name") or item["identifier"],
            "identifier": item.get("identifier") or str(item["name"]).lower().replace(" ", "_"),
            "kind": item.get("kind", "confidential"),
            "company": item.get("company", ""),
            "description": item.get("description", ""),
            "redirect_uri": list(item.get("redirect_uri", [])),
            "logo_url": None,
            "user_id": self._owner(item, "user", where),
            "global": bool(item.get("global", False)),  # read-only in the API: only a seed makes one
            "secret": secret,
            "created_at": created,
            "updated_at": self.when(item.get("updated_at"), f"{where}.updated_at") or created,
        }
        self.oauth_clients.append(record)
        return record

    def seed_oauth_token(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        client_key = item.get("client")
        if client_key is None:
            if not self.oauth_clients:
                self.seed_oauth_client({"identifier": "sandbox_default", "name": "Sandbox default client"},
                                       f"{where}.client")
            client = self.oauth_clients[0]
        else:
            client = self.client(client_key)
            if client is None:
                raise SeedError(f"{where}.client: no OAuth client {client_key!r} in this instance")
        scopes = item.get("scopes", ["read", "write"])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise SeedError(f"{where}.scopes: must be a list of strings")
        return self.mint_oauth_token(
            client, self._owner(item, "user", where), scopes,
            value=item.get("value"), token_id=item.get("id"),
            created_at=self.when(item.get("created_at", "now"), f"{where}.created_at"),
            used_at=self.when(item.get("used_at"), f"{where}.used_at"),
            expires_at=self.when(item.get("expires_at"), f"{where}.expires_at"),
            refresh_token=item.get("refresh_token"),
            refresh_token_expires_at=self.when(item.get("refresh_token_expires_at"),
                                               f"{where}.refresh_token_expires_at") or iso(
                parse_when(item.get("created_at", "now"), self.clock) + DEFAULT_REFRESH_LIFETIME),
        )

    def mint_oauth_token(self, client: dict[str, Any], user_id: int, scopes: list[str], *,
                         value: str | None = None, token_id: Any = None, created_at: str | None = None,
                         used_at: str | None = None, expires_at: str | None = None,
                         refresh_token: str | None = None, refresh_token_expires_at: str | None = None,
                         ) -> dict[str, Any]:
        """An access token (and its refresh token, when given: the pair lives and dies together)."""
        value = value or new_oauth_token()
        self.remember(value, refresh_token)
        record = {
            "id": self.claim_id(token_id) if token_id is not None else self.new_id(),
            "client_id": client["id"],
            "user_id": user_id,
            "token": value,
            "scopes": list(scopes),
            "created_at": created_at or self.now(),
            "used_at": used_at,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "refresh_token_expires_at": refresh_token_expires_at if refresh_token else None,
        }
        self.oauth_tokens.append(record)
        return record

    def seed_authorization_code(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        """A code as Zendesk's consent page would redirect with (that page is a browser flow the
        sandbox does not serve). It is valid for 120 seconds from `created_at` and used once."""
        client = self.client(item.get("client"))
        if client is None:
            raise SeedError(f"{where}.client: no OAuth client {item.get('client')!r} in this instance")
        scopes = item.get("scopes", ["read"])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise SeedError(f"{where}.scopes: must be a list of strings")
        if item.get("code_challenge_method", "S256") not in ("S256", "plain"):
            raise SeedError(f"{where}.code_challenge_method: must be S256 or plain")
        record = {
            "code": item.get("code") or new_oauth_token(),
            "client_id": client["id"],
            "user_id": self._owner(item, "user", where),
            "scopes": list(scopes),
            "redirect_uri": item.get("redirect_uri"),
            "code_challenge": item.get("code_challenge"),
            "code_challenge_method": item.get("code_challenge_method", "S256"),
            "created_at": self.when(item.get("created_at", "now"), f"{where}.created_at"),
        }
        self.remember(record["code"])
        self.authorization_codes.append(record)
        return record

    def seed_api_token(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        value = item.get("value") or new_api_token()
        self.remember(value)
        created = self.when(item.get("created_at", "now"), f"{where}.created_at")
        record = {
            "id": self._id(item),
            "token": value,
            "description": item.get("description", ""),
            "active": item.get("active", True),
            "user_id": self._owner(item, "user", where),
            "created_at": created,
            "updated_at": self.when(item.get("updated_at"), f"{where}.updated_at") or created,
            "last_used": self.when(item.get("last_used"), f"{where}.last_used"),
            "deactivated_at": None if item.get("active", True) else (
                self.when(item.get("deactivated_at"), f"{where}.deactivated_at") or created),
            "auto_deactivated": False,
        }
        self.api_tokens.append(record)
        return record

    def seed_app(self, item: dict[str, Any], where: str) -> None:
        if not item.get("name"):
            raise SeedError(f"{where}.name: required")
        params = []
        for index, p in enumerate(item.get("parameters", [])):
            if not isinstance(p, dict) or not p.get("name"):
                raise SeedError(f"{where}.parameters[{index}]: needs a name")
            params.append({"name": p["name"], "type": p.get("type", "text"), "secure": bool(p.get("secure")),
                           "required": bool(p.get("required"))})
        self.apps.append({"id": self._id(item), "name": item["name"], "parameters": params})

    def seed_installation(self, item: dict[str, Any], where: str) -> None:
        app = self.app(item.get("app"))
        if app is None:
            raise SeedError(f"{where}.app: no app {item.get('app')!r} in this instance (seed it under apps)")
        settings = dict(item.get("settings") or {})
        settings.setdefault("name", app["name"])
        created = self.when(item.get("created_at", "now"), f"{where}.created_at")
        record = {
            "id": self._id(item),
            "app_id": app["id"],
            "enabled": item.get("enabled", True),
            "settings": settings,
            "created_at": created,
            "updated_at": self.when(item.get("updated_at"), f"{where}.updated_at") or created,
        }
        self.remember(*(settings.get(n) for n in self.secure_names(record)))
        self.installations.append(record)

    def seed_webhook(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        for key in ("name", "endpoint"):
            if not item.get(key):
                raise SeedError(f"{where}.{key}: required")
        auth = item.get("authentication")
        if auth is not None and auth.get("type") not in ("basic_auth", "bearer_token", "api_key"):
            raise SeedError(f"{where}.authentication.type: must be basic_auth, bearer_token or api_key")
        created = self.when(item.get("created_at", "now"), f"{where}.created_at")
        record: dict[str, Any] = {
            "id": item.get("id") or self.new_ulid(),
            "name": item["name"],
            "status": item.get("status", "active"),
            "subscriptions": list(item.get("subscriptions", ["conditional_ticket_events"])),
            "created_at": created,
            "created_by": str(self._owner(item, "created_by", where)),
            "endpoint": item["endpoint"],
            "http_method": item.get("http_method", "POST"),
            "request_format": item.get("request_format", "json"),
        }
        for key in ("description", "custom_headers", "external_source"):
            if item.get(key) is not None:
                record[key] = copy.deepcopy(item[key])
        if auth is not None:
            record["authentication"] = {"type": auth["type"], "data": dict(auth.get("data") or {}),
                                        "add_position": auth.get("add_position", "header")}
        if item.get("updated_at"):
            record["updated_at"] = self.when(item["updated_at"], f"{where}.updated_at")
            record["updated_by"] = str(self._owner(item, "updated_by", where))
        record["signing_secret"] = {"secret": (item.get("signing_secret") or {}).get("secret") or new_signing_secret(),
                                    "algorithm": "SHA256"}
        record["invocations"] = copy.deepcopy(item.get("invocations", []))
        self.remember_webhook(record)
        self.webhooks.append(record)
        return record

    def remember_webhook(self, record: dict[str, Any]) -> None:
        data = (record.get("authentication") or {}).get("data") or {}
        self.remember(data.get("password"), data.get("token"), data.get("value"),
                      record["signing_secret"]["secret"])

    # persistence -------------------------------------------------------------------------

    KINDS = ("users", "oauth_clients", "oauth_tokens", "authorization_codes", "api_tokens", "apps", "installations",
             "webhooks", "deliveries")

    def dump(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: copy.deepcopy(getattr(self, k)) for k in self.KINDS}
        state.update(next_id=self.next_id, ulid_ms=self.ulid_ms, ulid_random=self.ulid_random,
                     secrets=sorted(self.secrets))
        return state

    @classmethod
    def load(cls, subdomain: str, clock: Clock, state: dict[str, Any]) -> Instance:
        inst = cls(subdomain, clock)
        for key in cls.KINDS:
            setattr(inst, key, copy.deepcopy(state.get(key, [])))
        inst.next_id = state.get("next_id", 1000)
        inst.taken_ids = {int(r["id"]) for k in cls.KINDS if k not in ("webhooks", "deliveries")
                          for r in getattr(inst, k) if isinstance(r.get("id"), int)}
        inst.ulid_ms = state.get("ulid_ms", 0)
        inst.ulid_random = state.get("ulid_random", 0)
        inst.secrets = set(state.get("secrets", []))
        return inst
