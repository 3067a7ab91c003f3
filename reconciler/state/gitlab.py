"""The GitLab state backend: one document on a project's Terraform-state HTTP endpoint.

GitLab stores, versions and locks Terraform state at `/projects/:id/terraform/state/:name` and
implements Terraform's HTTP backend protocol there (sources: GitLab `lib/api/terraform/state.rb`
and `app/services/terraform/remote_state_handler.rb`; Terraform docs, "Backend Type: http"):

- `GET` answers the latest document, 204 when the state exists without a version, 404 when none.
- `POST` (body = the document) stores a new version numbered by the document's top-level
  `serial` (GitLab answers 422 "No serial in payload" without one). While the state is locked
  the update must carry the lock's id as `?ID=`; otherwise GitLab refuses it.
- `POST .../lock` with a JSON lock-info body (`ID`, `Operation`, `Info`, `Who`, `Version`,
  `Created`, `Path`, all required) takes the lock; when it is held GitLab answers 409 with the
  holder's `ID`, `Who` (its username) and `Created`. (Terraform also allows 423 for this.)
- `DELETE .../lock?ID=` releases it (409 when another id holds it); without `ID` it is a force
  unlock (what `terraform force-unlock` sends).
- Authentication: a personal/project access token in the usual header. A CI job token is
  accepted on these routes ONLY as HTTP basic auth `gitlab-ci-token:<CI_JOB_TOKEN>` (the routes
  declare `job_token_allowed: :basic_auth`; a JOB-TOKEN header is ignored there), so a client
  built with `job_token=` is re-made with basic auth for this endpoint.

GitLab keeps of a lock only its `ID`, the user and the time (`Who`, `Created`; `Info` is not
stored), so the holder travels in the ID itself: `<uuid>/<pid>@<host>/<PID space>` (store.process_space). The lease and the CI job
URL are in the document (`reconcile.lock`), written with every save and renewal under the lock; a
lock without that record (taken, then killed before the first save) has a lease counted from its
`Created`.

The document is JSON: `{"serial": N, "lineage": "<uuid>", "reconcile": {"ledger": ...,
"escrow": ...}}`; each save reads, replaces one part, and writes serial N+1, so GitLab keeps a
version per save. Escrowed values are AES-GCM ciphertexts (see escrow.py), and GitLab
additionally encrypts state at rest.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import gitlab
import gitlab.exceptions

from reconciler import __version__
from reconciler.clients import reauthenticated
from reconciler.state.errors import StateError
from reconciler.state.ledger import Ledger
from reconciler.state.store import LockInfo, StateStore, _parse_iso

_HOLDER_ID = re.compile(r"^[0-9a-f-]{36}/(\d+)@([^/]+)/?(.*)$")

if TYPE_CHECKING:
    from reconciler.secret import Secret

LOCK_OPERATION = "reconcile apply"
LOCK_CONFLICT = (409, 423)


def _state_client(gl: gitlab.Gitlab) -> gitlab.Gitlab:
    """`gl`, or for a job-token client an equivalent one that sends the job token as basic auth
    (the only way GitLab takes a job token on the Terraform-state routes)."""
    if not gl.job_token:
        return gl
    return reauthenticated(gl, http_username="gitlab-ci-token", http_password=gl.job_token)


class GitLabStore(StateStore):
    poll_interval = 1.0  # be gentle with a shared GitLab while waiting for another apply

    def __init__(self, gl: gitlab.Gitlab, project: str, name: str = "reconcile") -> None:
        self.gl = _state_client(gl)
        self.project = str(project)
        self.name = name
        self.path = f"/projects/{quote(self.project, safe='')}/terraform/state/{quote(name, safe='')}"
        self.where = f"GitLab Terraform state {name!r} of project {self.project} ({gl.url})"
        self._held: str | None = None  # id of the lock this process holds, sent with updates
        self._cached: dict[str, Any] | None = None  # the document as last read/written under our lock
        self._lease: LockInfo | None = None  # our lock's record, saved in the document with each save
        self._mutex = threading.RLock()  # the lease renewer saves from its own thread

    def continue_with(self, old: str | None, new: Secret) -> bool:
        """After apply rotated a GitLab credential in place: when this store authenticates with
        that very credential (`old`, now revoked), send everything from here on with `new` (a
        Secret), the lock held included (its id, not the token, names it). False: not ours."""
        if not old or self.gl.private_token != old:
            return False
        self.gl = reauthenticated(self.gl, private_token=new.reveal())
        return True

    # --- HTTP ----------------------------------------------------------------------------------

    def _request(self, verb: str, path: str, **kwargs: Any):
        try:
            return self.gl.http_request(verb, path, **kwargs)
        except gitlab.exceptions.GitlabHttpError as err:
            raise _HTTPFailure(err.response_code, err.response_body) from None
        except gitlab.exceptions.GitlabError as err:
            raise StateError(f"{self.where}: {verb.upper()} failed: {err.error_message}") from None
        except OSError as err:  # requests' connection errors and timeouts
            raise StateError(f"{self.where}: {verb.upper()} failed: {type(err).__name__}") from None

    def _fail(self, doing: str, failure: _HTTPFailure) -> StateError:
        hints = {
            401: "the credential was refused",
            403: "the credential may not administer Terraform state of this project (Maintainer role needed)",
            404: "no such project, or the credential cannot see it",
            409: "the state is locked by another apply",
            413: "the state document is too large",
        }
        hint = hints.get(failure.status, failure.message())
        return StateError(f"{self.where}: {doing} failed: HTTP {failure.status}: {hint}")

    # --- document ------------------------------------------------------------------------------

    def _load_doc(self) -> dict[str, Any] | None:
        if self._held and self._cached is not None:
            # while we hold the lock nobody else writes: save the GET before every save
            return json.loads(json.dumps(self._cached))
        try:
            response = self._request("get", self.path)
        except _HTTPFailure as failure:
            if failure.status == 404:
                return None
            raise self._fail("reading the state", failure) from None
        if response.status_code == 204 or not response.content:
            return None
        try:
            doc = json.loads(response.content)
        except ValueError as err:
            raise StateError(f"{self.where}: corrupt state: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("reconcile"), dict):
            raise StateError(f"{self.where}: corrupt state: not a reconcile state document (no 'reconcile' object)")
        if not isinstance(doc.get("serial"), int):
            raise StateError(f"{self.where}: corrupt state: 'serial' must be an integer")
        if self._held:
            self._cached = json.loads(json.dumps(doc))
        return doc

    def _save_part(self, part: str, value: Any) -> None:
        with self._mutex:
            self._save_part_locked(part, value)

    def _save_part_locked(self, part: str, value: Any) -> None:
        doc = self._load_doc() or {"serial": 0, "lineage": str(uuid.uuid4()), "reconcile": {}}
        doc["reconcile"][part] = value
        if self._held and self._lease is not None:
            doc["reconcile"]["lock"] = self._lease.to_json()
        doc["serial"] += 1
        # current GitLab reads the version number from the body's `serial`; older releases took
        # it from the `serial` parameter: send both
        query: dict[str, Any] = {"serial": doc["serial"]}
        if self._held:
            query["ID"] = self._held
        try:
            self._request(
                "post",
                self.path,
                query_data=query,
                post_data=json.dumps(doc, sort_keys=True).encode(),
                raw=True,
                extra_headers={"Content-Type": "application/json"},
            )
        except _HTTPFailure as failure:
            self._cached = None
            raise self._fail(f"saving the {part}", failure) from None
        self._cached = json.loads(json.dumps(doc)) if self._held else None

    def load_ledger(self) -> Ledger:
        with self._mutex:
            doc = self._load_doc()
        data = (doc or {}).get("reconcile", {}).get("ledger")
        return Ledger() if data is None else Ledger.from_json(data, where=f"{self.where}: ledger")

    def save_ledger(self, ledger: Ledger, *, durable: bool = True) -> None:
        # every save is a new version of the whole document (the Terraform-state protocol has no
        # append): a save that need not be durable waits for the next durable one
        if durable:
            # written under the ledger's lock: a copy taken before another thread's newer one
            # must not be stored after it (each save replaces the whole document)
            with ledger.mutex:
                self._save_part("ledger", ledger.to_json())
                ledger.mark_saved()

    def load_escrow_doc(self) -> dict[str, Any] | None:
        with self._mutex:
            doc = self._load_doc()
        return (doc or {}).get("reconcile", {}).get("escrow")

    def save_escrow_doc(self, doc: dict[str, Any]) -> None:
        self._save_part("escrow", doc)

    # --- lock ----------------------------------------------------------------------------------

    def _lock_body(self, info: LockInfo) -> dict[str, str]:
        return {
            "ID": info.id,
            "Operation": LOCK_OPERATION,
            "Info": info.owner,
            "Who": info.owner,
            "Version": f"reconcile {__version__}",
            "Created": info.created,
            "Path": self.name,
        }

    def _new_lock(self, owner: str) -> LockInfo:
        info = LockInfo.new(owner, self.lease)
        return replace(info, id=f"{info.id}/{info.pid}@{info.host[:120].replace('/', '_')}/{info.space}")

    def _holder(self, failure: _HTTPFailure) -> LockInfo:
        """The holder a 409 names: host and PID from its ID, lease and job from the document."""
        try:
            data = json.loads(failure.body or b"{}")
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        who = data.get("Who") or "someone"
        holder = LockInfo(id=str(data.get("ID") or "?"), owner=f"GitLab user {who}",
                          created=str(data.get("Created") or "?"))
        found = _HOLDER_ID.match(holder.id)
        if found:
            holder = replace(holder, pid=int(found.group(1)), host=found.group(2), space=found.group(3))
        return self._with_lease(holder)

    def _with_lease(self, holder: LockInfo) -> LockInfo:
        try:
            doc = self._load_doc()
        except StateError:
            doc = None
        record = ((doc or {}).get("reconcile") or {}).get("lock")
        if isinstance(record, dict) and record.get("id") == holder.id:
            return replace(holder, job=str(record.get("job") or ""), expires=str(record.get("expires") or ""))
        created = _parse_iso(holder.created)
        if created is None:
            return holder
        # taken and never saved under (killed at once, or another tool): the lease counts from then
        return replace(holder, expires=(created + timedelta(seconds=self.lease)).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        try:
            self._request("post", f"{self.path}/lock", post_data=self._lock_body(info))
        except _HTTPFailure as failure:
            if failure.status not in LOCK_CONFLICT:
                raise self._fail("taking the lock", failure) from None
            holder = self._holder(failure)
            if holder.id != info.id:  # our own id: an earlier attempt succeeded but its answer was lost
                return holder
        self._held, self._cached, self._lease = info.id, None, info
        return None

    def _renew(self, info: LockInfo) -> None:
        with self._mutex:
            if self._held != info.id:
                raise StateError(f"{self.where}: cannot renew the lease: the lock is no longer held")
            self._lease = info
            self._save_part_locked("lock", info.to_json())

    def _take_over(self, stale: LockInfo, info: LockInfo) -> bool:
        try:  # with the stale ID: GitLab removes the lock only if it is still that one
            self._request("delete", f"{self.path}/lock", query_data={"ID": stale.id})
        except _HTTPFailure as failure:
            if failure.status in LOCK_CONFLICT:
                return False
            if failure.status != 404:
                raise self._fail("taking over the lock", failure) from None
        return self._try_lock(info) is None

    def _release(self, info: LockInfo) -> None:
        try:
            self._request("delete", f"{self.path}/lock", query_data={"ID": info.id})
        except _HTTPFailure as failure:
            if failure.status in LOCK_CONFLICT:
                raise StateError(
                    f"{self.where}: cannot release lock {info.id}: another lock holds the state now"
                ) from None
            if failure.status != 404:
                raise self._fail("releasing the lock", failure) from None
        finally:
            if self._held == info.id:
                self._held, self._cached, self._lease = None, None, None

    def lock_holder(self) -> LockInfo | None:
        """GitLab has no read endpoint for the lock: probe by taking it with a fresh id and
        releasing it at once when that succeeds."""
        probe = LockInfo.new("reconcile state (lock probe)")
        try:
            self._request("post", f"{self.path}/lock", post_data=self._lock_body(probe))
        except _HTTPFailure as failure:
            if failure.status in LOCK_CONFLICT:
                return self._holder(failure)
            raise self._fail("probing the lock", failure) from None
        try:
            self._request("delete", f"{self.path}/lock", query_data={"ID": probe.id})
        except _HTTPFailure as failure:
            raise self._fail("releasing the lock probe", failure) from None
        return None

    def force_unlock(self) -> LockInfo | None:
        holder = self.lock_holder()
        if holder is not None:
            try:
                self._request("delete", f"{self.path}/lock")  # no ID: force unlock
            except _HTTPFailure as failure:
                raise self._fail("removing the lock", failure) from None
        return holder


class _HTTPFailure(Exception):
    """A non-2xx answer, kept with its body (the lock holder is in a 409's body)."""

    def __init__(self, status: int | None, body: bytes | None) -> None:
        super().__init__(status)
        self.status = status or 0
        self.body = body

    def message(self) -> str:
        try:
            data = json.loads(self.body or b"")
            text = data.get("message") or data.get("error") if isinstance(data, dict) else None
        except ValueError:
            text = None
        return str(text)[:200] if text else "unexpected answer"
