"""Source kind `gitlab_pipeline_trigger`: renewed by overlap (create a new trigger, deliver,
delete the old one); GitLab has no rotate endpoint for triggers.

Observe: one `GET /projects/:id/triggers` per project, pages followed; the trigger is the one whose
description matches. The list shows the full token only to the trigger's owner (others see a
4-character `short_token`), so for owned triggers the observation keeps a fingerprint, which both
identifies held values without a request and makes the current value recoverable (`recover`).

A consumer whose declared URL (a Zendesk webhook endpoint, a GitLab hook URL) is a pipeline-trigger
URL (`/api/v4/projects/:id/trigger/pipeline`, `/api/v4/projects/:id/ref/:ref/trigger/pipeline`:
https://docs.gitlab.com/ci/triggers/) must name the trigger's own project on the trigger's GitLab:
anything else sends the token where it starts no pipeline, or to another instance. `validate`
checks the host and a project named as the source names it (both by path, or both by id); a project
named the other way is compared with the project's id and path in the plan (one `GET /projects/:id`,
made only then).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, ClassVar, NamedTuple
from urllib.parse import unquote, urlsplit

from reconciler.inventory.model import Consumer, Diagnostic, GitLabProvider, Inventory, Source, Token, finding
from reconciler.kinds import (
    FetchError,
    Identifying,
    Identity,
    LastUse,
    ListKey,
    Lists,
    Mintable,
    Minted,
    Recoverable,
    Revocable,
    SourceKind,
    Strategy,
    UseRecorded,
    consumer_kind,
)
from reconciler.kinds._discovery import ScannedSource, ScanScope, ScopeToken
from reconciler.kinds._gitlab import (
    CREATED_WITH_PROPERTY,
    GITLAB_TOKENS,
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    TRIGGER_FAMILY,
    api_path,
    fetched_row,
    fetcher,
    pick,
    rows,
)
from reconciler.observed import LiveToken, SourceObservation, parse_date, parse_time
from reconciler.plan_model import Finding, Reason, declared_at
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class GitLabPipelineTrigger(Source):
    project: str
    description: str  # identifies the trigger: "Zendesk Global - GitLab Ticket Sync"
    kind: ClassVar[str] = "gitlab_pipeline_trigger"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.project}:{self.description}"


SHORT_TOKEN = 4  # what non-owners see


# Its definition in the inventory schema: $defs/source_gitlab_pipeline_trigger.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A GitLab pipeline trigger token, renewed by creating a new trigger and deleting the old.",
    "properties": {
        "kind": {"const": "gitlab_pipeline_trigger", "description": "`gitlab_pipeline_trigger`."},
        "provider": PROVIDER_PROPERTY,
        "project": {
            "type": "string",
            "description": "Full path of the project the trigger runs pipelines in, or its numeric id.",
            "minLength": 1,
        },
        "description": {
            "type": "string",
            "description": "The trigger's description, which identifies it: `INSTANCE - NAME_OF_APP` when a Zendesk app uses it, e.g. `Zendesk Global - GitLab Ticket Sync`; the webhook's link when a Zendesk webhook does.",
            "minLength": 1,
        },
        "created_with": CREATED_WITH_PROPERTY,
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "project", "description"],
}


def _wrong_project(named: str, own: str) -> str:
    return (f"the pipeline-trigger URL names project {named}, but the trigger belongs to project {own}: "
            "GitLab refuses the token there (or runs another project's pipeline); name the trigger's own "
            "project (its id, or its path URL-encoded)")


def live_trigger(row: dict[str, Any], where: str) -> LiveToken:
    value = row.get("token")
    owned = isinstance(value, Secret) and len(value) > SHORT_TOKEN
    expires = parse_date(row.get("expires_at"))
    return LiveToken(
        id=str(row["id"]),
        name=str(row.get("description") or ""),
        where=where,
        created_at=parse_time(row.get("created_at")),
        expires_at=expires,
        last_used_at=parse_time(row.get("last_used")),
        owned=owned,
        fingerprint=value.fingerprint() if owned and isinstance(value, Secret) else None,
        user_id=None if not row.get("owner") else str(row["owner"].get("id")),
    )


_TRIGGER_PATH = re.compile(r"^(?P<root>.*)/api/v4/projects/(?P<project>[^/]+)/(?:ref/[^/]+/)?trigger/pipeline/?$")


class TriggerUrl(NamedTuple):
    """What a pipeline-trigger URL names: the GitLab (origin and path root) and the project."""

    origin: str  # scheme://host[:port], lower case
    root: str  # the path GitLab is served under ("" at the host's root)
    project: str  # as named: an id, or the path (URL-decoded)


def trigger_url(url: str) -> TriggerUrl | None:
    """The GitLab and project a pipeline-trigger URL names; None for any other URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    found = _TRIGGER_PATH.match(parts.path)
    if found is None or not parts.netloc:
        return None
    return TriggerUrl(f"{parts.scheme}://{parts.netloc}".lower(), found["root"].rstrip("/"), unquote(found["project"]))


