"""Consumer kind `gitlab_pipeline_schedule_variable`: a variable of a project's pipeline schedule,
where support teams keep the tokens their scheduled jobs use.

The schedule is named by its description, which GitLab does not keep unique: none or several
schedules so described is an error naming them, and `schedule_id` settles which one is meant.

Observe: `GET /projects/:id/pipeline_schedules` per project (the list carries no variables), then,
in the next round, one `GET .../pipeline_schedules/:schedule_id` per schedule however many of its
variables the inventory names: the detail carries `variables` with their values in plain, but only
for a Maintainer or the schedule's owner. Also the tool's user (`GET /user`, shared with the PAT
kind): only the schedule's owner or an administrator may create or edit its variables (GitLab
answers 403 to a Maintainer who does not own it), so a write to another user's schedule is a plan
error naming the owner. Ownership is never taken here: the schedule's pipelines would then run as
the tool's user.

Write: `PUT .../variables/:key` (or `POST .../variables` when missing) with the value and the
variable type when the inventory sets it. Read back: the project's schedules listed again and a
fresh `GET` of the schedule, once for all of its variables a token wrote.

Discover: the schedules of every project in the scopes and each one's detail; every variable with
a value is a candidate place, declared with `schedule_id` where the description is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from reconciler.inventory.model import Consumer, Token
from reconciler.kinds import (
    AttributeWritable,
    ConsumerKind,
    Creatable,
    ListKey,
    Lists,
    ListVerifiable,
    Readable,
    Reading,
    extract,
    read_back,
)
from reconciler.kinds._discovery import Place, ScannedConsumer, ScanScope, listed
from reconciler.kinds._gitlab import api_path, fetcher, list_all, rows, secret_field
from reconciler.observed import ConsumerObservation
from reconciler.plan_model import Severity
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class GitLabPipelineScheduleVariable(Consumer):
    project: str
    schedule: str  # the schedule's description
    key: str
    schedule_id: int | None = None  # which schedule, when several share the description
    variable_type: Literal["env_var", "file"] | None = None  # None: leave as it is
    kind: ClassVar[str] = "gitlab_pipeline_schedule_variable"

    @property
    def schedule_words(self) -> str:
        named = f"pipeline schedule {self.schedule!r}"
        return named if self.schedule_id is None else f"{named} (#{self.schedule_id})"

    @property
    def identity(self) -> str:
        which = self.schedule if self.schedule_id is None else f"{self.schedule}#{self.schedule_id}"
        return f"{self.kind}:{self.provider}:project:{self.project}:{which}:{self.key}"

    @property
    def label(self) -> str:
        return f"schedule variable {self.key} (project {self.project}, {self.schedule_words})"


# Its definition in the inventory schema: $defs/consumer_gitlab_pipeline_schedule_variable.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A variable of a GitLab pipeline schedule (the schedule named by its description); updated "
                   "in place. Only the schedule's owner or an administrator can write it.",
    "properties": {
        "kind": {"const": "gitlab_pipeline_schedule_variable", "description": "`gitlab_pipeline_schedule_variable`."},
        "provider": {
            "type": "string",
            "description": "Name of the GitLab provider (a key under `providers`).",
            "minLength": 1,
        },
        "value": {
            "$ref": "#/$defs/template",
            "description": "What the consumer receives: a template in which `${token}` stands for the token value. "
                           "Default `${token}`.",
        },
        "project": {
            "type": "string",
            "description": "Full path (or id) of the project owning the schedule.",
            "minLength": 1,
        },
        "schedule": {
            "type": "string",
            "description": "The pipeline schedule's description. GitLab does not keep descriptions unique: when "
                           "several schedules share it, `schedule_id` says which one.",
            "minLength": 1,
        },
        "schedule_id": {
            "type": "integer",
            "description": "The schedule's id, when its description is not unique in the project; the schedule "
                           "must still have the description `schedule`.",
            "minimum": 1,
        },
        "key": {"type": "string", "description": "The variable's key.", "pattern": "^[A-Za-z0-9_]+$"},
        "variable_type": {"enum": ["env_var", "file"], "description": "`env_var` or `file`. Unset: leave as it is."},
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "project", "schedule", "key"],
}


# --- list calls ----------------------------------------------------------------------------------


@fetcher("pipeline_schedules")
def fetch_pipeline_schedules(api: Any, scope: str) -> list[dict[str, Any]]:
    """A project's schedules (`GET /projects/:id/pipeline_schedules`): ids, descriptions, owners."""
    return list_all(api, api_path("projects", scope, "pipeline_schedules"))


