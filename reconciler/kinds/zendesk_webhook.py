"""Consumer kind `zendesk_webhook`: the value goes into a Zendesk webhook's endpoint URL (from a
`${token}` template; readable back) or its authentication (bearer token, basic-auth password,
API-key value; write-only: Zendesk returns only the basic-auth username).

Observe: one `GET /api/v2/webhooks` per instance through zenpy, cursor pages followed; the webhook
is matched by id or name. Write: PATCH (partial; a PUT replaces the whole object and would erase
the authentication) with the endpoint or the authentication only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from reconciler.inventory.checks import (
    TOKEN_PLACEHOLDER,
    live_plain_http_findings,
    plain_http_host,
    template_findings,
    url_target,
)
from reconciler.inventory.model import Consumer, Diagnostic, Inventory, Token
from reconciler.kinds import (
    VALUE_TEMPLATE_PROPERTY,
    ConsumerKind,
    ListKey,
    Lists,
    ListVerifiable,
    Readable,
    Reading,
    VerifiableAlone,
    extract,
    read_back,
    source_kind,
)
from reconciler.kinds._discovery import Place, ScannedConsumer, ScanScope
from reconciler.kinds._gitlab import rows
from reconciler.kinds._zendesk import PAGE_SIZE, PROVIDER_PROPERTY, Listed, fetch_webhooks
from reconciler.observed import ConsumerObservation
from reconciler.plan_model import Severity
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.inventory import build


@dataclass(frozen=True, kw_only=True)
class ZendeskWebhookAuth:
    type: Literal["bearer_token", "basic_auth", "api_key"]
    username: str | None = None  # basic_auth: the value is the password
    header: str | None = None  # api_key: header name; the value is the key


@dataclass(frozen=True, kw_only=True)
class ZendeskWebhook(Consumer):
    webhook: str  # name, or the 26-character id
    endpoint: str | None = None  # URL template with ${token} when the value goes in the URL
    authentication: ZendeskWebhookAuth | None = None  # when the value is the credential
    allow_plain_http: bool = False  # an http:// endpoint off this machine is an error without it
    kind: ClassVar[str] = "zendesk_webhook"

    @property
    def identity(self) -> str:
        where = "endpoint" if self.endpoint is not None else "authentication"
        return f"{self.kind}:{self.provider}:{self.webhook}:{where}"

    @property
    def label(self) -> str:
        return f"Zendesk webhook {self.webhook!r} ({'endpoint' if self.endpoint is not None else 'authentication'})"


UNRECOGNISED = "(live endpoint does not have the template's shape; not shown)"
_CREDENTIAL_LIKE_LABEL = 20  # a host label this long with a digit in it may be a value: not shown
_MARK = "reconcile-value"  # stands for ${token} while the template is parsed as a URL


def _shows(scheme: str, host: str) -> bool:
    """A web origin whose host cannot be a value: no label long and with a digit, like a token."""
    labels = host.split(".")
    return scheme in ("http", "https") and bool(host) and not any(
        len(label) >= _CREDENTIAL_LIKE_LABEL and any(c.isdigit() for c in label) for label in labels)


def unrecognised(template: str, held: Secret | None) -> str:
    """What a plan shows of a live endpoint without the template's shape: its origin (a move to
    another host is what a reviewer must see), never the rest, where the value sits. Not even the
    origin when the template puts the value in the host, or a label of the live host looks like
    a value (an older template may have put it there)."""
    live = url_target(held.reveal()) if held is not None else None
    ours = url_target(template.replace(TOKEN_PLACEHOLDER, _MARK))
    if live is None or ours is None or _MARK in ours.host or not _shows(live.scheme, live.host):
        return UNRECOGNISED
    host = f"[{live.host}]" if ":" in live.host else live.host
    port = f":{live.port}" if live.port is not None else ""
    return f"{live.scheme}://{host}{port}/… (the rest does not have the template's shape; not shown)"


# Its definition in the inventory schema: $defs/consumer_zendesk_webhook.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Zendesk webhook: the value goes into its endpoint URL or its authentication (patched, never replaced).",
    "properties": {
        "kind": {"const": "zendesk_webhook", "description": "`zendesk_webhook`."},
        "provider": PROVIDER_PROPERTY,
        "value": VALUE_TEMPLATE_PROPERTY,
        "webhook": {"type": "string", "description": "The webhook's name, or its 26-character id.", "minLength": 1},
        "endpoint": {
            "$ref": "#/$defs/template",
            "description": "Endpoint URL template with `${token}`, when the value travels in the URL (e.g. a pipeline trigger URL).",
        },
        "allow_plain_http": {
            "type": "boolean",
            "description": "Allow the value over plain `http://` to a host other than this machine, where it crosses the network in clear: in the `endpoint`, or in the `authentication` the webhook sends to its live endpoint. Default `false`: such a URL is an error (of validate for an `endpoint`, of plan for a live endpoint).",
        },
        "authentication": {
            "type": "object",
            "description": "The webhook's credential, when the value is the credential.",
            "properties": {
                "type": {
                    "enum": ["bearer_token", "basic_auth", "api_key"],
                    "description": "`bearer_token`, `basic_auth` (the value is the password) or `api_key` (the value goes in a header).",
                },
                "username": {"type": "string", "description": "`basic_auth`: the user name.", "minLength": 1},
                "header": {"type": "string", "description": "`api_key`: the header name.", "minLength": 1},
            },
            "additionalProperties": False,
            "required": ["type"],
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "basic_auth"}}, "required": ["type"]},
                    "then": {"required": ["username"]},
                },
                {
                    "if": {"properties": {"type": {"const": "api_key"}}, "required": ["type"]},
                    "then": {"required": ["header"]},
                },
            ],
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "webhook"],
    "oneOf": [
        {"title": "endpoint", "required": ["endpoint"]},
        {"title": "authentication", "required": ["authentication"]},
    ],
}


class _Index(NamedTuple):
    size: int
    first: dict[str, int]  # id or name -> position of the first row with that id or name
    by_id: frozenset[str]
    names: dict[str, list[str]]  # name -> ids, in list order


def _index(data: list[dict[str, Any]]) -> _Index:
    """Lookups by id and name in one webhook list; a scan per consumer was quadratic (1,000
    consumers x 500 webhooks: a quarter of a large plan's observe CPU). Kept on the list as the
    fetcher made it (`Listed`), so it lives and dies with the list: a module-level cache of the
    last lists held their rows, endpoints included, to the end of the process."""
    index = data.lookup if isinstance(data, Listed) else None
    if isinstance(index, _Index) and index.size == len(data):
        return index
    first: dict[str, int] = {}
    names: dict[str, list[str]] = {}
    for position, row in enumerate(data):
        first.setdefault(str(row.get("id")), position)
        name = row.get("name")
        if isinstance(name, str):
            first.setdefault(name, position)
            names.setdefault(name, []).append(str(row.get("id")))
    index = _Index(len(data), first, frozenset(str(row.get("id")) for row in data), names)
    if isinstance(data, Listed):
        data.lookup = index
    return index


def find_webhook(c: ZendeskWebhook, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first webhook whose id or name is `c.webhook` (in list order, as a scan finds it)."""
    position = _index(data).first.get(c.webhook)
    return None if position is None else data[position]


def ambiguous(c: ZendeskWebhook, data: list[dict[str, Any]]) -> str | None:
    """Why `c.webhook` names no single webhook (names are not unique in Zendesk), or None."""
    index = _index(data)
    if c.webhook in index.by_id:
        return None
    ids = index.names.get(c.webhook, [])
    if len(ids) < 2:
        return None
    return (f"{len(ids)} webhooks are named {c.webhook!r} (ids {', '.join(ids)}): name the webhook by its id, "
            "so that the value does not go to the wrong one")


class ZendeskWebhookKind(ConsumerKind, Readable, ListVerifiable, VerifiableAlone, ScannedConsumer):
    model = ZendeskWebhook
    schema = SCHEMA
    kind = "zendesk_webhook"
    provider_kind = "zendesk"
    list_page_size = PAGE_SIZE

    def check(self, token: Token, consumer: Consumer, inv: Inventory, path: str) -> list[Diagnostic]:
        assert isinstance(consumer, ZendeskWebhook)
        return [] if consumer.endpoint is None else template_findings(consumer, "endpoint", path, consumer.endpoint,
                                                                      source_kind(token.source.kind).parts(token.source))

    def from_document(self, fields: dict[str, Any], at: build.Place) -> Consumer:
        """`authentication:` becomes a ZendeskWebhookAuth; its keys keep their own positions."""
        if "authentication" in fields:
            fields["authentication"] = ZendeskWebhookAuth(**fields["authentication"])
        return ZendeskWebhook(**fields, **at.where(nested=("authentication",)))
    def declared_url(self, consumer: Consumer) -> tuple[str, str] | None:
        assert isinstance(consumer, ZendeskWebhook)
        return None if consumer.endpoint is None else ("endpoint", consumer.endpoint)

    def template(self, consumer: Consumer) -> str:
        """An endpoint is its own template (the value goes into the URL)."""
        assert isinstance(consumer, ZendeskWebhook)
        return consumer.endpoint if consumer.endpoint is not None else consumer.value

    def place(self, consumer: Consumer) -> str:
        c = consumer
        assert isinstance(c, ZendeskWebhook)
        return f"{c.kind}:{c.provider}:{c.webhook}"  # its consumers share the object a write reads and puts back

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        return [ListKey(consumer.provider, "webhooks")]

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, ZendeskWebhook)
        readable = c.endpoint is not None
        base: dict[str, Any] = {"identity": c.identity, "token": token.name, "readable": readable}
        data, error = rows(lists, ListKey(c.provider, "webhooks"))
        if error or data is None:
            return Reading(ConsumerObservation(**base, state="error", error=error or "not fetched"))
        several = ambiguous(c, data)
        if several:
            return Reading(ConsumerObservation(**base, state="error", error=several))
        hook = find_webhook(c, data)
        if hook is None:
            return Reading(ConsumerObservation(**base, state="missing", exists=False))
        auth = hook.get("authentication") or {}
        attributes: dict[str, Any] = {}
        if c.authentication is not None:
            attributes["authentication.type"] = auth.get("type")
            if c.authentication.username is not None:
                attributes["authentication.username"] = (auth.get("data") or {}).get("username")
        details = {"status": hook.get("status")}
        if host := plain_http_host(_revealed(hook.get("endpoint"))):  # only then: other plans' digests stay
            details["plain_http"] = host
        if not readable:
            return Reading(ConsumerObservation(**base, state="unverifiable", live_id=str(hook["id"]),
                                               attributes=attributes, details=details))
        held: Secret | None = hook.get("endpoint")
        token_value = extract(str(c.endpoint), held)
        attributes["endpoint"] = c.endpoint if token_value is not None else unrecognised(str(c.endpoint), held)
        observation = ConsumerObservation(**base, state="unverifiable", live_id=str(hook["id"]),
                                          fingerprint=held.fingerprint() if held is not None else None,
                                          attributes=attributes, details=details)
        return Reading(observation, held, token_value)

    def findings(self, consumer: Consumer, observation: ConsumerObservation,
                 writing: bool) -> list[tuple[Severity, str, str]]:
        """A webhook that sends its credential to a plain-http endpoint (known only live; an
        `endpoint:` template is checked by validate, and apply replaces the live one)."""
        assert isinstance(consumer, ZendeskWebhook)
        if consumer.endpoint is not None:
            return []
        return live_plain_http_findings(consumer, observation.details, "the credential in its authentication")

    def desired_attributes(self, consumer: Consumer) -> dict[str, Any]:
        assert isinstance(consumer, ZendeskWebhook)
        if consumer.endpoint is not None:
            return {"endpoint": consumer.endpoint}
        desired: dict[str, Any] = {}
        if consumer.authentication is not None:
            desired["authentication.type"] = consumer.authentication.type
            if consumer.authentication.username is not None:
                desired["authentication.username"] = consumer.authentication.username
        return desired

    # apply ------------------------------------------------------------------------------------

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        """`PATCH /api/v2/webhooks/:id` with only `endpoint`, or only `authentication`
        ({type, data: {token} | {username, password} | {name, value}, add_position: header}).
        Never PUT: it replaces the whole webhook and a PUT without `authentication` erases it."""
        c = consumer
        assert isinstance(c, ZendeskWebhook)
        if c.endpoint is not None:
            body: dict[str, Any] = {"endpoint": value.reveal()}
        else:
            auth = c.authentication
            assert auth is not None
            data = ({"token": value.reveal()} if auth.type == "bearer_token"
                    else {"username": auth.username, "password": value.reveal()} if auth.type == "basic_auth"
                    else {"name": auth.header, "value": value.reveal()})
            body = {"authentication": {"type": auth.type, "data": data, "add_position": "header"}}
        api.patch(f"/api/v2/webhooks/{observed.live_id}", {"webhook": body})

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        """The endpoint is read back; a credential in `authentication` is write-only (None)."""
        held = self.read(api, consumer)
        return None if held is None else held == value

    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        c = consumer
        assert isinstance(c, ZendeskWebhook)
        if c.endpoint is None:
            return None
        return _endpoint(c, fetch_webhooks(api, ""))

    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        assert isinstance(consumer, ZendeskWebhook)
        return [ListKey(consumer.provider, "webhooks")] if consumer.endpoint is not None else []

    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        c = consumer
        assert isinstance(c, ZendeskWebhook)
        held = _endpoint(c, read_back(lists, ListKey(c.provider, "webhooks")))
        return None if held is None else held == value

    def verify_alone(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> bool | None:
        """`GET /api/v2/webhooks/{id}` of the webhook the write patched (`200 {"webhook": {...}}`,
        https://developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/#show-webhook):
        its endpoint must be the value; the list costs a request per 100 webhooks."""
        assert isinstance(consumer, ZendeskWebhook)
        if consumer.endpoint is None:
            return None
        body = api.get(f"/api/v2/webhooks/{observed.live_id}") or {}
        endpoint = (body.get("webhook") or {}).get("endpoint")
        return isinstance(endpoint, str) and Secret(endpoint) == value

    # scope scans and discovery -------------------------------------------------------------

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        return [ListKey(scope.provider, "webhooks")]

    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]:
        """Each webhook's endpoint (readable); a note for each credential in `authentication`
        (write-only)."""
        if key.resource != "webhooks":
            return [], []
        places: list[Place] = []
        notes: list[str] = []
        for row in rows:
            name = str(row.get("name") or row.get("id"))
            auth = row.get("authentication") or {}
            if auth.get("type"):
                notes.append(f"{key.provider}: Zendesk webhook {name!r} authenticates with {auth['type']}: "
                             "the credential is write-only, cannot tell which token")
            if row.get("endpoint") is not None:
                # `endpoint:` is what makes the value go into the URL: written even as a bare ${token}
                places.append(Place(key.provider, f"Zendesk webhook {name!r} (endpoint)",
                                    {"kind": self.kind, "provider": key.provider, "webhook": name},
                                    "endpoint", row["endpoint"], template_required=True))
        return places, notes


def _revealed(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def _endpoint(c: ZendeskWebhook, webhooks: list[dict[str, Any]]) -> Secret | None:
    hook = find_webhook(c, webhooks)
    endpoint = None if hook is None else hook.get("endpoint")
    return endpoint if isinstance(endpoint, Secret) else None


KIND = ZendeskWebhookKind()
