"""Issues, merge requests and their notes: what the expiry report and the MR plan comment use.

Shapes follow GL `lib/api/entities/issue_basic.rb`, `merge_request_basic.rb`, `note.rb` (a
subset of their fields); routes and parameters follow `lib/api/issues.rb`,
`merge_requests.rb`, `notes.rb` and `commits.rb` (`/repository/commits/:sha/merge_requests`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import HTTPError, Request, Response
from .gitlab_store import iso

if TYPE_CHECKING:
    from .gitlab import Caller


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


class WorkRoutes:
    def _register_work(self) -> None:
        issues = "/projects/{id}/issues"
        self.api("GET", issues, self._issue_list)
        self.api("POST", issues, self._issue_create)
        self.api("GET", issues + "/{iid}", self._issue_get)
        self.api("PUT", issues + "/{iid}", self._issue_update)
        mrs = "/projects/{id}/merge_requests"
        self.api("GET", mrs, self._mr_list)
        self.api("GET", mrs + "/{iid}", self._mr_get)
        self.api("GET", "/projects/{id}/repository/commits/{sha}/merge_requests", self._mrs_for_commit)
        for kind, prefix in (("Issue", issues), ("MergeRequest", mrs)):
            self.api("GET", prefix + "/{iid}/notes", self._notes_handler(kind, self._note_list))
            self.api("POST", prefix + "/{iid}/notes", self._notes_handler(kind, self._note_create))
            self.api("GET", prefix + "/{iid}/notes/{note_id}", self._notes_handler(kind, self._note_get))
            self.api("PUT", prefix + "/{iid}/notes/{note_id}", self._notes_handler(kind, self._note_update))
            self.api("DELETE", prefix + "/{iid}/notes/{note_id}", self._notes_handler(kind, self._note_delete))

    # entities ---------------------------------------------------------------------------------------

    def _author(self, request: Request, user_id: int) -> dict[str, Any] | None:
        from .gitlab_entities import user_basic

        user = self.store.users().get(user_id)
        return user_basic(self.store, user, request.base_url) if user else None

    def _project_full_path(self, project_id: int) -> str:
        return self.store.tables["projects"][project_id]["path_with_namespace"]

    def _issue_entity(self, request: Request, issue: dict[str, Any]) -> dict[str, Any]:
        path = self._project_full_path(issue["project_id"])
        web = f"{request.base_url}/{path}/-/issues/{issue['iid']}"
        notes = sum(1 for n in self.store.tables["notes"].values()  # user notes: comments, not system notes
                    if n["noteable_type"] == "Issue" and n["noteable_id"] == issue["id"] and not n.get("system"))
        return {
            "id": issue["id"], "iid": issue["iid"], "project_id": issue["project_id"], "title": issue["title"],
            "description": issue["description"], "state": issue["state"], "created_at": issue["created_at"],
            "updated_at": issue["updated_at"], "closed_at": issue.get("closed_at"), "closed_by": None,
            "labels": list(issue["labels"]), "milestone": None, "assignees": [],
            "author": self._author(request, issue["author_id"]), "type": "ISSUE", "assignee": None,
            "user_notes_count": notes, "merge_requests_count": 0, "upvotes": 0, "downvotes": 0, "due_date": None,
            "confidential": False, "discussion_locked": None, "issue_type": "issue", "web_url": web,
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "task_completion_status": {"count": 0, "completed_count": 0},
            "references": {"short": f"#{issue['iid']}", "relative": f"#{issue['iid']}", "full": f"{path}#{issue['iid']}"},
            "severity": "UNKNOWN",
            "_links": {"self": f"{request.base_url}/api/v4/projects/{issue['project_id']}/issues/{issue['iid']}",
                       "notes": f"{request.base_url}/api/v4/projects/{issue['project_id']}/issues/{issue['iid']}/notes",
                       "award_emoji": f"{request.base_url}/api/v4/projects/{issue['project_id']}/issues/"
                                      f"{issue['iid']}/award_emoji",
                       "project": f"{request.base_url}/api/v4/projects/{issue['project_id']}",
                       "closed_as_duplicate_of": None},
        }

    def _mr_entity(self, request: Request, mr: dict[str, Any]) -> dict[str, Any]:
        path = self._project_full_path(mr["project_id"])
        return {
            "id": mr["id"], "iid": mr["iid"], "project_id": mr["project_id"], "title": mr["title"],
            "description": mr["description"], "state": mr["state"], "created_at": mr["created_at"],
            "updated_at": mr["updated_at"], "merged_by": None, "merge_user": None, "merged_at": None,
            "closed_by": None, "closed_at": None, "target_branch": mr["target_branch"],
            "source_branch": mr["source_branch"], "user_notes_count": 0, "upvotes": 0, "downvotes": 0,
            "author": self._author(request, mr["author_id"]), "assignees": [], "assignee": None, "reviewers": [],
            "source_project_id": mr["project_id"], "target_project_id": mr["project_id"],
            "labels": list(mr.get("labels", [])), "draft": False, "work_in_progress": False, "milestone": None,
            "merge_when_pipeline_succeeds": False, "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable", "sha": mr["sha"], "merge_commit_sha": None,
            "squash_commit_sha": None, "discussion_locked": None, "should_remove_source_branch": None,
            "force_remove_source_branch": True, "prepared_at": mr["created_at"],
            "reference": f"!{mr['iid']}", "references": {"short": f"!{mr['iid']}", "relative": f"!{mr['iid']}",
                                                        "full": f"{path}!{mr['iid']}"},
            "web_url": f"{request.base_url}/{path}/-/merge_requests/{mr['iid']}",
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "squash": False, "squash_on_merge": False,
            "task_completion_status": {"count": 0, "completed_count": 0}, "has_conflicts": False,
            "blocking_discussions_resolved": True,
        }

    def _note_entity(self, request: Request, note: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": note["id"], "type": None, "body": note["body"], "author": self._author(request, note["author_id"]),
            "created_at": note["created_at"], "updated_at": note["updated_at"], "system": bool(note.get("system")),
            "noteable_id": note["noteable_id"], "noteable_type": note["noteable_type"],
            "project_id": note["project_id"], "resolvable": False, "confidential": False, "internal": False,
            "imported": False, "imported_from": "none", "noteable_iid": note["noteable_iid"],
            "commands_changes": {},
        }

    # issues -------------------------------------------------------------------------------------------

    def _issue(self, project: dict[str, Any], raw: str) -> dict[str, Any]:
        issue = next((i for i in self.store.tables["issues"].values()
                      if i["project_id"] == project["id"] and str(i["iid"]) == raw), None)
        if issue is None:
            raise HTTPError(404, {"message": "404 Not found"})
        return issue

    def _issue_list(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        rows = [i for i in self.store.tables["issues"].values() if i["project_id"] == project["id"]]
        state = request.arg("state") or "all"
        if state in ("opened", "closed"):
            rows = [i for i in rows if i["state"] == state]
        wanted = _labels(request.arg("labels"))
        if wanted:
            rows = [i for i in rows if all(w in i["labels"] for w in wanted)]
        search = (request.arg("search") or "").lower()
        if search:
            rows = [i for i in rows if search in i["title"].lower() or search in (i["description"] or "").lower()]
        rows.sort(key=lambda i: i["created_at"], reverse=(request.arg("sort") or "desc") == "desc")
        return self.paginate(request, [self._issue_entity(request, i) for i in rows])

    def _issue_get(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        return Response(200, self._issue_entity(request, self._issue(project, request.params["iid"])))

    def _issue_create(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        params = request.merged_params()
        if not params.get("title"):
            raise HTTPError(400, {"error": "title is missing"})
        now = iso(self.store.now())
        iid = 1 + max((i["iid"] for i in self.store.tables["issues"].values() if i["project_id"] == project["id"]),
                      default=0)
        issue = self.store.insert("issues", {
            "project_id": project["id"], "iid": iid, "title": str(params["title"]),
            "description": str(params.get("description") or ""), "state": "opened",
            "labels": _labels(params.get("labels")), "author_id": caller.id, "created_at": now, "updated_at": now,
            "closed_at": None,
        })
        return Response(201, self._issue_entity(request, issue))

    def _issue_update(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        issue = self._issue(project, request.params["iid"])
        if issue["author_id"] != caller.id and self.project_level(caller.user, project) < 20:
            raise HTTPError(403, {"message": "403 Forbidden"})
        params = request.merged_params()
        if params.get("description") is not None and str(params["description"]) != issue["description"]:
            self._system_note(issue, caller, "changed the description")
        for key in ("title", "description"):
            if params.get(key) is not None:
                issue[key] = str(params[key])
        if "labels" in params:
            issue["labels"] = _labels(params["labels"])
        for label in _labels(params.get("add_labels")):
            if label not in issue["labels"]:
                issue["labels"].append(label)
        removed = set(_labels(params.get("remove_labels")))
        issue["labels"] = [lbl for lbl in issue["labels"] if lbl not in removed]
        now = iso(self.store.now())
        event = params.get("state_event")
        if event == "close" and issue["state"] != "closed":
            issue.update(state="closed", closed_at=now)
        elif event == "reopen" and issue["state"] != "opened":
            issue.update(state="opened", closed_at=None)
        issue["updated_at"] = now
        return Response(200, self._issue_entity(request, issue))

    def _system_note(self, issue: dict[str, Any], caller: Caller, body: str) -> None:
        """GitLab records some changes of an issue as system notes, listed with the comments
        (`system: true`; https://docs.gitlab.com/api/notes/): a new description is one ("changed
        the description", GL `SystemNotes::IssuablesService#change_description_note`). A state or
        label change is a resource event instead, not a note (same page), so closing adds none."""
        now = iso(self.store.now())
        self.store.insert("notes", {
            "noteable_type": "Issue", "noteable_id": issue["id"], "noteable_iid": issue["iid"],
            "project_id": issue["project_id"], "body": body, "author_id": caller.id, "created_at": now,
            "updated_at": now, "system": True,
        })

    # merge requests ---------------------------------------------------------------------------------

    def _mr(self, project: dict[str, Any], raw: str) -> dict[str, Any]:
        mr = next((m for m in self.store.tables["merge_requests"].values()
                   if m["project_id"] == project["id"] and str(m["iid"]) == raw), None)
        if mr is None:
            raise HTTPError(404, {"message": "404 Not found"})
        return mr

    def _mr_list(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        rows = [m for m in self.store.tables["merge_requests"].values() if m["project_id"] == project["id"]]
        state = request.arg("state") or "all"
        if state != "all":
            rows = [m for m in rows if m["state"] == state]
        return self.paginate(request, [self._mr_entity(request, m) for m in rows])

    def _mr_get(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        return Response(200, self._mr_entity(request, self._mr(project, request.params["iid"])))

    def _mrs_for_commit(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        sha = request.params["sha"]
        rows = [m for m in self.store.tables["merge_requests"].values()
                if m["project_id"] == project["id"] and len(sha) >= 7 and m["sha"].startswith(sha)]
        return self.paginate(request, [self._mr_entity(request, m) for m in rows])

    # notes ----------------------------------------------------------------------------------------

    def _notes_handler(self, kind: str, handler):
        def bound(request: Request, caller: Caller) -> Response:
            project = self.find_project(request.params["id"], caller)
            target = self._issue(project, request.params["iid"]) if kind == "Issue" \
                else self._mr(project, request.params["iid"])
            return handler(request, caller, kind, target)

        return bound

    def _note(self, request: Request, kind: str, target: dict[str, Any]) -> dict[str, Any]:
        raw = request.params["note_id"]
        note = self.store.tables["notes"].get(int(raw)) if raw.isdigit() else None
        if note is None or note["noteable_type"] != kind or note["noteable_id"] != target["id"]:
            raise HTTPError(404, {"message": "404 Note Not Found"})
        return note

    def _note_list(self, request: Request, caller: Caller, kind: str, target: dict[str, Any]) -> Response:
        rows = [n for n in self.store.tables["notes"].values()
                if n["noteable_type"] == kind and n["noteable_id"] == target["id"]]
        rows.sort(key=lambda n: n["id"], reverse=(request.arg("sort") or "desc") == "desc")
        return self.paginate(request, [self._note_entity(request, n) for n in rows])

    def _note_get(self, request: Request, caller: Caller, kind: str, target: dict[str, Any]) -> Response:
        return Response(200, self._note_entity(request, self._note(request, kind, target)))

    def _note_create(self, request: Request, caller: Caller, kind: str, target: dict[str, Any]) -> Response:
        body = request.merged_params().get("body")
        if not body:
            raise HTTPError(400, {"error": "body is missing"})
        now = iso(self.store.now())
        note = self.store.insert("notes", {
            "noteable_type": kind, "noteable_id": target["id"], "noteable_iid": target["iid"],
            "project_id": target["project_id"], "body": str(body), "author_id": caller.id,
            "created_at": now, "updated_at": now,
        })
        return Response(201, self._note_entity(request, note))

    def _note_update(self, request: Request, caller: Caller, kind: str, target: dict[str, Any]) -> Response:
        note = self._note(request, kind, target)
        if note["author_id"] != caller.id and not caller.admin:
            raise HTTPError(403, {"message": "403 Forbidden"})
        body = request.merged_params().get("body")
        if not body:
            raise HTTPError(400, {"error": "body is missing"})
        note["body"] = str(body)
        note["updated_at"] = iso(self.store.now())
        return Response(200, self._note_entity(request, note))

    def _note_delete(self, request: Request, caller: Caller, kind: str, target: dict[str, Any]) -> Response:
        note = self._note(request, kind, target)
        if note["author_id"] != caller.id and not caller.admin:
            raise HTTPError(403, {"message": "403 Forbidden"})
        del self.store.tables["notes"][note["id"]]
        return Response(204)