@fetcher("pipeline_schedule", many=False)
def fetch_pipeline_schedule(api: Any, scope: str) -> dict[str, Any]:
    """One schedule (`project#id`) with its variables, their values wrapped in `Secret`; no
    `variables` key when the caller may not read them."""
    path, _, schedule_id = scope.rpartition("#")
    detail = dict(api.gl.http_get(api_path("projects", path, f"pipeline_schedules/{int(schedule_id)}")))
    if isinstance(detail.get("variables"), list):
        detail["variables"] = secret_field([dict(v) for v in detail["variables"]], "value")
    return detail


@fetcher("described_pipeline_schedules")
def fetch_described_pipeline_schedules(api: Any, scope: str) -> list[dict[str, Any]]:
    """The schedules of a project with a given description (`project#description`), each in
    detail: what a read-back after writing needs, one list and one GET per schedule however many
    of its variables were written."""
    path, _, description = scope.partition("#")  # a project path or id has no `#`
    listed = fetch_pipeline_schedules(api, path)
    return [fetch_pipeline_schedule(api, f"{path}#{s['id']}") for s in listed if s.get("description") == description]


def _schedules_key(c: GitLabPipelineScheduleVariable) -> ListKey:
    return ListKey(c.provider, "pipeline_schedules", c.project)


def _schedule_key(c: GitLabPipelineScheduleVariable, schedule_id: int) -> ListKey:
    return ListKey(c.provider, "pipeline_schedule", f"{c.project}#{schedule_id}")


def _read_back_key(c: GitLabPipelineScheduleVariable) -> ListKey:
    return ListKey(c.provider, "described_pipeline_schedules", f"{c.project}#{c.schedule}")


def _user_key(c: GitLabPipelineScheduleVariable) -> ListKey:
    return ListKey(c.provider, "user")


def which_schedule(c: GitLabPipelineScheduleVariable, schedules: list[dict[str, Any]]) -> tuple[int | None, str | None]:
    """(id, None) of the one schedule `c` names, (None, None) when none has its description, or
    (None, why) when the name does not settle it."""
    if c.schedule_id is not None:
        row = next((s for s in schedules if s.get("id") == c.schedule_id), None)
        if row is None:
            return None, f"project {c.project} has no pipeline schedule #{c.schedule_id}"
        if row.get("description") != c.schedule:
            return None, (f"pipeline schedule #{c.schedule_id} of project {c.project} is described "
                          f"{row.get('description')!r}, not {c.schedule!r}")
        return c.schedule_id, None
    ids = [int(s["id"]) for s in schedules if s.get("description") == c.schedule]
    if len(ids) > 1:
        return None, (f"{len(ids)} pipeline schedules of project {c.project} are described {c.schedule!r} "
                      f"({', '.join(f'#{i}' for i in sorted(ids))}): set schedule_id to the one meant")
    return (ids[0], None) if ids else (None, None)


def _resolved(c: GitLabPipelineScheduleVariable, lists: Lists) -> tuple[int | None, str | None]:
    data, error = rows(lists, _schedules_key(c))
    if error or data is None:
        return None, error
    assert isinstance(data, list)
    return which_schedule(c, data)


def _writable(detail: dict[str, Any], user: dict[str, Any]) -> bool:
    """Whether the tool's user may write the schedule's variables: its owner, or an administrator."""
    owner = detail.get("owner") or {}
    return bool(user.get("is_admin")) or (owner.get("id") is not None and owner.get("id") == user.get("id"))


# --- the kind ------------------------------------------------------------------------------------