def _same_form(a: str, b: str) -> bool:
    """Both ids, or both paths: comparable without asking GitLab."""
    return a.isdigit() == b.isdigit()


def _trigger_urls(token: Token) -> list[tuple[int, Consumer, str, TriggerUrl]]:
    """(index, consumer, key, what it names) of each consumer whose declared URL is a trigger URL."""
    found = []
    for index, consumer in enumerate(token.consumers):
        declared = consumer_kind(consumer.kind).declared_url(consumer)
        named = trigger_url(declared[1]) if declared is not None else None
        if declared is not None and named is not None:
            found.append((index, consumer, declared[0], named))
    return found


@fetcher("project", many=False)
def fetch_project(api: Any, scope: str) -> dict[str, Any]:
    """`GET /projects/:id`: the id and path of the project a trigger URL names the other way."""
    return dict(api.gl.http_get(api_path("projects", scope, "").rstrip("/")))


class PipelineTriggerKind(SourceKind, Mintable, Revocable, Recoverable, Identifying, UseRecorded, ScannedSource):
    model = GitLabPipelineTrigger
    schema = SCHEMA
    schema_order = 40
    value_alphabet = TOKEN_ALPHABET
    kind = "gitlab_pipeline_trigger"
    provider_kind = "gitlab"
    noun = "pipeline trigger"

    def last_use(self, live: LiveToken) -> LastUse:
        """A trigger's `last_used` is when it last started a pipeline (the API's trigger entity,
        https://docs.gitlab.com/api/pipeline_triggers/); GitLab documents no update interval for
        it as it does for access tokens. [GUESS] every use is recorded."""
        return LastUse(live.last_used_at)

    def _key(self, source: Source, credential: str = "") -> ListKey:
        assert isinstance(source, GitLabPipelineTrigger)
        return ListKey(str(source.provider), "project_triggers", source.project, credential)

    def _seen(self, source: Source, lists: Lists) -> ListKey:
        """The project's triggers as their owner sees them, when the source is created with
        another token and the list was fetched with its value (the full token is shown only to a
        trigger's owner); else as the provider's credential sees them."""
        if source.created_with:
            key = self._key(source, source.created_with)
            if key in lists and not isinstance(lists[key], FetchError):
                return key
        return self._key(source)

    def strategy(self, source: Source) -> Strategy:
        return "overlap"

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        """Created with another token whose user does not own the live trigger (seen as that user
        sees it: the token in part): created again with its value, so that user owns it (a
        trigger runs as its owner and goes with that user's account)."""
        source = token.source
        if not source.created_with or live is None or live.owned is not False:
            return []
        owner = f"user #{live.user_id}" if live.user_id else "another user"
        return [Reason(code="owner", at=declared_at(source, "created_with"),
                       message=f"the trigger #{live.id} belongs to {owner}, not to the user of {source.created_with}: "
                               f"created again with {source.created_with}'s value so that its user owns it")]

    def _project_key(self, source: Source) -> ListKey:
        assert isinstance(source, GitLabPipelineTrigger)
        return ListKey(str(source.provider), "project", source.project)

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        """The project's triggers, and when created with another token also as that token sees
        them (observe fetches that only with the token's current value at hand); the project
        itself when a consumer's trigger URL names it by id where the source names it by path (or
        the other way)."""
        source = token.source
        assert isinstance(source, GitLabPipelineTrigger)
        other_form = any(not _same_form(n.project, source.project) for *_, n in _trigger_urls(token))
        return ([self._key(source)] + ([self._key(source, source.created_with)] if source.created_with else [])
                + ([self._project_key(source)] if other_form else []))

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        """A consumer's trigger URL is on the trigger's GitLab and names its project (when both
        name it the same way; the plan compares the other way)."""
        source = token.source
        assert isinstance(source, GitLabPipelineTrigger)
        provider = inv.providers.get(str(source.provider))
        found = []
        for index, consumer, key, named in _trigger_urls(token):
            where = f"tokens.{token.name}.consumers[{index}]"
            if isinstance(provider, GitLabProvider):
                home = urlsplit(provider.url)
                origin, root = f"{home.scheme}://{home.netloc}".lower(), home.path.rstrip("/")
                if (named.origin, named.root) != (origin, root):
                    found.append(finding(consumer, key, where,
                                         f"a pipeline-trigger URL at {named.origin}{named.root}, but the trigger is "
                                         f"on {source.provider} ({origin}{root}): the token would be sent to "
                                         "another GitLab"))
                    continue
            if _same_form(named.project, source.project) and named.project != source.project:
                found.append(finding(consumer, key, where, _wrong_project(named.project, source.project)))
        return found

    def observed_findings(self, token: Token, observation: SourceObservation) -> list[Finding]:
        """A consumer's trigger URL naming the project by id where the source names it by path
        (or the other way): compared with the project GitLab shows."""
        source = token.source
        assert isinstance(source, GitLabPipelineTrigger)
        project = observation.details.get("project")
        found = []
        for _, consumer, key, named in _trigger_urls(token):
            if _same_form(named.project, source.project):
                continue  # validate compared them
            at = declared_at(consumer, key)
            if not isinstance(project, dict):
                found.append(Finding(severity="error", code="trigger_url_project", at=at, consumer=consumer.identity,
                                     message=f"{consumer.label}: its trigger URL names project {named.project}, and "
                                             f"which project that is could not be read: {project or 'not fetched'}"))
            elif named.project not in (str(project.get("id")), project.get("path_with_namespace")):
                found.append(Finding(severity="error", code="trigger_url_project", at=at, consumer=consumer.identity,
                                     message=f"{consumer.label}: " + _wrong_project(
                                         named.project, f"{source.project} (id {project.get('id')})")))
        return found

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, GitLabPipelineTrigger)
        seen = self._seen(source, lists)
        data, error = rows(lists, seen)
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        where = f"project {source.project}"
        matches = [live_trigger(r, where) for r in data or () if r.get("description") == source.description]
        if source.created_with and not seen.credential:
            # seen without the creator's value: whether its user owns the trigger is not known
            matches = [replace(t, owned=None, fingerprint=None) for t in matches]
        current, others = pick(matches)
        details: dict[str, Any] = {}
        if self._project_key(source) in lists:
            project, perror = fetched_row(lists, self._project_key(source))
            details["project"] = perror if project is None else {
                "id": str(project.get("id")), "path_with_namespace": project.get("path_with_namespace")}
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others,
                                 details=details)

    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        """Compare with the owned triggers of the list: no request. Unowned: cannot tell."""
        data, _ = rows(lists, self._seen(source, lists))
        fingerprint = value.fingerprint()
        owned_all = True
        for row in data or ():
            live = live_trigger(row, "")
            owned_all = owned_all and bool(live.owned)
            if live.fingerprint == fingerprint:
                return Identity(live.id)
        # Every trigger of the project is visible in full and none is this value: it is dead.
        return Identity(None, invalid=True) if owned_all else None

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        named = {(self._key(t.source), t.source.description) for t in tokens if isinstance(t.source, GitLabPipelineTrigger)}
        found = []
        for key, data in lists.items():
            if key.resource == "project_triggers" and not key.credential and isinstance(data, list):
                for row in data:
                    live = live_trigger(row, f"{key.provider}: project {key.scope}")
                    if (key, live.name) not in named:
                        found.append(live)
        return found

    # apply ------------------------------------------------------------------------------------

    def _manager(self, api: Any, source: Source) -> Any:
        assert isinstance(source, GitLabPipelineTrigger)
        return api.gl.projects.get(source.project, lazy=True).triggers

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        """`POST /projects/:id/triggers` (201) with the description (and expires_at if given)."""
        assert isinstance(source, GitLabPipelineTrigger)
        data: dict[str, Any] = {"description": source.description}
        if expires_at:
            data["expires_at"] = expires_at.isoformat()
        row = self._manager(api, source).create(data, retry_transient_errors=False).asdict()
        value = Secret(row.pop("token"))
        return Minted(live=live_trigger({**row, "token": value}, f"project {source.project}"), value=value)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        self._manager(api, source).delete(int(live.id))

    def recover(self, api: Any, source: Source, live: LiveToken) -> Secret | None:
        """The full token from `GET /projects/:id/triggers/:id` when we own the trigger."""
        row = self._manager(api, source).get(int(live.id)).asdict()
        value = row.get("token")
        return Secret(value) if isinstance(value, str) and len(value) > SHORT_TOKEN else None

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """Compare with the trigger as GitLab shows it to its owner (no pipeline is started);
        None when the trigger's token is not visible to us."""
        held = self.recover(api, source, live)
        return None if held is None else held == value

    # scope scans and discovery -------------------------------------------------------------

    value_format = GITLAB_TOKENS

    def id_family(self) -> str:
        return TRIGGER_FAMILY

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, GitLabPipelineTrigger)
        return source.description

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The triggers of each project of the scope."""
        return [ListKey(scope.provider, "project_triggers", path) for path in scope.projects]

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource != "project_triggers":
            return []
        found = []
        for row in rows:
            live = live_trigger(row, f"{key.provider}: project {key.scope}")
            found.append(ScopeToken(provider=key.provider, kind=self.kind, scope=key.scope, live=live,
                                    family=TRIGGER_FAMILY, declaration={
                                        "kind": self.kind, "provider": key.provider, "project": key.scope,
                                        "description": live.name}))
        return found

KIND = PipelineTriggerKind()
