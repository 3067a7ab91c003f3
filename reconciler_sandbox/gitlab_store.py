"""The GitLab sandbox's in-memory database: plain JSON-able records, ids and minted secrets.

Every record is a dict so that the whole world saves to and loads from JSON without a mapping
layer. Ids are sequential per table (deterministic worlds); seeds may give explicit ids.
"""

from __future__ import annotations

import copy
import secrets as _secrets
from datetime import UTC, date, datetime
from typing import Any

from .core import Clock, HTTPError

TABLES = (
    "users", "groups", "projects", "tokens", "triggers", "variables", "hooks", "issues",
    "merge_requests", "notes", "job_tokens", "terraform_states", "pipelines", "pipeline_schedules",
)

# GitLab's own token prefixes (doc: token_overview.md): personal/project/group access tokens and
# pipeline trigger tokens. CI job tokens are `glcbt-`.
PREFIXES = {"personal": "glpat-", "project": "glpat-", "group": "glpat-", "trigger": "glptt-", "job": "glcbt-"}

DEFAULT_VERSION = "18.11.5"


def iso(dt: datetime | None) -> str | None:
    """GitLab's timestamp format: UTC with milliseconds and Z."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def parse_date(value: Any, key: str = "expires_at") -> date | None:
    """A `YYYY-MM-DD` parameter (a full timestamp is cut to its date, as Grape's Date coercion does)."""
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise HTTPError(400, {"error": f"{key} is invalid"}) from None


class GitLabStore:
    """Tables of records keyed by integer id, id counters, and every credential value ever held."""

    def __init__(self, clock: Clock, version: str = DEFAULT_VERSION) -> None:
        self.clock = clock
        self.settings: dict[str, Any] = {
            "version": version,
            # Instance settings that decide token lifetimes (GL RotateService, ResourceAccessTokens
            # CreateService): expiry required, one week by default on rotate, 365 days maximum.
            "require_token_expiry": True,
            "rotate_default_days": 7,
            "max_token_lifetime_days": 365,
        }
        self.tables: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in TABLES}
        self.next_ids: dict[str, int] = {name: 1 for name in TABLES}
        self.minted: set[str] = set()

    # ids and values ---------------------------------------------------------------------------

    def new_id(self, table: str, wanted: int | None = None) -> int:
        if wanted is not None:
            wanted = int(wanted)
            if wanted in self.tables[table]:
                raise ValueError(f"{table}: id {wanted} is used twice")
            self.next_ids[table] = max(self.next_ids[table], wanted + 1)
            return wanted
        while self.next_ids[table] in self.tables[table]:
            self.next_ids[table] += 1
        new = self.next_ids[table]
        self.next_ids[table] += 1
        return new

    def insert(self, table: str, record: dict[str, Any], wanted: int | None = None) -> dict[str, Any]:
        record["id"] = self.new_id(table, wanted if wanted is not None else record.get("id"))
        self.tables[table][record["id"]] = record
        return record

    def mint(self, kind: str) -> str:
        """A fresh random credential with GitLab's prefix for its kind (20 url-safe characters)."""
        value = PREFIXES[kind] + _secrets.token_urlsafe(15)[:20]
        self.minted.add(value)
        return value

    def remember(self, value: str | None) -> None:
        if value:
            self.minted.add(value)

    def remember_if_credential(self, value: str | None, *, secret: bool = False) -> None:
        """Remember a stored value when it is declared secret (masked, hidden, seeded into a
        write-only place) or looks like a GitLab credential, so the leak guard also looks for
        credentials held in plain variables. A value the tool writes through the API that is
        neither came from the inventory in plain (a declared webhook header): any credential it
        writes was minted or seeded by a sandbox, so the guard knows it already."""
        if value and (secret or value.startswith(tuple(set(PREFIXES.values()) | {"gldt-", "glrt-"}))):
            self.minted.add(value)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.clock.now().date()

    @property
    def version(self) -> str:
        return self.settings["version"]

    def version_at_least(self, major: int, minor: int = 0) -> bool:
        parts = [int(p) for p in self.version.split("-")[0].split(".")[:2]]
        return tuple(parts) >= (major, minor)

    # lookups -----------------------------------------------------------------------------------

    def users(self) -> dict[int, dict[str, Any]]:
        return self.tables["users"]

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        return next((u for u in self.users().values() if u["username"].lower() == username.lower()), None)

    def group_by_path(self, full_path: str) -> dict[str, Any] | None:
        return next((g for g in self.tables["groups"].values() if g["full_path"].lower() == full_path.lower()), None)

    def project_by_path(self, full_path: str) -> dict[str, Any] | None:
        return next((p for p in self.tables["projects"].values()
                     if p["path_with_namespace"].lower() == full_path.lower()), None)

    def group_chain(self, group_id: int | None) -> list[dict[str, Any]]:
        """The group and its ancestors, nearest first."""
        chain = []
        while group_id is not None and group_id in self.tables["groups"]:
            group = self.tables["groups"][group_id]
            chain.append(group)
            group_id = group.get("parent_id")
        return chain

    def token_by_value(self, value: str) -> dict[str, Any] | None:
        return next((t for t in self.tables["tokens"].values() if t.get("value") == value), None)

    # persistence -------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "settings": copy.deepcopy(self.settings),
            "next_ids": dict(self.next_ids),
            "tables": {name: [copy.deepcopy(r) for _, r in sorted(rows.items())] for name, rows in self.tables.items()},
            "minted": sorted(self.minted),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.settings.update(state.get("settings", {}))
        self.tables = {name: {} for name in TABLES}
        for name, rows in state.get("tables", {}).items():
            self.tables[name] = {int(r["id"]): copy.deepcopy(r) for r in rows}
        self.next_ids = {name: 1 for name in TABLES} | {k: int(v) for k, v in state.get("next_ids", {}).items()}
        self.minted = set(state.get("minted", []))