class PipelineScheduleVariableKind(ConsumerKind, Creatable, Readable, ListVerifiable, AttributeWritable,
                                   ScannedConsumer):
    model = GitLabPipelineScheduleVariable
    schema = SCHEMA
    kind = "gitlab_pipeline_schedule_variable"
    provider_kind = "gitlab"

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        """The project's schedules and the tool's user; then the named schedule's detail."""
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        keys = [_schedules_key(c), _user_key(c)]
        schedule_id, _ = _resolved(c, lists)
        if schedule_id is not None:
            keys.append(_schedule_key(c, schedule_id))
        return keys

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        base: dict[str, Any] = {"identity": c.identity, "token": token.name}
        schedule_id, error = _resolved(c, lists)
        if error:
            return Reading(ConsumerObservation(**base, state="error", readable=False, error=error))
        if schedule_id is None:
            if rows(lists, _schedules_key(c))[0] is None:
                return Reading(ConsumerObservation(**base, state="error", readable=False, error="not fetched"))
            return Reading(ConsumerObservation(**base, state="missing", readable=False, exists=False, details={
                "missing": f"{c.schedule_words} of project {c.project}", "creatable": False}))
        detail, error = rows(lists, _schedule_key(c, schedule_id))
        user, user_error = rows(lists, _user_key(c))
        if error or user_error or not isinstance(detail, dict) or not isinstance(user, dict):
            return Reading(ConsumerObservation(**base, state="error", readable=False,
                                               error=error or user_error or "not fetched"))
        return self._reading(c, base, schedule_id, detail, user)

    def _reading(self, c: GitLabPipelineScheduleVariable, base: dict[str, Any], schedule_id: int,
                 detail: dict[str, Any], user: dict[str, Any]) -> Reading:
        owner = (detail.get("owner") or {}).get("username")
        details = {"schedule_id": schedule_id, "owner": owner, "writable": _writable(detail, user)}
        variables = detail.get("variables")
        if variables is None:
            return Reading(ConsumerObservation(**base, state="error", readable=False, details=details, error=(
                f"the variables of pipeline schedule #{schedule_id} (owned by @{owner}) are hidden from "
                "reconcile's user: GitLab shows them to a Maintainer or the schedule's owner")))
        row = next((v for v in variables if v.get("key") == c.key), None)
        if row is None:
            return Reading(ConsumerObservation(**base, state="missing", readable=True, exists=False,
                                               details={**details, "missing": "variable"}))
        held: Secret | None = row.get("value")
        observation = ConsumerObservation(
            **base,
            state="unverifiable",  # the planner decides from fingerprint, identity and ledger
            readable=True,
            live_id=c.key,
            fingerprint=held.fingerprint() if held is not None else None,
            attributes={"variable_type": row.get("variable_type")},
            details=details,
        )
        return Reading(observation, held, extract(c.value, held))

    def desired_attributes(self, consumer: Consumer) -> dict[str, Any]:
        assert isinstance(consumer, GitLabPipelineScheduleVariable)
        return {} if consumer.variable_type is None else {"variable_type": consumer.variable_type}

    def findings(self, consumer: Consumer, observation: ConsumerObservation,
                 writing: bool) -> list[tuple[Severity, str, str]]:
        """Another user's schedule: an error before any write (GitLab would refuse it midway), a
        warning otherwise (the next rotation will need it)."""
        if observation.details.get("writable", True):
            return []
        owner, schedule_id = observation.details.get("owner"), observation.details.get("schedule_id")
        why = (f"{consumer.label}: pipeline schedule #{schedule_id} is owned by @{owner}, and only its owner or "
               "an administrator can write its variables: take ownership of it as reconcile's user (its "
               "pipelines then run as that user)")
        if writing:
            return [("error", "schedule_not_owned", f"{why}, then plan again")]
        return [("warning", "schedule_not_owned", f"{why} before the token is next rotated")]

    # apply ------------------------------------------------------------------------------------

    def _schedule(self, api: Any, c: GitLabPipelineScheduleVariable, schedule_id: int, *, lazy: bool) -> Any:
        return api.gl.projects.get(c.project, lazy=True).pipelineschedules.get(schedule_id, lazy=lazy)

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        """PUT .../pipeline_schedules/:id/variables/:key, or POST .../variables when missing."""
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        variables = self._schedule(api, c, int(observed.details["schedule_id"]), lazy=True).variables
        # GitLab's spec gives `variable_type` a default (env_var): sent as it is when the inventory
        # does not manage it, so that writing the value never turns a file variable into env_var.
        kept = {"variable_type": observed.attributes["variable_type"]} if observed.attributes.get("variable_type") else {}
        data = {"value": value.reveal(), **kept, **self.desired_attributes(c)}
        if observed.exists:
            variables.update(c.key, data)
        else:
            variables.create({"key": c.key, **data})

    def write_attributes(self, api: Any, consumer: Consumer, observed: ConsumerObservation) -> bool:
        """PUT with the variable type only: GitLab keeps the value it is not sent (its spec makes
        `value` optional there; python-gitlab's manager insists on one, so the PUT is made directly)."""
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        if not observed.exists:
            return False
        attrs = self.desired_attributes(c)
        if attrs:
            where = f"pipeline_schedules/{int(observed.details['schedule_id'])}/variables/{c.key}"
            api.gl.http_put(api_path("projects", c.project, where), post_data=attrs)
        return True

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        held = self.read(api, consumer)
        return held is not None and held == value

    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        assert isinstance(consumer, GitLabPipelineScheduleVariable)
        return [_read_back_key(consumer)]

    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        """The variable in its schedule as fetched again after the writes."""
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        details = read_back(lists, _read_back_key(c))
        schedule_id, why = which_schedule(c, details)
        if schedule_id is None:
            raise LookupError(why or f"{c.schedule_words} is gone from project {c.project}")
        variables = next(d for d in details if d.get("id") == schedule_id).get("variables")
        if variables is None:
            raise LookupError(f"the variables of pipeline schedule #{schedule_id} are hidden from reconcile's user")
        row = next((v for v in variables if v.get("key") == c.key), None)
        if row is None:
            raise LookupError(f"{c.label}: not in the schedule read back after writing")
        held: Secret | None = row.get("value")  # None for an empty value
        return held == value

    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        """The value now, from a fresh GET of the schedule (found again by its description)."""
        c = consumer
        assert isinstance(c, GitLabPipelineScheduleVariable)
        schedule_id = c.schedule_id
        if schedule_id is None:
            managed = api.gl.projects.get(c.project, lazy=True).pipelineschedules.list(get_all=True)
            schedule_id, why = which_schedule(c, [{"id": s.id, "description": s.description} for s in managed])
            if schedule_id is None:
                raise LookupError(why or f"no {c.schedule_words} in project {c.project}")
        variables = self._schedule(api, c, schedule_id, lazy=False).attributes.get("variables")
        if variables is None:
            raise LookupError(f"the variables of pipeline schedule #{schedule_id} are hidden from reconcile's user")
        held = next((v.get("value") for v in variables if v.get("key") == c.key), None)
        return Secret(held) if isinstance(held, str) and held else None

    # scope scans and discovery -------------------------------------------------------------

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The schedules of each project of the scope, then each schedule's detail (the list
        carries no variables)."""
        keys = [ListKey(scope.provider, "pipeline_schedules", path) for path in scope.projects]
        for key in list(keys):
            keys += [ListKey(key.provider, "pipeline_schedule", f"{key.scope}#{row['id']}")
                     for row in listed(lists, key) or ()]
        return keys

    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]:
        """Every schedule variable with a value; a note for each schedule whose variables the
        scanning user may not read."""
        if key.resource != "pipeline_schedules":
            return [], []
        places: list[Place] = []
        notes: list[str] = []
        for row in rows:
            detail = listed(lists, ListKey(key.provider, "pipeline_schedule", f"{key.scope}#{row['id']}")) or {}
            where = f"pipeline schedule {row.get('description')!r} (#{row['id']}, project {key.scope})"
            if detail.get("variables") is None:
                owner = (row.get("owner") or {}).get("username")
                notes.append(f"{key.provider}: the variables of {where} are hidden from reconcile's user "
                             f"(a Maintainer or its owner @{owner} can read them)")
                continue
            shared = sum(1 for other in rows if other.get("description") == row.get("description")) > 1
            for variable in detail["variables"]:
                if variable.get("value") is not None:
                    declaration = {"kind": self.kind, "provider": key.provider, "project": key.scope,
                                   "schedule": row.get("description"), "key": variable.get("key")}
                    if shared:
                        declaration["schedule_id"] = row["id"]
                    places.append(Place(key.provider, f"schedule variable {variable.get('key')} of {where}",
                                        declaration, "value", variable["value"]))
        return places, notes


KIND = PipelineScheduleVariableKind()
