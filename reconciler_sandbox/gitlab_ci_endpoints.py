"""What the CI pipeline needs from GitLab beyond `gitlab_work`: merging a merge request, and
finding the merge request a commit on the default branch came from.

- `PUT /projects/:id/merge_requests/:iid/merge` (GL `lib/api/merge_requests.rb`, "Merge a merge
  request"): 401 when the caller cannot merge (below Developer), 405 when the merge request is not
  open, 409 "SHA does not match HEAD of source branch: <sha>" when `sha` is given and differs,
  otherwise 200 with the merge request, now `merged`, with `merge_commit_sha` (or
  `squash_commit_sha` with `squash=true`), `merged_by`, `merge_user` and `merged_at`.
- `GET /projects/:id/repository/commits/:sha/merge_requests` (GL `lib/api/commits.rb`) answers
  `MergeRequestsFinder(commit_sha:)`, i.e. `MergeRequest.by_related_commit_sha`
  (GL `app/models/merge_request.rb`): merge requests whose diff contains the commit, or whose
  `merge_commit_sha` / `squash_commit_sha` is it. So after a merge, `CI_COMMIT_SHA` of the
  default-branch pipeline (the merge commit) finds the merged merge request. A short SHA resolves
  like `project.commit(sha)` does. The sandbox has no repository: a SHA that belongs to no merge
  request answers `[]` where GitLab would answer 404 "Commit Not Found" for a commit that does not
  exist at all (callers must treat both as "no merge request").

The `_mr_entity` override fills the merge fields `gitlab_work` leaves null and counts user notes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .core import HTTPError, Request, Response
from .gitlab_store import iso

if TYPE_CHECKING:
    from .gitlab import Caller

DEVELOPER = 30


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def related_shas(mr: dict[str, Any]) -> list[str]:
    """Every commit SHA `by_related_commit_sha` ties to this merge request."""
    shas = [mr.get("sha") or "", *(mr.get("commits") or [])]
    shas += [mr.get("merge_commit_sha") or "", mr.get("squash_commit_sha") or ""]
    return [s for s in shas if s]


class MergeRequestCIRoutes:
    def _register_ci_endpoints(self) -> None:
        self.api("PUT", "/projects/{id}/merge_requests/{iid}/merge", self._mr_merge)

    def _mr_entity(self, request: Request, mr: dict[str, Any]) -> dict[str, Any]:
        entity = super()._mr_entity(request, mr)  # type: ignore[misc]
        merged_by = self._author(request, mr["merged_by_id"]) if mr.get("merged_by_id") else None
        entity.update(
            state=mr["state"], merge_commit_sha=mr.get("merge_commit_sha"),
            squash_commit_sha=mr.get("squash_commit_sha"), merged_at=mr.get("merged_at"),
            merged_by=merged_by, merge_user=merged_by, squash=bool(mr.get("squash")),
            user_notes_count=sum(1 for n in self.store.tables["notes"].values()
                                 if n["noteable_type"] == "MergeRequest" and n["noteable_id"] == mr["id"]),
        )
        if mr["state"] != "opened":
            # GL DetailedMergeStatusService: the first check, CheckOpenStatusService, answers not_open
            entity["detailed_merge_status"] = "not_open"
        return entity

    def _mrs_for_commit(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        sha = request.params["sha"].lower()
        rows = [m for m in self.store.tables["merge_requests"].values()
                if m["project_id"] == project["id"] and len(sha) >= 7
                and any(s.lower().startswith(sha) for s in related_shas(m))]
        rows.sort(key=lambda m: m["created_at"], reverse=True)  # the finder's default: created_desc
        return self.paginate(request, [self._mr_entity(request, m) for m in rows])

    def _mr_merge(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        mr = self._mr(project, request.params["iid"])
        if self.project_level(caller.user, project) < DEVELOPER:
            raise HTTPError(401, {"message": "401 Unauthorized"})
        if mr["state"] != "opened":
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        params = request.merged_params()
        wanted = params.get("sha")
        if wanted and wanted != mr["sha"]:
            raise HTTPError(409, {"message": f"SHA does not match HEAD of source branch: {mr['sha']}"})
        now = iso(self.store.now())
        # The merge commit's SHA: derived from what is merged (the sandbox has no repository).
        commit = hashlib.sha1(f"merge {project['id']} !{mr['iid']} {mr['sha']} {now}".encode()).hexdigest()
        squash = _bool(params.get("squash", mr.get("squash", False)))
        mr.update(state="merged", merged_at=now, updated_at=now, merged_by_id=caller.id, squash=squash,
                  merge_commit_sha=commit)
        if squash:
            mr["squash_commit_sha"] = hashlib.sha1(f"squash {commit}".encode()).hexdigest()
        if _bool(params.get("should_remove_source_branch", False)):
            mr["should_remove_source_branch"] = True
        return Response(200, self._mr_entity(request, mr))
