"""Replay go-vcr cassettes of real GitLab traffic against a freshly seeded GitLab sandbox.

For each cassette: read every interaction first and seed what they presuppose (users, groups,
projects and the caller's tokens, with the recorded ids and the recorded GitLab version, so the
entity shapes are that version's); then send each request on a modeled endpoint in order and
compare the status code and the recursive set of JSON keys with the recording.

Credentials in the recordings are redacted (`REPLACED-TOKEN`), so the replayer decides which of
its own credentials stands for the recorded one: the token a `GET /personal_access_tokens/self`
answer names; the cassette's configured token otherwise (it follows a rotation of itself); an
unknown value where GitLab answered `401 Unauthorized`; a revoked or expired token where GitLab
answered with APIGuard's `invalid_token` body. Ids GitLab minted during the recording are
mapped to the ones the sandbox mints.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import yaml

from .core import Clock, SandboxServer
from .gitlab import serve_gitlab
from .gitlab_seed import add_token, add_user, ensure_group
from .gitlab_store import DEFAULT_VERSION, iso
from .replay_common import ReplayOutcome, compare_shapes

# Endpoints the tool does not use and the sandbox does not model.
NOT_MODELED = (
    (re.compile(r"/deploy_tokens(/|$)"), "deploy tokens"),
)
ID_COLLECTIONS = {"users": "users", "service_accounts": "users", "personal_access_tokens": "tokens",
                  "access_tokens": "tokens",
                  "projects": "projects", "groups": "groups", "triggers": "triggers", "hooks": "hooks"}
VERSION_IN_PATH = re.compile(r"(?:^|/)(\d+\.\d+\.\d+)(?:/|$)")


def is_go_vcr(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("interactions"), list) and all(
        isinstance(i, dict) and "request" in i and "response" in i for i in data["interactions"])


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _path(url: str) -> tuple[str, str]:
    split = urlsplit(url)
    return split.path, split.query


def _segments(raw_path: str) -> list[str]:
    return raw_path.split("/")


class _World:
    """What one cassette presupposes, gathered before replaying it."""

    def __init__(self, interactions: list[dict[str, Any]], cassette: Path) -> None:
        self.interactions = interactions
        self.version = self._version(cassette)
        self.users: dict[int, dict[str, Any]] = {}
        self.groups: dict[str, int] = {}
        self.group_parents: dict[str, int | None] = {}
        self.projects: dict[str, tuple[int, int | None]] = {}
        self.tokens: dict[int, dict[str, Any]] = {}
        self.minted_ids: set[int] = set()
        self.minted_users: set[int] = set()  # service accounts created during the recording
        self.admin_callers: set[int] = set()
        self.non_admin_callers: set[int] = set()
        self.created_by_null: set[int] = set()
        self.first_date: datetime | None = None
        self._scan()

    def _version(self, cassette: Path) -> str:
        for inter in self.interactions:
            body = _json(inter["response"].get("body"))
            if _path(inter["request"]["url"])[0].endswith("/metadata") and isinstance(body, dict):
                return str(body.get("version", DEFAULT_VERSION)).split("-")[0]
        found = VERSION_IN_PATH.search(cassette.as_posix())
        return found.group(1) if found else DEFAULT_VERSION

    def _user(self, entity: dict[str, Any]) -> None:
        record = self.users.setdefault(int(entity["id"]), {"id": int(entity["id"])})
        for key in ("username", "name", "bot", "is_admin"):
            if key in entity and entity[key] is not None:
                record[key] = entity[key]
        if "created_by" in entity and entity["created_by"] is None:
            self.created_by_null.add(int(entity["id"]))

    def _note_minted_account(self, method: str, path: str, body: Any) -> None:
        """A service account GitLab created during the recording: the replay creates its own."""
        if method == "POST" and path.endswith("/service_accounts") and isinstance(body, dict) and "id" in body:
            self.minted_users.add(body["id"])

    def _recorded_users(self, body: Any) -> list[dict[str, Any]]:
        """The users an answer shows that existed before the recording (to be seeded)."""
        return [e for e in (body if isinstance(body, list) else [body])
                if isinstance(e, dict) and "id" in e and e["id"] not in self.minted_users]

    def _scan(self) -> None:
        caller: int | None = None
        for inter in self.interactions:
            req, resp = inter["request"], inter["response"]
            if self.first_date is None:
                date = (resp.get("headers") or {}).get("Date")
                if date:
                    self.first_date = parsedate_to_datetime(date[0]).astimezone(UTC)
            raw, _ = _path(req["url"])
            path = unquote(raw)
            body = _json(resp.get("body"))
            code = int(resp.get("code") or 0)
            method = req["method"]
            if not 200 <= code < 300:
                if code == 403 and re.search(r"/users/\d+/personal_access_tokens$", path) and caller:
                    self.non_admin_callers.add(self.tokens[caller]["user_id"])
                continue
            if path.endswith("/personal_access_tokens/self") and method == "GET" and isinstance(body, dict):
                if body["id"] not in self.minted_ids:
                    self.tokens.setdefault(body["id"], body)
                    caller = caller or body["id"]
                self.users.setdefault(body["user_id"], {"id": body["user_id"]})
                if {"admin_mode", "sudo"} & set(body.get("scopes") or []):
                    self.users[body["user_id"]].setdefault("is_admin", True)  # only admins hold these scopes
            if method == "POST" and isinstance(body, dict) and "id" in body and "token" in body:
                self.minted_ids.add(body["id"])
            self._note_minted_account(method, path, body)
            if re.search(r"/users/\d+/personal_access_tokens$", path) and caller:
                self.admin_callers.add(self.tokens[caller]["user_id"])
            if re.search(r"/users(/\d+)?$", path) and method == "GET":
                for entity in self._recorded_users(body):
                    self._user(entity)
                    if "is_admin" in entity and caller:
                        self.admin_callers.add(self.tokens[caller]["user_id"])
            m = re.match(r"^/api/v4/groups/([^/]+)$", raw)
            if m and method == "GET" and isinstance(body, dict):
                self.groups[body["full_path"]] = body["id"]
                self.group_parents[body["full_path"]] = body.get("parent_id")
                for project in body.get("projects") or []:
                    self.projects[project["path_with_namespace"]] = (project["id"], project["namespace"]["id"])
            m = re.match(r"^/api/v4/projects/([^/]+)$", raw)
            if m and method == "GET" and isinstance(body, dict):
                self.projects[body["path_with_namespace"]] = (body["id"], (body.get("namespace") or {}).get("id"))
            m = re.match(r"^/api/v4/(projects|groups)/([^/]+)/", raw)
            if m and isinstance(body, dict) and body.get("resource_type") in ("project", "group"):
                ref = unquote(m.group(2))
                if not ref.isdigit():
                    if m.group(1) == "groups":
                        self.groups.setdefault(ref, body["resource_id"])
                    else:
                        self.projects.setdefault(ref, (body["resource_id"], None))
            m = re.match(r"^/api/v4/projects/([^/]+)/triggers", raw)
            if m and not unquote(m.group(1)).isdigit():
                self.projects.setdefault(unquote(m.group(1)), (None, None))  # id from another interaction
            m = re.match(r"^/api/v4/projects/(\d+)/", raw)
            if m and not any(pid == int(m.group(1)) for pid, _ in self.projects.values()):
                pending = [p for p, (pid, _) in self.projects.items() if pid is None]
                if pending:
                    self.projects[pending[0]] = (int(m.group(1)), None)


class CassetteReplay:
    def __init__(self, path: Path, server: SandboxServer | None = None) -> None:
        self.path = path
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self.interactions: list[dict[str, Any]] = data["interactions"]
        self.world = _World(self.interactions, path)
        start = self.world.first_date or datetime.now(UTC)
        self.own_server = server is None
        self.server = server or serve_gitlab(clock=Clock(start))
        self.service = self.server.service
        self.service.reset()
        self.service.clock.set(start)
        self.server.faults.clear()
        self.http = requests.Session()
        self.ids: dict[str, dict[int, int]] = {name: {} for name in set(ID_COLLECTIONS.values())}
        self.values: dict[int, str] = {}  # our token id -> value
        self.usernames: dict[str, str] = {}  # recorded username GitLab minted -> the sandbox's
        self.default: int | None = None  # our token id of the cassette's configured credential
        self.last_created: int | None = None
        self._seed()

    # seeding --------------------------------------------------------------------------------------

    def _seed(self) -> None:
        world, store = self.world, self.service.store
        store.settings["version"] = world.version
        for table, ids in (("users", world.users), ("tokens", world.tokens),
                           ("groups", world.groups.values()),
                           ("projects", [pid for pid, _ in world.projects.values() if pid])):
            store.next_ids[table] = max([store.next_ids[table], *[int(i) + 1 for i in ids]])
        with self.service.lock:
            for uid, info in sorted(world.users.items()):
                admin = bool(info["is_admin"]) if "is_admin" in info else (
                    uid in world.admin_callers and uid not in world.non_admin_callers)
                add_user(store, info.get("username") or f"user-{uid}", name=info.get("name"),
                         admin=admin, bot=bool(info.get("bot")), user_id=uid)
            # Users are created by the instance's first admin (root) unless recorded otherwise.
            root = store.user_by_username("root") or add_user(
                store, "root", name="Administrator", admin=True, user_id=None if 1 in store.users() else 1)
            for user in store.users().values():
                creator = None if user["id"] in world.created_by_null else root["id"]
                user["created_by_id"] = creator if creator != user["id"] else None
            for full_path, gid in sorted(world.groups.items(), key=lambda kv: kv[0].count("/")):
                ensure_group(store, full_path, group_id=gid)
            for full_path, (pid, _namespace_id) in world.projects.items():
                namespace = full_path.rpartition("/")[0]
                group = ensure_group(store, namespace) if namespace else None
                store.insert("projects", {
                    "name": full_path.rpartition("/")[2], "path": full_path.rpartition("/")[2],
                    "path_with_namespace": full_path, "namespace_id": group["id"] if group else None,
                    "description": None, "default_branch": "main", "visibility": "private",
                    "created_at": iso(store.now()), "members": {}, "restricted": False,
                }, pid)
            for tid, entity in world.tokens.items():
                token = add_token(store, kind="personal", user_id=entity["user_id"], name=entity["name"],
                                  scopes=entity["scopes"], token_id=tid, created_at=entity.get("created_at"),
                                  expires_at=entity.get("expires_at"), description=entity.get("description"))
                self.values[token["id"]] = token["value"]
                if self.default is None:
                    self.default = token["id"]
            if self.default is None:  # no recorded self lookup: an admin of its own stands in
                admin = add_user(store, "replay-admin", admin=True)
                token = add_token(store, kind="personal", user_id=admin["id"], name="replay", scopes=["api"])
                self.values[token["id"]] = token["value"]
                self.default = token["id"]
            owner = store.tables["tokens"][self.default]["user_id"]
            revoked = add_token(store, kind="personal", user_id=owner, name="replay-revoked", scopes=["api"],
                                revoked=True)
            expired = add_token(store, kind="personal", user_id=owner, name="replay-expired", scopes=["api"],
                                expires_at="2000-01-01")
            self.revoked_value, self.expired_value = revoked["value"], expired["value"]

    # one interaction ------------------------------------------------------------------------------------

    def _credential(self, method: str, path: str, recorded: Any, code: int) -> str:
        if code == 401 and isinstance(recorded, dict):
            text = json.dumps(recorded)
            if "revoked" in text:
                return self.revoked_value
            if "expired" in text:
                return self.expired_value
            return "glpat-unknown-to-replay"  # no token has it: the sandbox answers 401
        if path.endswith("/personal_access_tokens/self") and method == "GET" and isinstance(recorded, dict):
            ours = self.ids["tokens"].get(recorded.get("id"), recorded.get("id"))
            if ours in self.values:
                return self.values[ours]
        if path.endswith("/personal_access_tokens/self") and method == "DELETE" and self.last_created:
            return self.values[self.last_created]
        if re.search(r"/users(/\d+)?$", path) and method == "GET":
            return self._user_lookup_credential(recorded)
        if 200 <= code < 300 and self._needs_admin(method, path):
            return self._admin_credential()
        return self.values[self.default]

    def _needs_admin(self, method: str, path: str) -> bool:
        """A recorded success that only an admin can have (on behalf of someone else)."""
        store = self.service.store
        default_user = store.tables["tokens"][self.default]["user_id"]
        if store.users()[default_user].get("admin"):
            return False
        if (method == "POST" and re.search(r"/users/\d+/personal_access_tokens$", path)) or (
                method == "DELETE" and re.search(r"/users/\d+$", path)):
            return True
        m = re.search(r"/personal_access_tokens/(\d+)(/rotate)?$", path)
        if m:
            target = store.tables["tokens"].get(self.ids["tokens"].get(int(m.group(1)), int(m.group(1))))
            return target is not None and target["user_id"] != default_user
        return False

    def _admin_credential(self) -> str:
        store = self.service.store
        for tid in self.world.tokens:
            token = store.tables["tokens"].get(tid)
            if token and not token.get("revoked") and store.users()[token["user_id"]].get("admin"):
                return self.values[tid]
        return self.values[self.default]

    def _user_lookup_credential(self, recorded: Any) -> str:
        """Which configured credential looked users up: an admin one when the answer has the admin
        view (`is_admin`); one of another user when `followers` is shown (hidden for oneself)."""
        entities = [e for e in (recorded if isinstance(recorded, list) else [recorded]) if isinstance(e, dict)]
        if not entities or "is_admin" not in entities[0]:
            return self.values[self.default]
        shown = {e.get("id") for e in entities}
        wants_other = "followers" in entities[0]
        store = self.service.store
        for tid in [self.default, *self.world.tokens]:
            token = store.tables["tokens"].get(tid)
            user = store.users().get(token["user_id"]) if token else None
            if user and user.get("admin") and not token.get("revoked") and (user["id"] in shown) != wants_other:
                return self.values[tid]
        return self.values[self.default]

    def _map_path(self, raw: str) -> str:
        parts = _segments(raw)
        for i, part in enumerate(parts):
            if part.isdigit() and i > 0 and parts[i - 1] in ID_COLLECTIONS:
                table = ID_COLLECTIONS[parts[i - 1]]
                parts[i] = str(self.ids[table].get(int(part), int(part)))
        return "/".join(parts)

    def _learn(self, recorded: Any, actual: Any, path: str) -> None:
        """Map ids GitLab minted in the recording to the sandbox's, and keep minted values."""
        if not (isinstance(recorded, dict) and isinstance(actual, dict)):
            return
        if "token" in actual and "user_id" in actual and "id" in actual:
            self.ids["tokens"][recorded.get("id")] = actual["id"]
            self.ids["users"].setdefault(recorded.get("user_id"), actual["user_id"])
            self.values[actual["id"]] = actual["token"]
            self.last_created = actual["id"]
            if path.endswith("/rotate"):
                prev = self.service.token(actual["id"])["previous_id"]
                if prev == self.default:
                    self.default = actual["id"]
        elif path.endswith("/service_accounts") and "username" in actual and "id" in actual:
            self.ids["users"][recorded.get("id")] = actual["id"]
            self.usernames[str(recorded.get("username"))] = actual["username"]
        elif "/triggers" in path and "id" in actual:
            self.ids["triggers"][recorded.get("id")] = actual["id"]

    def _presuppose(self, recorded: Any) -> None:
        """A skipped interaction that minted a token (e.g. a service account's): mint the same
        kind of token in the sandbox, so later requests made with it have a credential."""
        if not (isinstance(recorded, dict) and {"id", "token", "user_id", "scopes"} <= set(recorded)):
            return
        store = self.service.store
        with self.service.lock:
            user_id = self.ids["users"].get(recorded["user_id"], recorded["user_id"])
            if user_id not in store.users():
                return
            token = add_token(store, kind="personal", user_id=user_id, name=recorded.get("name", "token"),
                              scopes=recorded["scopes"], expires_at=recorded.get("expires_at"))
        self.ids["tokens"][recorded["id"]] = token["id"]
        self.values[token["id"]] = token["value"]
        self.last_created = token["id"]

    def run(self) -> list[ReplayOutcome]:
        outcomes = []
        try:
            for index, inter in enumerate(self.interactions):
                outcomes.append(self._one(index, inter))
        finally:
            self.http.close()
            if self.own_server:
                self.server.stop()
        return outcomes

    def _one(self, index: int, inter: dict[str, Any]) -> ReplayOutcome:
        req, resp = inter["request"], inter["response"]
        raw, query = _path(req["url"])
        label = f"{inter.get('id', index)} {req['method']} {raw}"
        for pattern, what in NOT_MODELED:
            if pattern.search(raw):
                self._presuppose(_json(resp.get("body")))
                return ReplayOutcome(self.path.name, label, "skipped", what)
        if not raw.startswith("/api/v4/"):
            return ReplayOutcome(self.path.name, label, "skipped", "not the REST API")
        code = int(resp.get("code") or 0)
        recorded = _json(resp.get("body"))
        headers = {"PRIVATE-TOKEN": self._credential(req["method"], unquote(raw), recorded, code)}
        body = req.get("body") or None
        if body:
            ctype = (req.get("headers") or {}).get("Content-Type", ["application/json"])[0]
            headers["Content-Type"] = ctype
        for recorded_name, ours in self.usernames.items():
            query = query.replace(recorded_name, ours)
        url = f"{self.server.url}{self._map_path(raw)}" + (f"?{query}" if query else "")
        answer = self.http.request(req["method"], url, data=body.encode() if body else None, headers=headers,
                                  timeout=10)
        actual = _json(answer.text)
        self._learn(recorded, actual, raw)
        if answer.status_code != code:
            detail = f"status {answer.status_code}, recorded {code}"
            if isinstance(actual, dict):  # only GitLab's error text: an answer may hold a credential
                said = {k: actual[k] for k in ("message", "error") if isinstance(actual.get(k), str | dict)}
                detail += f" ({json.dumps(said)[:160]})" if said else ""
            return ReplayOutcome(self.path.name, label, "mismatched", detail)
        if recorded is not None or actual is not None:
            gap = compare_shapes(recorded, actual)
            if gap:
                return ReplayOutcome(self.path.name, label, "mismatched", gap)
        return ReplayOutcome(self.path.name, label, "matched")


def replay_cassette(path: str | Path, server: SandboxServer | None = None) -> list[ReplayOutcome]:
    """Replay one go-vcr cassette; one outcome per interaction. A running GitLab sandbox may be
    passed to reuse it (it is reset first), which saves starting a server per cassette."""
    return CassetteReplay(Path(path), server).run()
