"""Consumer kind `zendesk_app_setting`: one setting of a Zendesk app installation, found by the
installation's name (`settings.name`).

Observe: one `GET /api/v2/apps/installations?include=app` per instance; the side-loaded app's
`parameters` say which settings are `secure` (write-only: Zendesk does not return them). A
non-secure setting is read back. A setting the app does not declare among its `parameters` is a
plan error (with the closest declared name): apply writes only the app's own settings, never a new
one. Write: `PUT /api/v2/apps/installations/:id` with
`{"settings": {SETTING: VALUE}}` and nothing else (whether Zendesk merges or replaces `settings`
is undocumented: apply compares the other settings in the PUT's answer with a read made just before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reconciler.inventory.model import Consumer, Token
from reconciler.inventory.schema import suggestion
from reconciler.kinds import (
    VALUE_TEMPLATE_PROPERTY,
    ConsumerKind,
    ListKey,
    Lists,
    ListVerifiable,
    Readable,
    Reading,
    extract,
    read_back,
)
from reconciler.kinds._discovery import Place, ScannedConsumer, ScanScope
from reconciler.kinds._gitlab import rows
from reconciler.kinds._zendesk import PROVIDER_PROPERTY, fetch_installations
from reconciler.observed import ConsumerObservation
from reconciler.plan_model import Severity
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class ZendeskAppSetting(Consumer):
    app: str  # the installation's name (settings.name)
    setting: str
    kind: ClassVar[str] = "zendesk_app_setting"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.app}:{self.setting}"

    @property
    def label(self) -> str:
        return f"app {self.app!r} setting {self.setting}"


# Its definition in the inventory schema: $defs/consumer_zendesk_app_setting.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One setting of an installed Zendesk app; nothing else of the installation changes.",
    "properties": {
        "kind": {"const": "zendesk_app_setting", "description": "`zendesk_app_setting`."},
        "provider": PROVIDER_PROPERTY,
        "value": VALUE_TEMPLATE_PROPERTY,
        "app": {
            "type": "string",
            "description": "The installation's name (its `settings.name`), e.g. `GitLab Ticket Sync`.",
            "minLength": 1,
        },
        "setting": {
            "type": "string",
            "description": "The setting's key, e.g. `pipeline_trigger_token`.",
            "minLength": 1,
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "app", "setting"],
}


def _plain(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def find_installation(c: ZendeskAppSetting, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    by_app = None
    for row in data:
        if _plain((row.get("settings") or {}).get("name")) == c.app:
            return row
        if (row.get("app") or {}).get("name") == c.app:
            by_app = by_app or row
    return by_app


class AppSettingKind(ConsumerKind, Readable, ListVerifiable, ScannedConsumer):
    """A declared setting without a value is written like any other; a missing installation or
    a setting the app does not declare is never created."""
    model = ZendeskAppSetting
    schema = SCHEMA
    kind = "zendesk_app_setting"
    provider_kind = "zendesk"

    def place(self, consumer: Consumer) -> str:
        c = consumer
        assert isinstance(c, ZendeskAppSetting)
        return f"{c.kind}:{c.provider}:{c.app}"  # its consumers share the object a write reads and puts back

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        return [ListKey(consumer.provider, "installations")]

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        c = consumer
        assert isinstance(c, ZendeskAppSetting)
        base: dict[str, Any] = {"identity": c.identity, "token": token.name}
        data, error = rows(lists, ListKey(c.provider, "installations"))
        if error or data is None:
            return Reading(ConsumerObservation(**base, state="error", readable=False, error=error or "not fetched"))
        inst = find_installation(c, data)
        if inst is None:
            return Reading(ConsumerObservation(**base, state="missing", readable=False, exists=False,
                                               details={"creatable": False, "missing": "installation"}))
        live_id = str(inst["id"])
        declared = sorted(str(p["name"]) for p in inst["app"]["parameters"])
        if c.setting not in declared:
            # the app has no such setting: a write would add a setting no one reads
            return Reading(ConsumerObservation(**base, state="missing", readable=False, exists=False, live_id=live_id,
                                               details={"creatable": False, "missing": "setting",
                                                        "declared": declared}))
        secure = any(p["name"] == c.setting and p["secure"] for p in inst["app"]["parameters"])
        held = inst["settings"].get(c.setting)
        details = {"installation_id": live_id, "app": inst["app"].get("name"), "secure": secure}
        if secure:
            return Reading(ConsumerObservation(**base, state="unverifiable", readable=False, live_id=live_id,
                                               details=details))
        if not isinstance(held, Secret):
            # a declared setting without a value: written like any other (it exists: the app declares it)
            return Reading(ConsumerObservation(**base, state="stale", readable=True, live_id=live_id, details=details))
        observation = ConsumerObservation(**base, state="unverifiable", readable=True, live_id=live_id,
                                          fingerprint=held.fingerprint(), details=details)
        return Reading(observation, held, extract(c.value, held))

    def findings(self, consumer: Consumer, observation: ConsumerObservation,
                 writing: bool) -> list[tuple[Severity, str, str]]:
        """A setting the app does not declare: an error naming the closest declared one."""
        declared = observation.details.get("declared")
        if observation.exists or declared is None:
            return []
        assert isinstance(consumer, ZendeskAppSetting)
        names = ", ".join(declared) or "none"
        return [("error", "undeclared_setting",
                 f"{consumer.label}: the app declares no setting {consumer.setting!r}"
                 f"{suggestion(consumer.setting, declared)}; its settings: {names}. Apply never creates a setting")]

    # apply ------------------------------------------------------------------------------------

    def _installation(self, api: Any, installation_id: str) -> dict[str, Any]:
        body = api.get(f"/api/v2/apps/installations/{installation_id}.json")
        return dict(body.get("installation") or body)  # Zendesk answers it unwrapped

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        """`PUT /api/v2/apps/installations/:id {"settings": {SETTING: VALUE}}`; in its answer
        (the installation after the PUT) every other non-secure setting must be as it was (whether Zendesk merges
        or replaces `settings` is undocumented). If one changed, put the old values back and fail."""
        assert isinstance(consumer, ZendeskAppSetting)
        path = f"/api/v2/apps/installations/{observed.live_id}.json"
        before = _other_settings(self._installation(api, str(observed.live_id)), consumer.setting)
        answer = api.put(path, {"settings": {consumer.setting: value.reveal()}})
        # the PUT answers the installation as it now is, in Show's shape (reference: "Returns 200
        # with the installation object"): no second read
        written = dict(answer.get("installation") or answer) if isinstance(answer, dict) and answer else None
        after = _other_settings(written if written is not None else self._installation(api, str(observed.live_id)),
                                consumer.setting)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if changed:
            # The whole set with the new value: if PUT replaces `settings`, a partial put-back
            # would drop the value just written. Secure settings are never returned, so they
            # cannot be put back: say so.
            api.put(path, {"settings": {**{k: _reveal(v) for k, v in before.items()}, consumer.setting: value.reveal()}})
            raise ValueError(f"{consumer.label}: writing the setting changed other settings ({', '.join(changed)}); "
                             "they were put back, but secure settings, which Zendesk never returns, may be lost: "
                             "check the installation")

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        """Read the installation back: a non-secure setting must hold the value; a secure one is
        not returned (None: write-only)."""
        held = self.read(api, consumer)
        return None if held is None else held == value

    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        return [ListKey(consumer.provider, "installations")]

    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        held = _held(consumer, read_back(lists, ListKey(consumer.provider, "installations")))
        return None if held is None else held == value

    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        return _held(consumer, fetch_installations(api, ""))

    # scope scans and discovery -------------------------------------------------------------

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        return [ListKey(scope.provider, "installations")]

    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]:
        """Each non-secure text setting of each installation; a note for each secure one
        (write-only)."""
        if key.resource != "installations":
            return [], []
        places: list[Place] = []
        notes: list[str] = []
        for row in rows:
            settings = row.get("settings") or {}
            app = row.get("app") or {}
            # the installation's name (`settings.name`) is not a credential
            app_name = str(_plain(settings.get("name")) or app.get("name") or row.get("id"))
            secure = {p["name"] for p in app.get("parameters") or () if p.get("secure")}
            notes += [f"{key.provider}: app {app_name!r} secure setting {setting}: write-only, cannot tell which token"
                      for setting in sorted(secure)]
            places += [Place(key.provider, f"app {app_name!r} setting {setting}",
                             {"kind": self.kind, "provider": key.provider, "app": app_name, "setting": setting},
                             "value", value)
                       for setting, value in sorted(settings.items())
                       if setting != "name" and setting not in secure and isinstance(value, Secret)]
        return places, notes


def _held(consumer: Consumer, installations: list[dict[str, Any]]) -> Secret | None:
    """The setting's value in the installations list; None when secure (write-only) or absent."""
    assert isinstance(consumer, ZendeskAppSetting)
    inst = find_installation(consumer, installations)
    if inst is None or any(p["name"] == consumer.setting and p["secure"] for p in inst["app"]["parameters"]):
        return None
    held = inst["settings"].get(consumer.setting)
    return held if isinstance(held, Secret) else None


def _other_settings(installation: dict[str, Any], skip: str) -> dict[str, Any]:
    """The settings an installation returns (secure ones are absent), without `skip`; text values
    held as Secret: compared and put back, never shown."""
    settings = installation.get("settings") or {}
    return {k: (Secret(v) if isinstance(v, str) else v) for k, v in settings.items() if k != skip}


def _reveal(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


KIND = AppSettingKind()
