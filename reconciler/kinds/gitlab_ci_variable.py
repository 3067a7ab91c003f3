"""Consumer kind `gitlab_ci_variable`: a project, group or instance CI/CD variable.

Observe: one `GET /{projects/:id,groups/:id,admin/ci}/variables` per scope, pages followed; the
variable is the one with the key and environment scope. Readable unless hidden (GitLab returns
`value: null`). Write: update in place with `filter[environment_scope]`, sending only the value
and the attributes the inventory manages; create when missing. `hidden` can only be set at
creation, and `masked` cannot change on a hidden variable (GitLab refuses both on update).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

from reconciler.inventory.model import Consumer, Diagnostic, Inventory, Token, finding
from reconciler.kinds import (
    VALUE_TEMPLATE_PROPERTY,
    AttributeWritable,
    ConsumerKind,
    Creatable,
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
from reconciler.kinds._gitlab import PER_PAGE, PROVIDER_PROPERTY, rows
from reconciler.observed import ConsumerObservation
from reconciler.plan_model import Severity
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class GitLabCiVariable(Consumer):
    key: str
    project: str | None = None  # exactly one of project, group, instance
    group: str | None = None
    instance: bool = False
    environment_scope: str = "*"
    # Attributes the inventory manages when set; None means "leave as it is".
    masked: bool | None = None
    protected: bool | None = None
    hidden: bool | None = None  # only settable at creation (GitLab: masked_and_hidden)
    raw: bool | None = None
    variable_type: Literal["env_var", "file"] | None = None
    description: str | None = None
    kind: ClassVar[str] = "gitlab_ci_variable"

    @property
    def scope(self) -> str:
        if self.project is not None:
            return f"project:{self.project}"
        if self.group is not None:
            return f"group:{self.group}"
        return "instance"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.scope}:{self.key}:{self.environment_scope}"

    @property
    def label(self) -> str:
        return f"CI variable {self.key} ({self.scope}, scope {self.environment_scope})"


MANAGED = ("masked", "protected", "hidden", "raw", "variable_type", "description")

# GitLab's masking rules (Ci::Maskable::REGEX and MASK_AND_RAW_REGEX, see
# ../shared/reference/gitlab-api.md section 4): masked values are >= 8 characters of this
# alphabet; masked raw values are >= 8 characters of anything but whitespace.
MASKABLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=/@:.~-")


_PLACEHOLDERS = re.compile(r"\$\{token(\.[A-Za-z0-9_]+)?\}")


def _masking_findings(token: Token, var: GitLabCiVariable, path: str) -> list[Diagnostic]:
    """A masked variable's template must leave only maskable characters around ${token}, and the
    source's values must be maskable too."""
    allowed_desc = "any non-whitespace character" if var.raw else "letters, digits and _+=/@:.~-"
    literal = _PLACEHOLDERS.sub("", var.value)  # a part's characters are the value's (an identifier's are maskable)
    bad = sorted({c for c in literal if (c.isspace() if var.raw else c not in MASKABLE_CHARS)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return [finding(var, "value", path,
                        f"a masked variable cannot hold {var.value!r}: {shown} not allowed (GitLab masks only values of {allowed_desc}, 8 or more)")]
    alphabet = source_kind(token.source.kind).value_alphabet
    # An external value is typed in by a person at apply time; a value GitLab refuses to
    # mask fails that write before anything was revoked, so it is not worth a warning here.
    if alphabet is not None and not var.raw and not alphabet <= MASKABLE_CHARS:
        return [finding(var, "masked", path, f"{token.source.kind} values can contain characters GitLab cannot mask")]
    return []


# Its definition in the inventory schema: $defs/consumer_gitlab_ci_variable.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A GitLab CI/CD variable of a project, a group or the instance; updated in place.",
    "properties": {
        "kind": {"const": "gitlab_ci_variable", "description": "`gitlab_ci_variable`."},
        "provider": PROVIDER_PROPERTY,
        "value": VALUE_TEMPLATE_PROPERTY,
        "project": {
            "type": "string",
            "description": "Full path (or id) of the project owning the variable.",
            "minLength": 1,
        },
        "group": {
            "type": "string",
            "description": "Full path (or id) of the group owning the variable.",
            "minLength": 1,
        },
        "instance": {"const": True, "description": "`true` for an instance-level variable (needs an administrator)."},
        "key": {"type": "string", "description": "The variable's key.", "pattern": "^[A-Za-z0-9_]+$"},
        "environment_scope": {
            "type": "string",
            "description": "Environment scope (projects and groups); default `*`.",
            "minLength": 1,
        },
        "masked": {
            "type": "boolean",
            "description": "Mask the value in job logs (GitLab's masking rules then apply to the value). Unset: leave as it is.",
        },
        "protected": {
            "type": "boolean",
            "description": "Expose only to protected branches and tags. Unset: leave as it is.",
        },
        "hidden": {
            "type": "boolean",
            "description": "Masked and hidden: never shown again, even in the UI. Only settable when the variable is created; needs `masked: true`.",
        },
        "raw": {
            "type": "boolean",
            "description": "Do not expand `$` references in the value. Unset: leave as it is.",
        },
        "variable_type": {"enum": ["env_var", "file"], "description": "`env_var` or `file`. Unset: leave as it is."},
        "description": {"type": "string", "description": "The variable's description in GitLab. Unset: leave as it is."},
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "key"],
    "oneOf": [
        {"title": "project", "required": ["project"]},
        {"title": "group", "required": ["group"]},
        {"title": "instance", "required": ["instance"]},
    ],
}


def _key(c: GitLabCiVariable) -> ListKey:
    if c.project is not None:
        return ListKey(c.provider, "project_variables", c.project)
    if c.group is not None:
        return ListKey(c.provider, "group_variables", c.group)
    return ListKey(c.provider, "instance_variables", "")


def _held(row: dict[str, Any]) -> Secret | None:
    """The value of a variable as one GET answers it; None for null (hidden) and ""."""
    held = row.get("value")
    return Secret(held) if isinstance(held, str) and held else None


def _verdict(row: dict[str, Any], held: Secret | None, value: Secret) -> bool | None:
    """Whether the variable `row` holds `value`: None when hidden (GitLab answers `value: null`),
    False when it holds nothing and is not hidden."""
    if held is None:
        return None if row.get("hidden", True) else False
    return held == value


class CiVariableKind(ConsumerKind, Creatable, Readable, ListVerifiable, VerifiableAlone, AttributeWritable,
                     ScannedConsumer):
    model = GitLabCiVariable
    schema = SCHEMA
    kind = "gitlab_ci_variable"
    provider_kind = "gitlab"
    list_page_size = PER_PAGE

    def check(self, token: Token, consumer: Consumer, inv: Inventory, path: str) -> list[Diagnostic]:
        """GitLab's rules for hidden, instance and masked variables."""
        var = consumer
        assert isinstance(var, GitLabCiVariable)
        found = []
        if var.hidden and not var.masked:
            found.append(finding(var, "hidden", path, "hidden: true needs masked: true (GitLab: masked should be true when variable is hidden)"))
        if var.instance:
            if var.hidden is not None:
                found.append(finding(var, "hidden", path, "instance variables cannot be hidden"))
            if "environment_scope" in var.key_pos:
                found.append(finding(var, "environment_scope", path, "instance variables have no environment scope"))
        if var.masked or var.hidden:
            found += _masking_findings(token, var, path)
        return found

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        assert isinstance(consumer, GitLabCiVariable)
        return [_key(consumer)]

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, GitLabCiVariable)
        seen = partial(ConsumerObservation, identity=c.identity, token=token.name)
        data, error = rows(lists, _key(c))
        if error or data is None:
            return Reading(seen(state="error", readable=False, error=error or "not fetched"))
        for row in data:
            scope_ok = c.instance or row.get("environment_scope", "*") == c.environment_scope
            if row.get("key") == c.key and scope_ok:
                break
        else:
            return Reading(seen(state="missing", readable=True, exists=False))
        held: Secret | None = row.get("value")
        hidden = bool(row.get("hidden"))
        attributes = {name: row.get(name) for name in MANAGED if name in row}
        attributes.setdefault("hidden", hidden)
        readable = not hidden
        observation = seen(
            state="unverifiable",  # the planner decides from fingerprint, identity and ledger
            readable=readable,
            live_id=c.key,
            fingerprint=held.fingerprint() if readable and held is not None else None,
            attributes=attributes,
        )
        return Reading(observation, held if readable else None, extract(c.value, held) if readable else None)

    def desired_attributes(self, consumer: Consumer) -> dict[str, Any]:
        assert isinstance(consumer, GitLabCiVariable)
        return {name: getattr(consumer, name) for name in MANAGED if getattr(consumer, name) is not None}

    def findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[Severity, str, str]]:
        assert isinstance(consumer, GitLabCiVariable)
        out: list[tuple[Severity, str, str]] = []
        live = observation.attributes
        if observation.exists and consumer.hidden is not None and bool(live.get("hidden")) != consumer.hidden:
            out.append(("error", "hidden_immutable",
                        f"{consumer.label}: GitLab sets `hidden` only at creation (live: {bool(live.get('hidden'))}, "
                        f"declared: {consumer.hidden}); delete the variable to change it"))
        if (observation.exists and live.get("hidden") and consumer.masked is not None
                and bool(live.get("masked")) != consumer.masked):
            out.append(("error", "masked_immutable",
                        f"{consumer.label}: GitLab refuses to change `masked` on a hidden variable"))
        return out

    # apply ------------------------------------------------------------------------------------

    def _manager(self, api: Any, c: GitLabCiVariable) -> Any:
        if c.project is not None:
            return api.gl.projects.get(c.project, lazy=True).variables
        if c.group is not None:
            return api.gl.groups.get(c.group, lazy=True).variables
        return api.gl.variables

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        """PUT .../variables/:key?filter[environment_scope]= (partial), or POST when missing."""
        c = consumer
        assert isinstance(c, GitLabCiVariable)
        attrs = {k: v for k, v in self.desired_attributes(c).items() if k != "hidden" or not observed.exists}
        manager = self._manager(api, c)
        if observed.exists:
            attrs.pop("hidden", None)
            if observed.attributes.get("hidden"):
                attrs.pop("masked", None)
            filt = {} if c.instance else {"filter": {"environment_scope": c.environment_scope}}
            manager.update(c.key, {"value": value.reveal(), **attrs}, **filt)
        else:
            data: dict[str, Any] = {"key": c.key, "value": value.reveal(), **attrs}
            if data.pop("hidden", None):
                data["masked_and_hidden"] = True
                data["masked"] = True
            if not c.instance:
                data["environment_scope"] = c.environment_scope
            manager.create(data)

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        held = self._get(api, consumer).get("value")
        if held is None:
            return None  # hidden: write-only
        return Secret(held) == value

    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        assert isinstance(consumer, GitLabCiVariable)
        return [_key(consumer)]

    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        """The variable in its scope's list (fetched after the writes; values are complete in
        lists): None when hidden (GitLab returns `value: null`), else whether it is `value`."""
        c = consumer
        assert isinstance(c, GitLabCiVariable)
        for row in read_back(lists, _key(c)):
            if row.get("key") == c.key and (c.instance or row.get("environment_scope", "*") == c.environment_scope):
                return _verdict(row, row.get("value"), value)  # None for null and "" (see _gitlab.secret_field)
        raise LookupError(f"{c.label}: not in the list read back after writing")

    def verify_alone(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> bool | None:
        """`verify_listed` from `GET .../variables/:key` (with `filter[environment_scope]`): one
        request where the scope's list costs one per 100 variables."""
        row = self._get(api, consumer)
        return _verdict(row, _held(row), value)

    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        return _held(self._get(api, consumer))

    def _get(self, api: Any, consumer: Consumer) -> dict[str, Any]:
        c = consumer
        assert isinstance(c, GitLabCiVariable)
        filt = {} if c.instance else {"filter": {"environment_scope": c.environment_scope}}
        return dict(self._manager(api, c).get(c.key, **filt).asdict())

    def write_attributes(self, api: Any, consumer: Consumer, observed: ConsumerObservation) -> bool:
        """PUT without `value`: GitLab keeps every omitted field, the value included."""
        c = consumer
        assert isinstance(c, GitLabCiVariable)
        if not observed.exists:
            return False
        attrs = {k: v for k, v in self.desired_attributes(c).items() if k != "hidden"}
        if observed.attributes.get("hidden"):
            attrs.pop("masked", None)
        if attrs:
            filt = {} if c.instance else {"filter": {"environment_scope": c.environment_scope}}
            self._manager(api, c).update(c.key, attrs, **filt)
        return True

    # scope scans and discovery -------------------------------------------------------------

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The variables of each project and group of the scope."""
        return ([ListKey(scope.provider, "project_variables", path) for path in scope.projects]
                + [ListKey(scope.provider, "group_variables", path) for path in scope.groups])

    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]:
        """Every variable whose value GitLab returns; a note for each hidden one (write-only)."""
        if key.resource not in ("project_variables", "group_variables"):
            return [], []
        scope_kind = key.resource.split("_")[0]
        places: list[Place] = []
        notes: list[str] = []
        for row in rows:
            label = f"CI variable {row.get('key')} ({scope_kind} {key.scope}, scope {row.get('environment_scope', '*')})"
            if row.get("value") is not None:
                places.append(Place(key.provider, label, self._declaration(key, scope_kind, row), "value", row["value"]))
            elif row.get("hidden"):
                notes.append(f"{key.provider}: {label} is hidden: write-only, its token cannot be told")
        return places, notes

    def _declaration(self, key: ListKey, scope_kind: str, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "provider": key.provider, scope_kind: key.scope, "key": row.get("key")}
        if row.get("environment_scope", "*") != "*":
            out["environment_scope"] = row["environment_scope"]
        out["masked"] = bool(row.get("masked"))
        out["protected"] = bool(row.get("protected"))
        if row.get("raw"):
            out["raw"] = True
        if row.get("variable_type") == "file":
            out["variable_type"] = "file"
        return out


KIND = CiVariableKind()
