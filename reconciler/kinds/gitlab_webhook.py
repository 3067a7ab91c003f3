"""Consumer kind `gitlab_webhook`: the value goes into a project/group hook's secret `token`, a
URL variable or a custom header. All three are write-only (GitLab never returns them), so the
state comes from the ledger.

Observe: one `GET /{projects,groups}/:id/hooks` per project/group; the hook is matched by id, URL
or name. In `mode: recreate`, for a hook the plan writes only (`write_needs`), also one
`GET .../hooks/:id`, because the list omits the URL-variable and custom-header keys, and a
recreate that would drop values the inventory does not declare is refused. Write (`mode: update`): `PUT .../hooks/:id` with `token`
(and the unchanged `url`: a URL change without `token` clears it), or
`PUT .../hooks/:id/{url_variables,custom_headers}/:key`. `mode: recreate`: copy every readable
field, delete, create with the declared values re-supplied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from reconciler.inventory.checks import live_plain_http_findings, plain_http_findings, plain_http_host
from reconciler.inventory.model import Consumer, Diagnostic, Inventory, Token, finding
from reconciler.kinds import VALUE_TEMPLATE_PROPERTY, ConsumerKind, ListKey, Lists, Reading, Recreatable
from reconciler.kinds._discovery import Place, ScannedConsumer, ScanScope, listed
from reconciler.kinds._gitlab import PROVIDER_PROPERTY, fetched_row, rows
from reconciler.observed import ConsumerObservation
from reconciler.plan_model import Severity
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.inventory import build


@dataclass(frozen=True, kw_only=True)
class WebhookSecretField:
    """Where in a GitLab webhook the value goes."""

    field: Literal["token", "url_variable", "custom_header"] = "token"
    name: str | None = None  # key of the URL variable or custom header


@dataclass(frozen=True, kw_only=True)
class GitLabWebhook(Consumer):
    hook: str  # name of the hook, its URL, or its numeric id as a string
    project: str | None = None  # exactly one of project, group
    group: str | None = None
    target: WebhookSecretField = field(default_factory=WebhookSecretField)
    mode: Literal["recreate", "update"] = "update"
    # Values of the other URL variables / custom headers, which a recreate must re-supply
    # because GitLab never returns them. Plain, non-secret values only.
    url_variables: dict[str, str] = field(default_factory=dict)
    custom_headers: dict[str, str] = field(default_factory=dict)
    allow_plain_http: bool = False  # a hook URL http:// off this machine is an error without it
    kind: ClassVar[str] = "gitlab_webhook"

    @property
    def scope(self) -> str:
        return f"project:{self.project}" if self.project is not None else f"group:{self.group}"

    @property
    def identity(self) -> str:
        where = self.target.field if self.target.field == "token" else f"{self.target.field}:{self.target.name}"
        return f"{self.kind}:{self.provider}:{self.scope}:{self.hook}:{where}"

    @property
    def label(self) -> str:
        return f"webhook {self.hook!r} ({self.scope}, {self.target.field}{'' if self.target.name is None else ' ' + self.target.name})"


# Its definition in the inventory schema: $defs/consumer_gitlab_webhook.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A GitLab project or group webhook. Its secrets are unreadable, so reconcile records what it wrote.",
    "properties": {
        "kind": {"const": "gitlab_webhook", "description": "`gitlab_webhook`."},
        "provider": PROVIDER_PROPERTY,
        "value": VALUE_TEMPLATE_PROPERTY,
        "project": {
            "type": "string",
            "description": "Full path (or id) of the project owning the hook.",
            "minLength": 1,
        },
        "group": {
            "type": "string",
            "description": "Full path (or id) of the group owning the hook.",
            "minLength": 1,
        },
        "hook": {
            "type": "string",
            "description": "The hook: its name, its URL, or its numeric id.",
            "minLength": 1,
        },
        "mode": {
            "enum": ["recreate", "update"],
            "description": "`update` (default: change the secret in place) or `recreate` (copy every readable field, delete, create: the runbook's way).",
        },
        "secret": {
            "description": "Where the value goes: `token` (the secret token, default), `{url_variable: NAME}` or `{custom_header: NAME}`.",
            "oneOf": [
                {"title": "token", "const": "token"},
                {
                    "title": "{url_variable: NAME}",
                    "type": "object",
                    "properties": {
                        "url_variable": {
                            "type": "string",
                            "description": "Key of the URL variable that receives the value.",
                            "minLength": 1,
                        },
                    },
                    "required": ["url_variable"],
                    "additionalProperties": False,
                },
                {
                    "title": "{custom_header: NAME}",
                    "type": "object",
                    "properties": {
                        "custom_header": {
                            "type": "string",
                            "description": "Name of the custom header that receives the value.",
                            "minLength": 1,
                        },
                    },
                    "required": ["custom_header"],
                    "additionalProperties": False,
                },
            ],
        },
        "allow_plain_http": {
            "type": "boolean",
            "description": "Allow the hook to send the value (its secret token, URL variable or custom header) over plain `http://` to a host other than this machine, where it crosses the network in clear. Default `false`: a hook URL like that is an error (of validate when `hook` is the URL, of plan when the live hook has it).",
        },
        "url_variables": {
            "type": "object",
            "description": "Plain (non-secret) values of the hook's other URL variables, re-supplied on recreate because GitLab never returns them.",
            "additionalProperties": {"type": "string"},
        },
        "custom_headers": {
            "type": "object",
            "description": "Plain (non-secret) values of the hook's other custom headers, re-supplied on recreate because GitLab never returns them.",
            "additionalProperties": {"type": "string"},
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "hook"],
    "oneOf": [{"title": "project", "required": ["project"]}, {"title": "group", "required": ["group"]}],
}


def _list_key(c: GitLabWebhook) -> ListKey:
    if c.project is not None:
        return ListKey(c.provider, "project_hooks", c.project)
    return ListKey(c.provider, "group_hooks", str(c.group))


def _detail_key(c: GitLabWebhook, hook_id: str) -> ListKey:
    if c.project is not None:
        return ListKey(c.provider, "project_hook", f"{c.project}#{hook_id}")
    return ListKey(c.provider, "group_hook", f"{c.group}#{hook_id}")


def find_hook(c: GitLabWebhook, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in data:
        if str(row.get("id")) == c.hook or row.get("url") == c.hook or row.get("name") == c.hook:
            return row
    return None


def ambiguous(c: GitLabWebhook, data: list[dict[str, Any]]) -> str | None:
    """Why `c.hook` names no single hook (several share that URL or name), or None. An id is unique."""
    if any(str(row.get("id")) == c.hook for row in data):
        return None
    ids = [str(row.get("id")) for row in data if row.get("url") == c.hook or row.get("name") == c.hook]
    if len(ids) < 2:
        return None
    return (f"{len(ids)} hooks match {c.hook!r} (ids {', '.join(ids)}): name the hook by its id, so that "
            "the value does not go to the wrong one")


def _missing(consumer: Consumer) -> tuple[Severity, str, str]:
    """A hook that is not there: never created (a hook has more to it than the value: its URL,
    events and other secrets are someone's decisions)."""
    assert isinstance(consumer, GitLabWebhook)
    where = f"project {consumer.project}" if consumer.project is not None else f"group {consumer.group}"
    return ("error", "hook_missing",
            f"{consumer.label}: {where} has no hook {consumer.hook!r}; mode {consumer.mode} changes a hook that "
            "exists and apply never creates one: create the hook, or correct `hook:` (its id, URL or name)")


# An observation's details of a recreate hook the plan writes: the keys a recreate must re-supply.
LOST_KEYS = ("url_variable_keys", "custom_header_keys")


def _keys(items: Any) -> list[str]:
    return sorted(str(i.get("key")) for i in items or () if isinstance(i, dict))


class WebhookKind(ConsumerKind, Recreatable, ScannedConsumer):
    model = GitLabWebhook
    schema = SCHEMA
    kind = "gitlab_webhook"
    provider_kind = "gitlab"

    def check(self, token: Token, consumer: Consumer, inv: Inventory, path: str) -> list[Diagnostic]:
        """Plain values only beside the secret, the secret's key not also given a plain value, and
        no hook URL that would send the value in clear (GitLab sends all three with every event)."""
        hook = consumer
        assert isinstance(hook, GitLabWebhook)
        found = plain_http_findings(hook, "hook", path, hook.hook) + [
            finding(hook, key, path, f"{name}: plain values only here; the token goes where `secret:` says")
            for key, values in (("url_variables", hook.url_variables), ("custom_headers", hook.custom_headers))
            for name, value in values.items()
            if "${" in value
        ]
        target = hook.target
        if target.field == "url_variable" and target.name in hook.url_variables:
            found.append(finding(hook, "url_variables", path, f"{target.name} receives the token (secret.url_variable); do not also give it a plain value"))
        if target.field == "custom_header" and target.name in hook.custom_headers:
            found.append(finding(hook, "custom_headers", path, f"{target.name} receives the token (secret.custom_header); do not also give it a plain value"))
        return found

    def from_document(self, fields: dict[str, Any], at: build.Place) -> Consumer:
        """`secret:` (`token`, `{url_variable: K}` or `{custom_header: K}`) becomes `target`."""
        secret = fields.pop("secret", "token")
        if isinstance(secret, dict) and "url_variable" in secret:
            target = WebhookSecretField(field="url_variable", name=secret["url_variable"])
        elif isinstance(secret, dict):
            target = WebhookSecretField(field="custom_header", name=secret["custom_header"])
        else:
            target = WebhookSecretField(field="token")
        return GitLabWebhook(**fields, target=target, **at.where())
    def declared_url(self, consumer: Consumer) -> tuple[str, str] | None:
        """The hook named by its URL (its URL variables stand in braces)."""
        assert isinstance(consumer, GitLabWebhook)
        return ("hook", consumer.hook) if consumer.hook.startswith(("https://", "http://")) else None

    def recreates(self, consumer: Consumer) -> bool:
        assert isinstance(consumer, GitLabWebhook)
        return consumer.mode == "recreate"

    def copies(self, consumer: Consumer) -> str:
        """The create copies what GitLab returns of the hook and what the inventory declares;
        the secret token, URL variables and headers it does not declare are never returned."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        declared = [f"URL variable {k}" for k in sorted(c.url_variables)]
        declared += [f"custom header {k}" for k in sorted(c.custom_headers)]
        where = "secret token" if c.target.field == "token" else f"{c.target.field.replace('_', ' ')} {c.target.name}"
        return ("the hook is deleted and created again from a copy of its readable fields (url, name, events, SSL "
                f"verification){', the declared ' + ', '.join(declared) if declared else ''} and the value in its "
                f"{where}")

    def place(self, consumer: Consumer) -> str:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        return f"{c.kind}:{c.provider}:{c.scope}:{c.hook}"  # its consumers share the object a write reads and puts back

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        assert isinstance(consumer, GitLabWebhook)
        return [_list_key(consumer)]

    def write_needs(self, consumer: Consumer, observation: ConsumerObservation) -> list[ListKey]:
        """mode recreate: the hook's detail (the list omits its URL-variable and custom-header
        keys), to tell whether the recreate would lose a value."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        if c.mode != "recreate" or observation.live_id is None or LOST_KEYS[0] in observation.details:
            return []
        return [_detail_key(c, observation.live_id)]

    def observe_write(self, consumer: Consumer, observation: ConsumerObservation, lists: Lists) -> ConsumerObservation:
        """The keys of the hook's URL variables and custom headers, from its detail; a detail that
        could not be read makes the hook's observation an error (the recreate is not planned)."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        if not self.write_needs(c, observation):
            return observation
        hook_id = str(observation.live_id)
        detail, error = fetched_row(lists, _detail_key(c, hook_id))
        if error or detail is None:
            return ConsumerObservation(identity=c.identity, token=observation.token, readable=False, state="error",
                                       live_id=hook_id, error=error or "hook detail not fetched")
        details = {**observation.details, LOST_KEYS[0]: _keys(detail.get("url_variables")),
                   LOST_KEYS[1]: _keys(detail.get("custom_headers"))}
        return replace(observation, details=details)

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        seen = partial(ConsumerObservation, identity=c.identity, token=token.name, readable=False)
        data, error = rows(lists, _list_key(c))
        if error or data is None:
            return Reading(seen(state="error", error=error or "not fetched"))
        several = ambiguous(c, data)
        if several:
            return Reading(seen(state="error", error=several))
        hook = find_hook(c, data)
        if hook is None:
            return Reading(seen(state="missing", exists=False, details={"missing": "hook"}))
        details: dict[str, Any] = {"hook_id": str(hook["id"]), "token_present": hook.get("token_present")}
        if host := plain_http_host(hook.get("url")):  # only then: other plans' digests stay as they were
            details["plain_http"] = host
        return Reading(seen(state="unverifiable", live_id=str(hook["id"]), details=details))

    def _findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[Severity, str, str]]:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        if c.mode != "recreate" or not writing or not observation.exists:
            return []
        if LOST_KEYS[0] not in observation.details:  # planned without `observe_write`: cannot tell
            return [("error", "recreate_unchecked",
                     f"{c.label}: the hook's detail was not read, so whether mode recreate would lose a URL variable "
                     "or custom header cannot be told")]
        target = c.target
        lost = []
        for what, live_keys, declared in (
            ("URL variable", observation.details[LOST_KEYS[0]], c.url_variables),
            ("custom header", observation.details[LOST_KEYS[1]], c.custom_headers),
        ):
            field = "url_variable" if what == "URL variable" else "custom_header"
            for key in live_keys:
                if key not in declared and not (target.field == field and target.name == key):
                    lost.append(f"{what} {key!r}")
        if target.field != "token" and observation.details.get("token_present"):
            lost.append("the secret token")
        if not lost:
            return []
        return [("error", "recreate_loses_values",
                 f"{c.label}: mode recreate would lose {', '.join(lost)}: GitLab never returns these values; "
                 "declare them under url_variables/custom_headers, or use mode: update")]

    def findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[Severity, str, str]]:
        if not observation.exists and observation.error is None:
            return [_missing(consumer)]
        return (self._findings(consumer, observation, writing) + self._id_findings(consumer, writing)
                + live_plain_http_findings(consumer, observation.details, "the value"))

    def _id_findings(self, consumer: Consumer, writing: bool) -> list[tuple[Severity, str, str]]:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        if c.mode == "recreate" and writing and c.hook.isdigit():
            return [("error", "recreate_by_id",
                     f"{c.label}: mode recreate gives the hook a new id, so a hook named by its id would not be "
                     "found again: name it by its URL or name")]
        return []

    # apply ------------------------------------------------------------------------------------

    def _manager(self, api: Any, c: GitLabWebhook) -> Any:
        if c.project is not None:
            return api.gl.projects.get(c.project, lazy=True).hooks
        return api.gl.groups.get(str(c.group), lazy=True).hooks

    def listed(self, consumer: Consumer, observed: ConsumerObservation, lists: Lists) -> dict[str, Any] | None:
        """The hook as observe read it: its row in the list (mode update: the url to send back)
        or, in mode recreate, its detail (the readable fields and the URL-variable and header
        keys). None when observe has not got it; `write` then reads it."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        hook_id = observed.live_id
        if hook_id is None:
            return None
        if c.mode == "recreate":
            detail, error = fetched_row(lists, _detail_key(c, hook_id))
            found = None if detail is None else [detail]
        else:
            found, error = rows(lists, _list_key(c))
        if error or found is None:
            return None
        return next((row for row in found if str(row.get("id")) == str(hook_id)), None)

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation, *,
              before_delete: Callable[[dict[str, Any]], None] | None = None,
              listed: dict[str, Any] | None = None, after_create: Callable[[str], None] | None = None) -> None:
        """mode update: `PUT .../hooks/:id {token}` or `PUT .../hooks/:id/{url_variables,custom_headers}/:key`.
        mode recreate: `GET .../hooks/:id` (every readable field), refuse if a value would be lost,
        `DELETE` it, `POST` a copy with the declared values and the new one. Never python-gitlab's
        `save()`: it resends URL variables without values, which GitLab refuses. `before_delete`
        receives the readable copy first, so that apply can persist it: a crash between the delete
        and the create must not lose the hook (`recreate_from`). `listed`: the hook as observe
        read it this run (`listed()`), used instead of reading it again; the plan that decided
        this write was made from the same data. `after_create` receives the new hook id of a
        recreate."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        hook_id = observed.live_id or observed.details.get("hook_id")
        if hook_id is None:
            raise ValueError(f"{c.label}: the hook does not exist")
        manager = self._manager(api, c)
        if c.mode == "update":
            if c.target.field == "token":
                # with the unchanged url (older GitLab versions require it; the same url never
                # resets the token or the URL variables)
                url = (listed or {}).get("url") or manager.get(int(hook_id)).asdict()["url"]
                api.gl.http_put(f"{manager.path}/{hook_id}", post_data={"url": url, "token": value.reveal()})
            else:
                path = f"{manager.path}/{hook_id}/{c.target.field}s/{c.target.name}"
                api.gl.http_put(path, post_data={"value": value.reveal()})
            return
        detail = listed if listed is not None else manager.get(int(hook_id)).asdict()
        copy = recreate_payload(c, detail, value)
        if before_delete is not None:
            before_delete(readable_copy(detail))
        manager.delete(int(hook_id))
        # never retried: a create whose answer was lost (timeout) has happened, and GitLab allows
        # two hooks with one URL, so a retry would leave a duplicate holding the value
        created = manager.create(copy, retry_transient_errors=False)
        if after_create is not None:
            after_create(str(created.get_id()))

    def recreate_from(self, api: Any, consumer: Consumer, saved: Mapping[str, Any], value: Secret | None) -> str:
        """Create the hook again from the readable fields an interrupted recreate saved (the
        delete went through, the create did not). Returns the new hook id."""
        c = consumer
        assert isinstance(c, GitLabWebhook)
        payload = recreate_payload(c, saved, value, check=False)
        return str(self._manager(api, c).create(payload, retry_transient_errors=False).get_id())

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        return None  # write-only: the ledger records what was written

    # scope scans and discovery -------------------------------------------------------------

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The hooks of each project and group of the scope, then each hook's detail: the list
        omits the keys of its URL variables and custom headers."""
        keys = ([ListKey(scope.provider, "project_hooks", path) for path in scope.projects]
                + [ListKey(scope.provider, "group_hooks", path) for path in scope.groups])
        for key in list(keys):
            keys += [ListKey(key.provider, key.resource[:-1], f"{key.scope}#{row['id']}")
                     for row in listed(lists, key) or ()]
        return keys

    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]:
        """No readable place (a hook's secrets are write-only): a note for each hook that has one."""
        if key.resource not in ("project_hooks", "group_hooks"):
            return [], []
        notes = []
        for row in rows:
            detail = listed(lists, ListKey(key.provider, key.resource[:-1], f"{key.scope}#{row['id']}")) or row
            variables, headers = _named(detail.get("url_variables")), _named(detail.get("custom_headers"))
            secrets = [what for what, present in (
                ("a secret token", row.get("token_present")),
                ("URL variables " + ", ".join(variables), variables),
                ("custom headers " + ", ".join(headers), headers),
            ) if present]
            if secrets:
                notes.append(f"{key.provider}: webhook {row.get('url')} ({key.resource.split('_')[0]} {key.scope}) "
                             f"has {' and '.join(secrets)}: write-only, cannot tell which token")
        return [], notes


