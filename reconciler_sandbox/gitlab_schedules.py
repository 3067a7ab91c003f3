"""Pipeline schedules and their variables, where support teams keep tokens for scheduled jobs.

Sources: the docs page https://docs.gitlab.com/ee/api/pipeline_schedules.html and the code behind
it, GL `lib/api/ci/pipeline_schedules.rb`, `app/policies/ci/pipeline_schedule_policy.rb`,
`lib/api/entities/ci/pipeline_schedule.rb`, `pipeline_schedule_details.rb`, `variable.rb`,
`app/models/ci/pipeline_schedule.rb`, `pipeline_schedule_variable.rb`,
`app/models/concerns/ci/has_variable.rb`, `app/validators/cron_validator.rb`; parameters as in
`../shared/oracles/specs/gitlab-openapi-v2.yaml` (tested in tests/contract).

- The list (`Entities::Ci::PipelineSchedule`) carries no variables; one schedule
  (`PipelineScheduleDetails`) carries `variables` with their values in plain, but only for a caller
  who may read them (a Maintainer, or the schedule's owner with Developer); others get no
  `variables` key at all.
- Ownership decides writes: creating or editing a variable needs `update_pipeline_schedule`, which
  only an instance admin or the schedule's owner (with Developer) has; a Maintainer who does not
  own the schedule gets 403 and must take ownership first (after which the scheduled pipelines
  run as them). Deleting a variable or the schedule needs `admin_pipeline_schedule` (a
  Maintainer, or the owner). Every variable write also needs `set_pipeline_variables` on the
  project, which the project setting `ci_pipeline_variables_minimum_override_role` can restrict
  (`no_one_allowed` refuses everybody).
- Descriptions are not unique: GitLab validates only their presence.
- Deleting a variable answers 202 with the deleted variable; deleting a schedule 204.
- `GET .../variables/:key` is recent (GitLab MR 212016, late 2025; the Swagger copy of March 2025
  lacks it) [UNCERTAIN: first version; taken as 18.7]. Before it, the value is read from the schedule.
- The sandbox has no repository: a short `ref` naming the default branch is expanded to
  `refs/heads/<branch>`, any other ref is kept as sent (GitLab keeps a ref it cannot resolve).
- `next_run_at` is the schedule's next cron time after the sandbox clock, in its time zone (IANA
  names only; GitLab also accepts Rails names such as "Pacific Time (US & Canada)" and delays
  the time to its schedule worker's next run).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .core import HTTPError, Request, Response
from .gitlab_ci import KEY, _bool
from .gitlab_entities import user_basic
from .gitlab_store import iso

if TYPE_CHECKING:
    from .gitlab import Caller

REPORTER, DEVELOPER, MAINTAINER = 20, 30, 40
FORBIDDEN = {"message": "403 Forbidden"}
SCHEDULE_NOT_FOUND = {"message": "404 Pipeline Schedule Not Found"}
VARIABLE_NOT_FOUND = {"message": "404 Pipeline Schedule Variable Not Found"}
# ProjectCiCdSetting pipeline_variables_minimum_override_role: the least role that may set
# pipeline variables; absent means unrestricted (self-managed projects created before 17.7).
OVERRIDE_ROLES: dict[str, int | None] = {"developer": 30, "maintainer": 40, "owner": 50, "no_one_allowed": None}
SCHEDULE_FIELDS = ("description", "ref", "cron", "cron_timezone", "active")
VARIABLE_TYPES = ("env_var", "file")

# --- cron ----------------------------------------------------------------------------------------

NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = {name: n for n, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
WEEKDAYS = {name: n for n, name in enumerate("sun mon tue wed thu fri sat".split())}
FIELD_RANGES = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 7, WEEKDAYS))


def _cron_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """One cron field (`*`, `5`, `1-5`, `*/15`, `mon-fri`, lists of those); ValueError if invalid."""
    values: set[int] = set()
    for item in text.lower().split(","):
        body, slash, step = item.partition("/")
        if body == "*":
            start, end = low, high
        else:
            first, dash, last = body.partition("-")
            start = names[first] if first in names else int(first)
            end = (names[last] if last in names else int(last)) if dash else (high if slash else start)
        stride = int(step) if slash else 1
        if stride < 1 or not low <= start <= end <= high:
            raise ValueError(item)
        values.update(range(start, end + 1, stride))
    return values


def parse_cron(cron: str) -> list[set[int]] | None:
    """Minute, hour, day of month, month and weekday sets (Sunday is 0), or None when invalid."""
    parts = NICKNAMES.get(cron.strip().lower(), cron).split()
    if len(parts) != 5:
        return None
    try:
        fields = [_cron_field(part, low, high, names) for part, (low, high, names) in zip(parts, FIELD_RANGES,
                                                                                          strict=True)]
    except (ValueError, KeyError):
        return None
    fields[4] = {d % 7 for d in fields[4]}
    # Standard cron: with both day fields restricted, a day matching either runs.
    fields.append({1} if parts[2] != "*" and parts[4] != "*" else set())
    return fields


def time_zone(name: Any) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _day_runs(fields: list[set[int]], day: date) -> bool:
    _, _, days, months, weekdays, either = fields
    if day.month not in months:
        return False
    in_month, in_week = day.day in days, (day.isoweekday() % 7) in weekdays
    return (in_month or in_week) if either else (in_month and in_week)


def next_run(cron: str, zone_name: str, after: datetime) -> datetime | None:
    """The first time after `after` that `cron` fires in `zone_name` (within five years)."""
    fields, zone = parse_cron(cron), time_zone(zone_name)
    if fields is None or zone is None:
        return None
    start = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.date()
    for _ in range(5 * 366):
        if _day_runs(fields, day):
            for hour in sorted(fields[1]):
                for minute in sorted(fields[0]):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate >= start:
                        return candidate.astimezone(UTC)
        day += timedelta(days=1)
    return None


def schedule_errors(schedule: dict[str, Any]) -> dict[str, list[str]]:
    """ActiveRecord validation errors of a schedule (GL Ci::PipelineSchedule, CronValidator)."""
    errors: dict[str, list[str]] = {}
    if not str(schedule.get("description") or "").strip():
        errors["description"] = ["can't be blank"]
    if not schedule.get("ref"):
        errors["ref"] = ["can't be blank"]
    if parse_cron(str(schedule.get("cron") or "")) is None:
        errors["cron"] = [" is invalid syntax"]
    if time_zone(schedule.get("cron_timezone")) is None:
        errors["cron_timezone"] = [" is invalid syntax"]
    return errors


def expand_ref(project: dict[str, Any], ref: str) -> str:
    """A short ref naming a branch becomes `refs/heads/<ref>`; the default branch is the only branch known."""
    branch = project.get("default_branch") or "main"
    return f"refs/heads/{branch}" if ref == branch else ref


def variable_entity(variable: dict[str, Any]) -> dict[str, Any]:
    """`Entities::Ci::Variable` of a schedule variable: no hidden, protected, masked or scope."""
    return {"variable_type": variable["variable_type"], "key": variable["key"], "value": variable["value"],
            "raw": bool(variable.get("raw"))}


# --- routes ------------------------------------------------------------------------------------


class ScheduleRoutes:
    def _register_schedules(self) -> None:
        many = "/projects/{id}/pipeline_schedules"
        one = many + "/{schedule_id}"
        self.api("GET", many, self._schedule_list)
        self.api("POST", many, self._schedule_create)
        self.api("GET", one, self._schedule_get)
        self.api("PUT", one, self._schedule_update)
        self.api("DELETE", one, self._schedule_delete)
        self.api("POST", one + "/take_ownership", self._schedule_take_ownership)
        self.api("POST", one + "/variables", self._schedule_variable_create)
        self.api("GET", one + "/variables/{key}", self._schedule_variable_get)
        self.api("PUT", one + "/variables/{key}", self._schedule_variable_update)
        self.api("DELETE", one + "/variables/{key}", self._schedule_variable_delete)

    # --- permissions (GL PipelineSchedulePolicy, ProjectPolicy) -------------------------------------

    def _owns(self, caller: Caller, schedule: dict[str, Any]) -> bool:
        return schedule.get("owner_id") == caller.id

    def _may_admin_schedule(self, caller: Caller, project: dict[str, Any], schedule: dict[str, Any]) -> bool:
        """admin_pipeline_schedule, and read_pipeline_schedule_variables: Maintainer, or the owner."""
        level = self.project_level(caller.user, project)
        return level >= MAINTAINER or (self._owns(caller, schedule) and level >= DEVELOPER)

    def _require_update(self, caller: Caller, project: dict[str, Any], schedule: dict[str, Any]) -> None:
        """update_pipeline_schedule: an instance admin, or the owner with Developer; not a Maintainer."""
        if not (caller.admin or (self._owns(caller, schedule) and self.project_level(caller.user, project)
                                 >= DEVELOPER)):
            raise HTTPError(403, FORBIDDEN)

    def _require_admin(self, caller: Caller, project: dict[str, Any], schedule: dict[str, Any]) -> None:
        if not self._may_admin_schedule(caller, project, schedule):
            raise HTTPError(403, FORBIDDEN)

    def _require_set_variables(self, caller: Caller, project: dict[str, Any]) -> None:
        """set_pipeline_variables (ProjectCiCdSetting#override_pipeline_variables_allowed?)."""
        role = project.get("ci_pipeline_variables_minimum_override_role")
        if role is None:
            return
        least = OVERRIDE_ROLES.get(role)
        if least is None or self.project_level(caller.user, project) < least:
            raise HTTPError(403, FORBIDDEN)

    # --- lookups -----------------------------------------------------------------------------------

    def _schedule_project(self, request: Request, caller: Caller) -> dict[str, Any]:
        return self.find_project(request.params["id"], caller)

    def _schedule(self, request: Request, caller: Caller, project: dict[str, Any]) -> dict[str, Any]:
        """GL helper `pipeline_schedule`: unknown, elsewhere, or unreadable (below Reporter) is 404."""
        raw = request.params["schedule_id"]
        if not raw.isdigit():
            raise HTTPError(400, {"error": "pipeline_schedule_id is invalid"})
        schedule = self.store.tables["pipeline_schedules"].get(int(raw))
        if schedule is None or schedule["project_id"] != project["id"] \
                or self.project_level(caller.user, project) < REPORTER:
            raise HTTPError(404, SCHEDULE_NOT_FOUND)
        return schedule

    def _schedule_variable(self, request: Request, schedule: dict[str, Any]) -> dict[str, Any]:
        found = next((v for v in schedule["variables"] if v["key"] == request.params["key"]), None)
        if found is None:
            raise HTTPError(404, VARIABLE_NOT_FOUND)
        return found

    # --- entities ----------------------------------------------------------------------------------

    def _schedule_entity(self, request: Request, schedule: dict[str, Any], caller: Caller | None = None,
                         project: dict[str, Any] | None = None) -> dict[str, Any]:
        """`PipelineSchedule`; with `caller`, `PipelineScheduleDetails` (variables if readable)."""
        owner = self.store.users().get(schedule.get("owner_id") or 0)
        when = next_run(schedule["cron"], schedule["cron_timezone"], self.store.now())
        entity: dict[str, Any] = {
            "id": schedule["id"], "description": schedule["description"], "ref": schedule["ref"],
            "cron": schedule["cron"], "cron_timezone": schedule["cron_timezone"], "next_run_at": iso(when),
            "active": schedule["active"], "created_at": schedule["created_at"], "updated_at": schedule["updated_at"],
            "owner": user_basic(self.store, owner, request.base_url) if owner else None,
        }
        if self.store.version_at_least(17, 11):
            entity["inputs"] = []
        if caller is not None and project is not None:
            entity["last_pipeline"] = None
            if self._may_admin_schedule(caller, project, schedule):
                entity["variables"] = [variable_entity(v) for v in schedule["variables"]]
        return entity

    # --- schedules -----------------------------------------------------------------------------------

    def _schedule_list(self, request: Request, caller: Caller) -> Response:
        project = self._schedule_project(request, caller)
        if self.project_level(caller.user, project) < REPORTER:
            raise HTTPError(403, FORBIDDEN)
        scope = request.arg("scope")
        if scope not in (None, "active", "inactive"):
            raise HTTPError(400, {"error": "scope does not have a valid value"})
        rows = [s for s in self.store.tables["pipeline_schedules"].values() if s["project_id"] == project["id"]
                and (scope is None or s["active"] == (scope == "active"))]
        return self.paginate(request, [self._schedule_entity(request, s) for s in rows])

    def _schedule_get(self, request: Request, caller: Caller) -> Response:
        project = self._schedule_project(request, caller)
        schedule = self._schedule(request, caller, project)
        return Response(200, self._schedule_entity(request, schedule, caller, project))

    def _apply_schedule_params(self, project: dict[str, Any], schedule: dict[str, Any],
                               params: dict[str, Any]) -> dict[str, Any]:
        """The schedule with the given fields changed, or the 400 of its validation errors."""
        changed = dict(schedule)
        for name in SCHEDULE_FIELDS:
            if params.get(name) is not None:
                changed[name] = _bool(params[name]) if name == "active" else str(params[name])
        changed["ref"] = expand_ref(project, changed["ref"])
        errors = schedule_errors(changed)
        if errors:
            raise HTTPError(400, {"message": errors})
        return changed

    def _schedule_create(self, request: Request, caller: Caller) -> Response:
        params = request.merged_params()
        absent = [name for name in ("description", "ref", "cron") if params.get(name) is None]
        if absent:
            raise HTTPError(400, {"error": ", ".join(f"{name} is missing" for name in absent)})
        if params["ref"] == "":
            raise HTTPError(400, {"error": "ref is empty"})
        project = self._schedule_project(request, caller)
        if self.project_level(caller.user, project) < DEVELOPER:  # create_pipeline_schedule
            raise HTTPError(403, FORBIDDEN)
        now = iso(self.store.now())
        blank = {"project_id": project["id"], "owner_id": caller.id, "description": "", "ref": "", "cron": "",
                 "cron_timezone": "UTC", "active": True, "created_at": now, "updated_at": now, "variables": []}
        schedule = self.store.insert("pipeline_schedules", self._apply_schedule_params(project, blank, params))
        return Response(201, self._schedule_entity(request, schedule, caller, project))

    def _schedule_update(self, request: Request, caller: Caller) -> Response:
        project = self._schedule_project(request, caller)
        schedule = self._schedule(request, caller, project)
        self._require_update(caller, project, schedule)
        schedule.update(self._apply_schedule_params(project, schedule, request.merged_params()),
                        updated_at=iso(self.store.now()))
        return Response(200, self._schedule_entity(request, schedule, caller, project))

    def _schedule_take_ownership(self, request: Request, caller: Caller) -> Response:
        project = self._schedule_project(request, caller)
        schedule = self._schedule(request, caller, project)
        self._require_admin(caller, project, schedule)
        if self._owns(caller, schedule):
            return Response(200, self._schedule_entity(request, schedule, caller, project))
        schedule.update(owner_id=caller.id, updated_at=iso(self.store.now()))
        return Response(201, self._schedule_entity(request, schedule, caller, project))

    def _schedule_delete(self, request: Request, caller: Caller) -> Response:
        project = self._schedule_project(request, caller)
        schedule = self._schedule(request, caller, project)
        self._require_admin(caller, project, schedule)
        del self.store.tables["pipeline_schedules"][schedule["id"]]
        return Response(204)

    # --- schedule variables ----------------------------------------------------------------------------

    @staticmethod
    def _variable_params(request: Request, *, creating: bool) -> dict[str, Any]:
        """Grape's checks, before any permission: required keys, variable_type's values."""
        params = request.merged_params()
        absent = [name for name in ("key", "value") if creating and params.get(name) is None]
        if absent:
            raise HTTPError(400, {"error": ", ".join(f"{name} is missing" for name in absent)})
        if params.get("variable_type") is not None and params["variable_type"] not in VARIABLE_TYPES:
            raise HTTPError(400, {"error": "variable_type does not have a valid value"})
        return params

    def _writable_schedule(self, request: Request, caller: Caller) -> tuple[dict[str, Any], dict[str, Any]]:
        """Project and schedule for a variable write, in GitLab's order of checks."""
        project = self._schedule_project(request, caller)
        self._require_set_variables(caller, project)
        return project, self._schedule(request, caller, project)

    def _schedule_variable_create(self, request: Request, caller: Caller) -> Response:
        params = self._variable_params(request, creating=True)
        project, schedule = self._writable_schedule(request, caller)
        self._require_update(caller, project, schedule)
        key = str(params["key"]).strip()
        if not KEY.match(key):
            raise HTTPError(400, {"message": {"key": ["can contain only letters, digits and '_'."]}})
        if any(v["key"] == key for v in schedule["variables"]):
            raise HTTPError(400, {"message": {"key": ["has already been taken"]}})
        variable = {"key": key, "value": str(params["value"]),
                    "variable_type": params.get("variable_type") or "env_var", "raw": False}
        self.store.remember_if_credential(variable["value"])
        schedule["variables"].append(variable)
        return Response(201, variable_entity(variable))

    def _schedule_variable_get(self, request: Request, caller: Caller) -> Response:
        if not self.store.version_at_least(18, 7):
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        project = self._schedule_project(request, caller)
        schedule = self._schedule(request, caller, project)
        self._require_admin(caller, project, schedule)  # read_pipeline_schedule_variables
        return Response(200, variable_entity(self._schedule_variable(request, schedule)))

    def _schedule_variable_update(self, request: Request, caller: Caller) -> Response:
        params = self._variable_params(request, creating=False)
        project, schedule = self._writable_schedule(request, caller)
        self._require_update(caller, project, schedule)
        variable = self._schedule_variable(request, schedule)
        for name in ("value", "variable_type"):
            if params.get(name) is not None:
                variable[name] = str(params[name])
        self.store.remember_if_credential(variable["value"])
        return Response(200, variable_entity(variable))

    def _schedule_variable_delete(self, request: Request, caller: Caller) -> Response:
        project, schedule = self._writable_schedule(request, caller)
        self._require_admin(caller, project, schedule)
        variable = self._schedule_variable(request, schedule)
        schedule["variables"].remove(variable)
        return Response(202, variable_entity(variable))

    # --- test hooks ------------------------------------------------------------------------------------

    def schedule_variable(self, schedule_id: int, key: str) -> dict[str, Any] | None:
        """Test hook: a schedule variable's record (a copy, value included), or None."""
        with self.lock:
            schedule = self.store.tables["pipeline_schedules"].get(int(schedule_id)) or {"variables": []}
            found = next((v for v in schedule["variables"] if v["key"] == key), None)
            return dict(found) if found else None
