"""GitLab's Terraform-state HTTP backend: `/projects/:id/terraform/state/:name` (+ `/lock`).

As GL `lib/api/terraform/state.rb` and `app/services/terraform/remote_state_handler.rb` implement it:
- GET answers the latest version's bytes (200), 204 for a state without versions, 404
  `{"message":"404 Not found"}` for an unknown state.
- POST stores a new version (200, empty); an empty body answers 204 and stores nothing. Optional
  `?serial=` names the version. While the state is locked, the request must carry the lock's
  `?ID=`; a missing or different ID is refused (409). Sending an ID to an unlocked state is refused
  too (`lock_matches?` compares the lock's id with the one sent).
- DELETE removes the state (200) under the same lock rule.
- POST `/lock` with a JSON body (`ID`, `Operation`, `Info`, `Who`, `Version`, `Created`, `Path`,
  all required) locks it (200) and answers the lock info JSON; when locked already, 409 with the
  current holder's info. It creates the state if needed.
- DELETE `/lock` unlocks (200); with `?ID=` (or a JSON body `ID`) different from the lock's, 409;
  without an ID it force-unlocks.
Reading needs Developer, writing Maintainer. Authentication: PRIVATE-TOKEN, Bearer, Basic (any
username + token as password, as Terraform sends it) or a CI job token of that project (JOB-TOKEN
header, or Basic with username `gitlab-ci-token`).

[UNCERTAIN] the status of POST/DELETE on a state locked by another ID: the handler raises
`StateLockedError`; this sandbox answers 409 as the lock endpoints do. Terraform treats any
non-2xx as a failure, so a client must not depend on the exact code.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .core import HTTPError, Request, Response
from .gitlab_store import iso

if TYPE_CHECKING:
    from .gitlab import Caller

STATE = "/projects/{id}/terraform/state/{name}"
LOCK_FIELDS = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")
CONFLICT = {"message": "409 Conflict"}


class TerraformRoutes:
    def _register_terraform(self) -> None:
        self.api("GET", STATE, self._tf_get, job_token=True)
        self.api("POST", STATE, self._tf_post, job_token=True)
        self.api("DELETE", STATE, self._tf_delete, job_token=True)
        self.api("POST", STATE + "/lock", self._tf_lock, job_token=True)
        self.api("DELETE", STATE + "/lock", self._tf_unlock, job_token=True)

    # helpers ------------------------------------------------------------------------------------

    def _tf_find(self, project: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((s for s in self.store.tables["terraform_states"].values()
                     if s["project_id"] == project["id"] and s["name"] == name), None)

    def _tf_find_or_create(self, project: dict[str, Any], name: str) -> dict[str, Any]:
        state = self._tf_find(project, name)
        if state is None:
            now = iso(self.store.now())
            state = self.store.insert("terraform_states", {
                "project_id": project["id"], "name": name, "versions": [], "lock": None,
                "created_at": now, "updated_at": now,
            })
        return state

    def _tf_project(self, request: Request, caller: Caller, write: bool) -> dict[str, Any]:
        from .gitlab import DEVELOPER, MAINTAINER

        return self.find_project(request.params["id"], caller, MAINTAINER if write else DEVELOPER)

    @staticmethod
    def _tf_lock_id(request: Request) -> str | None:
        if request.arg("ID") is not None:
            return request.arg("ID")
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            body = {}
        return body.get("ID") if isinstance(body, dict) else None

    @staticmethod
    def _tf_lock_matches(state: dict[str, Any], lock_id: str | None) -> bool:
        held = (state.get("lock") or {}).get("ID")
        if held is None and lock_id is None:
            return True
        return (held or "") == (lock_id or "")

    # handlers -----------------------------------------------------------------------------------

    def _tf_get(self, request: Request, caller: Caller) -> Response:
        project = self._tf_project(request, caller, write=False)
        state = self._tf_find(project, request.params["name"])
        if state is None:
            raise HTTPError(404, {"message": "404 Not found"})
        if not state["versions"]:
            return Response(204)
        data = base64.b64decode(state["versions"][-1]["data"])
        return Response(200, data, {"Content-Type": "application/json"})

    def _tf_post(self, request: Request, caller: Caller) -> Response:
        project = self._tf_project(request, caller, write=True)
        if not request.body:
            return Response(204)
        state = self._tf_find_or_create(project, request.params["name"])
        if not self._tf_lock_matches(state, request.arg("ID")):
            raise HTTPError(409, CONFLICT)
        serial = request.arg("serial")
        version = int(serial) if serial and serial.isdigit() else len(state["versions"])
        state["versions"].append({
            "version": version, "data": base64.b64encode(request.body).decode(),
            "created_at": iso(self.store.now()), "created_by": caller.id,
            "job_id": caller.job["id"] if caller.job else None,
        })
        state["updated_at"] = iso(self.store.now())
        return Response(200)

    def _tf_delete(self, request: Request, caller: Caller) -> Response:
        project = self._tf_project(request, caller, write=True)
        state = self._tf_find(project, request.params["name"])
        if state is None:
            raise HTTPError(404, {"message": "404 Not found"})
        if not self._tf_lock_matches(state, request.arg("ID")):
            raise HTTPError(409, CONFLICT)
        del self.store.tables["terraform_states"][state["id"]]
        return Response(200)

    def _tf_lock(self, request: Request, caller: Caller) -> Response:
        project = self._tf_project(request, caller, write=True)
        params = request.merged_params()
        absent = [f for f in LOCK_FIELDS if params.get(f) is None]  # Grape `requires`: present, may be blank
        if absent:
            raise HTTPError(400, {"error": f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing"})
        state = self._tf_find_or_create(project, request.params["name"])
        status = 200
        if state.get("lock"):
            status = 409
        else:
            state["lock"] = {"ID": str(params["ID"]), "Operation": params["Operation"], "Info": params["Info"],
                             "Version": params["Version"], "Path": params["Path"], "user_id": caller.id,
                             "Created": iso(self.store.now())}
        lock = state["lock"]
        holder = self.store.users().get(lock["user_id"])
        info = {"Operation": params["Operation"], "Info": params["Info"], "Version": params["Version"],
                "Path": params["Path"], "ID": lock["ID"], "Who": holder["username"] if holder else "",
                "Created": lock["Created"]}
        return Response(status, json.dumps(info).encode(), {"Content-Type": "application/json"})

    def _tf_unlock(self, request: Request, caller: Caller) -> Response:
        project = self._tf_project(request, caller, write=True)
        state = self._tf_find(project, request.params["name"])
        if state is None:
            raise HTTPError(404, {"message": "404 Not found"})
        lock_id = self._tf_lock_id(request)
        if lock_id is not None and not self._tf_lock_matches(state, lock_id):
            return Response(409)
        state["lock"] = None
        return Response(200)

    # test hook ------------------------------------------------------------------------------------

    def terraform_state(self, project: int | str, name: str) -> dict[str, Any] | None:
        """The state record: `versions` (each with base64 `data`), `lock` (or None)."""
        with self.lock:
            record = self._project_record(str(project))
            if record is None:
                return None
            found = self._tf_find(record, name)
            return json.loads(json.dumps(found)) if found else None