def _named(items: Any) -> list[str]:
    """Keys of a hook's URL variables / custom headers (a list of {key} or a mapping)."""
    if isinstance(items, dict):
        return sorted(str(k) for k in items)
    return _keys(items)


READ_ONLY = {"id", "created_at", "alert_status", "disabled_until", "token_present", "signing_token_present",
             "project_id", "group_id", "url_variables", "custom_headers", "repository_update_events"}


def readable_copy(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a hook detail a create accepts back (no secret is ever among them)."""
    return {k: v for k, v in detail.items() if k not in READ_ONLY and v is not None}


def recreate_payload(c: GitLabWebhook, detail: Mapping[str, Any], value: Secret | None, *,
                     check: bool = True) -> dict[str, Any]:
    """A create body copying every readable field of `detail`, the declared URL variables and
    custom headers, and `value` in the target field. Refuses (ValueError) when the live hook holds
    a write-only value the inventory does not declare."""
    if check:
        lost = [f"URL variable {k!r}" for k in _keys(detail.get("url_variables"))
                if k not in c.url_variables and not (c.target.field == "url_variable" and c.target.name == k)]
        lost += [f"custom header {k!r}" for k in _keys(detail.get("custom_headers"))
                 if k not in c.custom_headers and not (c.target.field == "custom_header" and c.target.name == k)]
        if c.target.field != "token" and detail.get("token_present"):
            lost.append("the secret token")
        if lost:
            raise ValueError(f"{c.label}: recreate refused: it would lose {', '.join(lost)} (GitLab never returns "
                             "these values); declare them, or use mode: update")
    payload = readable_copy(detail)
    variables = dict(c.url_variables)
    headers = dict(c.custom_headers)
    if value is not None:
        if c.target.field == "token":
            payload["token"] = value.reveal()
        elif c.target.field == "url_variable":
            variables[str(c.target.name)] = value.reveal()
        else:
            headers[str(c.target.name)] = value.reveal()
    if variables:
        payload["url_variables"] = [{"key": k, "value": v} for k, v in variables.items()]
    if headers:
        payload["custom_headers"] = [{"key": k, "value": v} for k, v in headers.items()]
    return payload


KIND = WebhookKind()
