"""Consumer kind `gitlab_webhook`: the value goes into a project/group hook's secret `token`, a
URL variable or a custom header. All three are write-only (GitLab never returns them), so the
state comes from the ledger.

Observe: one `GET /{projects,groups}/:id/hooks` per project/group; the hook is matched by id, URL
or name. In `mode: recreate` also one `GET .../hooks/:id` for that hook, because the list omits the
URL-variable and custom-header keys, and a recreate that would drop values the inventory does not
declare is refused (DESIGN invariant 4). Write (`mode: update`): `PUT .../hooks/:id` with `token`
(and the unchanged `url`: a URL change without `token` clears it), or
`PUT .../hooks/:id/{url_variables,custom_headers}/:key`. `mode: recreate`: copy every readable
field, delete, create with the declared values re-supplied.
"""

from __future__ import annotations

from typing import Any

from reconciler.inventory.model import Consumer, GitLabWebhook, Token
from reconciler.kinds import ConsumerKind, ListKey, Lists, Reading
from reconciler.kinds._gitlab import rows
from reconciler.observed import ConsumerObservation
from reconciler.secret import Secret


def _list_key(c: GitLabWebhook) -> ListKey:
    if c.project is not None:
        return ListKey(c.provider, "project_hooks", c.project)
    return ListKey(c.provider, "group_hooks", str(c.group))


def _detail_key(c: GitLabWebhook, hook_id: str) -> ListKey:
    if c.project is not None:
        return ListKey(c.provider, "project_hook", f"{c.project}#{hook_id}")
    return ListKey(c.provider, "group_hook", f"{c.group}#{hook_id}")


def find_hook(c: GitLabWebhook, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in data:
        if str(row.get("id")) == c.hook or row.get("url") == c.hook or row.get("name") == c.hook:
            return row
    return None


def _keys(items: Any) -> list[str]:
    return sorted(str(i.get("key")) for i in items or () if isinstance(i, dict))


class WebhookKind(ConsumerKind):
    kind = "gitlab_webhook"
    provider_kind = "gitlab"

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        assert isinstance(consumer, GitLabWebhook)
        keys = [_list_key(consumer)]
        data, _ = rows(lists, keys[0])
        if consumer.mode == "recreate" and isinstance(data, list):
            hook = find_hook(consumer, data)
            if hook is not None:
                keys.append(_detail_key(consumer, str(hook["id"])))
        return keys

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        base = {"identity": c.identity, "token": token.name, "readable": False}
        data, error = rows(lists, _list_key(c))
        if error or data is None:
            return Reading(ConsumerObservation(**base, state="error", error=error or "not fetched"))
        hook = find_hook(c, data)  # type: ignore[arg-type]
        if hook is None:
            return Reading(ConsumerObservation(**base, state="missing", exists=False))
        details: dict[str, Any] = {"hook_id": str(hook["id"]), "token_present": hook.get("token_present")}
        if c.mode == "recreate":
            detail, derror = rows(lists, _detail_key(c, str(hook["id"])))
            if derror or detail is None:
                return Reading(ConsumerObservation(**base, state="error", live_id=str(hook["id"]),
                                                   error=derror or "hook detail not fetched"))
            details["url_variable_keys"] = _keys(detail.get("url_variables"))  # type: ignore[union-attr]
            details["custom_header_keys"] = _keys(detail.get("custom_headers"))  # type: ignore[union-attr]
        return Reading(ConsumerObservation(**base, state="unverifiable", live_id=str(hook["id"]), details=details))

    def findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[str, str, str]]:
        c = consumer
        assert isinstance(c, GitLabWebhook)
        if c.mode != "recreate" or not writing or not observation.exists:
            return []
        target = c.target
        lost = []
        for what, live_keys, declared in (
            ("URL variable", observation.details.get("url_variable_keys", []), c.url_variables),
            ("custom header", observation.details.get("custom_header_keys", []), c.custom_headers),
        ):
            field = "url_variable" if what == "URL variable" else "custom_header"
            for key in live_keys:
                if key not in declared and not (target.field == field and target.name == key):
                    lost.append(f"{what} {key!r}")
        if target.field != "token" and observation.details.get("token_present"):
            lost.append("the secret token")
        if not lost:
            return []
        return [("error", "recreate_loses_values",
                 f"{c.label}: mode recreate would lose {', '.join(lost)}: GitLab never returns these values; "
                 "declare them under url_variables/custom_headers, or use mode: update")]

    # apply (issue 6) ----------------------------------------------------------------------

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        """mode update: PUT hook {token, url} or PUT .../url_variables|custom_headers/:key.
        mode recreate: GET hook, POST a copy with the declared values, DELETE the old one."""
        raise NotImplementedError("gitlab_webhook.write: issue 6 (apply)")

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        return None  # write-only: the ledger records what was written


KIND = WebhookKind()
