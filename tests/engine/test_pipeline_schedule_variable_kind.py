"""The pipeline schedule variable kind's pure parts, without HTTP: its inventory document (schema
and model), how it names the lists it needs round by round, and what it observes in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.inventory import InventoryError, load_inventory
from reconciler.kinds import FetchError, ListKey, consumer_kind
from reconciler.kinds.gitlab_pipeline_schedule_variable import GitLabPipelineScheduleVariable
from reconciler.secret import Secret
from tests.engine.engine_helpers import pos, token

KIND = consumer_kind("gitlab_pipeline_schedule_variable")
HEADER = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
tokens:
  sync:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/src, description: Sync}
    consumers:
"""
SCHEDULES = ListKey("gl", "pipeline_schedules", "acme/app")
USER = ListKey("gl", "user")
ME = {"id": 7, "username": "reconcile-bot"}


def consumer(**kw) -> GitLabPipelineScheduleVariable:
    kw.setdefault("schedule", "Nightly export")
    return GitLabPipelineScheduleVariable(provider="gl", project="acme/app", key="TOKEN", pos=pos(20), **kw)


def schedule(id: int, description: str = "Nightly export", owner: dict | None = None, **kw) -> dict:
    return {"id": id, "description": description, "owner": owner or ME, **kw}


def detail_key(id: int) -> ListKey:
    return ListKey("gl", "pipeline_schedule", f"acme/app#{id}")


def observe(c, lists):
    return KIND.observe(token("sync", None), c, lists)


# --- the inventory document -------------------------------------------------------------------


def test_a_document_becomes_the_model_with_its_positions(tmp_path: Path):
    (tmp_path / "inv.yaml").write_text(HEADER + """\
      - {kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: Nightly export,
         schedule_id: 31, key: ZENDESK_TOKEN, value: "Bearer ${token}", variable_type: file}
""")
    (c,) = load_inventory(tmp_path).tokens["sync"].consumers
    assert c == GitLabPipelineScheduleVariable(provider="gl", project="acme/app", schedule="Nightly export",
                                               schedule_id=31, key="ZENDESK_TOKEN", value="Bearer ${token}",
                                               variable_type="file")
    assert (c.pos.line, c.at("schedule_id").line) == (7, 8)
    assert c.identity == "gitlab_pipeline_schedule_variable:gl:project:acme/app:Nightly export#31:ZENDESK_TOKEN"
    assert c.label == "schedule variable ZENDESK_TOKEN (project acme/app, pipeline schedule 'Nightly export' (#31))"
    assert KIND.desired_attributes(c) == {"variable_type": "file"}
    assert KIND.desired_attributes(consumer()) == {}


@pytest.mark.parametrize(("entry", "message"), [
    ("{kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, key: TOKEN}",
     "consumers[0].schedule: missing required key 'schedule'"),
    ("{kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: x, key: BAD-KEY}",
     "BAD-KEY"),
    ("{kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: x, key: K, schedule_id: 0}",
     "0 is less than the minimum of 1"),
    ("{kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: x, key: K, masked: true}",
     "masked"),
])
def test_a_bad_document_is_an_error_naming_file_line_and_key(tmp_path: Path, entry: str, message: str):
    (tmp_path / "inv.yaml").write_text(HEADER + f"      - {entry}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path)
    text = str(caught.value)
    assert "inv.yaml:7:" in text and "tokens.sync.consumers[0]" in text and message in text, text


def test_the_same_key_in_two_schedules_sharing_a_description_are_two_places():
    assert consumer(schedule_id=32).identity != consumer(schedule_id=33).identity != consumer().identity


# --- what it needs, round by round ----------------------------------------------------------


def test_it_needs_the_schedule_list_and_the_user_then_one_detail_per_schedule():
    first = KIND.needs(consumer(), {})
    assert first == [SCHEDULES, USER]
    lists = {SCHEDULES: [schedule(31), schedule(32, "Weekly cleanup")]}
    assert KIND.needs(consumer(), lists) == [SCHEDULES, USER, detail_key(31)]
    # two variables of one schedule ask for the same detail key: observation fetches it once
    assert KIND.needs(consumer(), lists)[-1] == KIND.needs(GitLabPipelineScheduleVariable(
        provider="gl", project="acme/app", schedule="Nightly export", key="OTHER"), lists)[-1]
    # an ambiguous or unknown schedule needs no detail
    assert KIND.needs(consumer(schedule="Weekly cleanup", schedule_id=31), lists) == [SCHEDULES, USER]
    assert KIND.needs(consumer(schedule="Nope"), lists) == [SCHEDULES, USER]


# --- observe from lists ------------------------------------------------------------------------


def lists_with(variables, *, owner=None, user=None, schedules=None) -> dict:
    detail = schedule(31, owner=owner)
    if variables is not None:
        detail["variables"] = variables
    return {SCHEDULES: schedules or [schedule(31, owner=owner)], USER: user or ME, detail_key(31): detail}


def test_a_variable_read_from_the_schedule_detail():
    value = Secret("glptt-" + "0123456789abcdef0123")
    lists = lists_with([{"key": "TOKEN", "value": value, "variable_type": "env_var", "raw": False},
                        {"key": "MODE", "value": Secret("full"), "variable_type": "env_var", "raw": False}])
    reading = observe(consumer(value="Bearer ${token}"), lists)
    obs = reading.observation
    assert (obs.state, obs.readable, obs.exists, obs.live_id, obs.error) == ("unverifiable", True, True, "TOKEN", None)
    assert obs.fingerprint == value.fingerprint() and reading.held == value
    assert reading.token_value is None  # the held value does not have the template's shape
    assert obs.attributes == {"variable_type": "env_var"}
    assert obs.details == {"schedule_id": 31, "owner": "reconcile-bot", "writable": True}
    assert KIND.findings(consumer(), obs, True) == []
    assert observe(consumer(), lists).token_value == value


def test_a_missing_variable_is_created_and_a_missing_schedule_is_not():
    obs = observe(consumer(), lists_with([])).observation
    assert (obs.state, obs.exists, obs.details["schedule_id"]) == ("missing", False, 31)
    assert KIND.creatable(consumer(), obs)
    obs = observe(consumer(schedule="Nope"), {SCHEDULES: [schedule(31)], USER: ME}).observation
    assert (obs.state, obs.exists, KIND.creatable(consumer(), obs)) == ("missing", False, False)
    assert obs.details["missing"] == "pipeline schedule 'Nope' of project acme/app"


def test_an_ambiguous_description_is_an_error_naming_the_schedules():
    schedules = [schedule(33, "Weekly cleanup"), schedule(32, "Weekly cleanup"), schedule(31)]
    obs = observe(consumer(schedule="Weekly cleanup"), {SCHEDULES: schedules, USER: ME}).observation
    assert obs.state == "error"
    assert obs.error == ("2 pipeline schedules of project acme/app are described 'Weekly cleanup' (#32, #33): "
                         "set schedule_id to the one meant")
    lists = {SCHEDULES: schedules, USER: ME, detail_key(32): schedule(32, "Weekly cleanup", variables=[])}
    settled = observe(consumer(schedule="Weekly cleanup", schedule_id=32), lists).observation
    assert (settled.state, settled.details["schedule_id"]) == ("missing", 32)
    wrong = observe(consumer(schedule="Weekly cleanup", schedule_id=31), lists).observation
    assert wrong.error == "pipeline schedule #31 of project acme/app is described 'Nightly export', not 'Weekly cleanup'"
    gone = observe(consumer(schedule_id=99), lists).observation
    assert gone.error == "project acme/app has no pipeline schedule #99"


def test_another_users_schedule_is_an_error_naming_the_owner_when_written_and_a_warning_otherwise():
    alice = {"id": 9, "username": "alice"}
    obs = observe(consumer(), lists_with([], owner=alice)).observation
    assert obs.details == {"schedule_id": 31, "owner": "alice", "writable": False, "missing": "variable"}
    ((severity, code, message),) = KIND.findings(consumer(), obs, True)
    assert (severity, code) == ("error", "schedule_not_owned")
    assert "pipeline schedule #31 is owned by @alice" in message and "take ownership" in message
    ((severity, _, message),) = KIND.findings(consumer(), obs, False)
    assert severity == "warning" and "@alice" in message
    # an administrator may write any schedule's variables
    admin = observe(consumer(), lists_with([], owner=alice, user={**ME, "is_admin": True})).observation
    assert admin.details["writable"] is True and KIND.findings(consumer(), admin, True) == []


def test_hidden_variables_and_failed_lists_are_observation_errors():
    alice = {"id": 9, "username": "alice"}
    hidden = observe(consumer(), lists_with(None, owner=alice)).observation
    assert hidden.state == "error" and "owned by @alice" in hidden.error and "Maintainer" in hidden.error
    failed = observe(consumer(), {SCHEDULES: FetchError(404, "404 Project Not Found"), USER: ME}).observation
    assert (failed.state, failed.error) == ("error", "404 Project Not Found")
    assert observe(consumer(), {}).observation.error == "not fetched"
    detail_failed = {SCHEDULES: [schedule(31)], USER: ME, detail_key(31): FetchError(403, "403 Forbidden")}
    assert observe(consumer(), detail_failed).observation.error == "403 Forbidden"


# --- read back after writing --------------------------------------------------------------------


def test_read_back_is_one_key_per_schedule_description_and_compares_the_value():
    value = Secret("glptt-" + "new-0123456789abcdef")
    key = ListKey("gl", "described_pipeline_schedules", "acme/app#Nightly export")
    assert KIND.verify_keys(consumer()) == KIND.verify_keys(consumer(schedule_id=31)) == [key]
    assert KIND.verify_keys(GitLabPipelineScheduleVariable(provider="gl", project="acme/app", schedule="Nightly export",
                                                           key="OTHER")) == [key]
    fetched = [schedule(31, variables=[{"key": "TOKEN", "value": value}]),
               schedule(32, variables=[{"key": "TOKEN", "value": Secret("another-value-123")}])]
    assert KIND.verify_listed(consumer(schedule_id=31), value, {key: fetched}) is True
    assert KIND.verify_listed(consumer(schedule_id=32), value, {key: fetched}) is False
    with pytest.raises(LookupError, match=r"2 pipeline schedules .* \(#31, #32\)"):
        KIND.verify_listed(consumer(), value, {key: fetched})
    with pytest.raises(LookupError, match="not in the schedule read back"):
        KIND.verify_listed(consumer(), value, {key: [schedule(31, variables=[])]})
    with pytest.raises(LookupError, match="reading back failed: 404"):
        KIND.verify_listed(consumer(), value, {key: FetchError(404, "404 Project Not Found")})


# --- scope scans (discover) ----------------------------------------------------------------------


def test_a_scan_reads_each_schedule_once_and_offers_its_readable_variables():
    from reconciler.kinds._discovery import ScanScope

    scope = ScanScope("gl", "gitlab", projects=("acme/app",))
    assert KIND.scan_keys(scope, {}) == [SCHEDULES]
    schedules = [schedule(31), schedule(32, "Weekly cleanup", owner={"id": 9, "username": "alice"}),
                 schedule(33, "Weekly cleanup")]
    lists = {SCHEDULES: schedules, detail_key(31): schedule(31, variables=[{"key": "A", "value": Secret("va-1")},
                                                                           {"key": "EMPTY", "value": None}]),
             detail_key(32): schedule(32, "Weekly cleanup"),
             detail_key(33): schedule(33, "Weekly cleanup", variables=[{"key": "B", "value": Secret("vb-1")}])}
    assert KIND.scan_keys(scope, {SCHEDULES: schedules}) == [SCHEDULES, detail_key(31), detail_key(32), detail_key(33)]
    places, notes = KIND.places(SCHEDULES, schedules, lists)
    assert [(p.label, p.consumer, p.held) for p in places] == [
        ("schedule variable A of pipeline schedule 'Nightly export' (#31, project acme/app)",
         {"kind": "gitlab_pipeline_schedule_variable", "provider": "gl", "project": "acme/app",
          "schedule": "Nightly export", "key": "A"}, Secret("va-1")),
        ("schedule variable B of pipeline schedule 'Weekly cleanup' (#33, project acme/app)",
         {"kind": "gitlab_pipeline_schedule_variable", "provider": "gl", "project": "acme/app",
          "schedule": "Weekly cleanup", "key": "B", "schedule_id": 33}, Secret("vb-1")),
    ]
    assert notes == ["gl: the variables of pipeline schedule 'Weekly cleanup' (#32, project acme/app) are hidden "
                     "from reconcile's user (a Maintainer or its owner @alice can read them)"]
    assert KIND.places(ListKey("gl", "pipeline_schedule", "acme/app#31"), [], lists) == ([], [])
