"""Consumers are checked against what the live target declares, in the plan, before anything is
written. Through the real CLI against the sandboxes; each case is a plan error (exit 1) and an
apply that changes nothing.

- A Zendesk app setting the app does not declare (`apitoken` for `api_token`): the error names
  the closest declared setting; apply never creates a setting.
- A Zendesk webhook endpoint that is a pipeline-trigger URL naming another project than the
  trigger's (by id, or by path) or another GitLab.
- A GitLab webhook in `mode: update` that does not exist: an error, not a create.
"""

from __future__ import annotations

from apply_world import SUB, Scenario

from reconciler import cli

NOW = "2026-11-22T12:00:00Z"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def start(live_world, monkeypatch, scenario: Scenario, *replacements: tuple[str, str]):
    live = live_world(scenario)
    path = live.inventory / "inventory.yaml"
    text = path.read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    for name, value in live.env.items():
        monkeypatch.setenv(name, value)
    return live


def refused(capsys, live, message: str) -> None:
    """Plan and apply both exit 1 naming `message`; nothing changed and the old value works."""
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 1 and message in out, out + err
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 1 and message in out + err, out + err
    assert live.mutations() == [] and live.rotations() == 0
    assert live.works(live.old)


def test_a_setting_the_app_does_not_declare_is_a_plan_error_with_a_did_you_mean(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("oauth_token", ("app_setting",)),
                 ("setting: token", "setting: apitoken"))
    inst = live.zd.instance(SUB)
    inst.apps[0]["parameters"][0]["name"] = "api_token"  # the app declares api_token (secure) and region
    settings = inst.installations[0]["settings"]
    settings["api_token"] = settings.pop("token")
    refused(capsys, live, "the app declares no setting 'apitoken' (did you mean "
                          "'api_token'?); its settings: api_token, region. Apply never creates a setting")
    assert "apitoken" not in inst.installations[0]["settings"]


def test_a_declared_setting_is_planned_as_before(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("oauth_token", ("app_setting",)))
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 0 and "0 error(s)" in out and "declares no setting" not in out, out + err
    assert live.mutations() == []


def trigger_endpoint(project: str, host: str = "https://gitlab.example.com") -> str:
    return f"{host}/api/v4/projects/{project}/ref/main/trigger/pipeline?token=${{token}}"


def test_a_trigger_url_naming_another_project_by_id_is_a_plan_error(live_world, monkeypatch, capsys):
    live = live_world(Scenario("trigger", ("zd_endpoint",)))
    own = str(live.gl.project("acme/src")["id"])
    other = str(live.gl.project("acme/app")["id"])
    live.stop()
    live = start(live_world, monkeypatch, Scenario("trigger", ("zd_endpoint",)),
                 ("'https://hooks.example/trigger?token=${token}'", f"'{trigger_endpoint(other)}'"))
    assert str(live.gl.project("acme/app")["id"]) == other  # the same seed, the same ids
    refused(capsys, live, f"the pipeline-trigger URL names project {other}, but the trigger belongs to project "
                          f"acme/src (id {own})")


def test_a_trigger_url_naming_the_trigger_s_own_project_passes(live_world, monkeypatch, capsys):
    live = live_world(Scenario("trigger", ("zd_endpoint",)))
    own = str(live.gl.project("acme/src")["id"])
    live.stop()
    for project in (own, "acme%2Fsrc"):
        start(live_world, monkeypatch, Scenario("trigger", ("zd_endpoint",)),
              ("'https://hooks.example/trigger?token=${token}'", f"'{trigger_endpoint(project)}'"))
        code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW)
        assert code == 0 and "0 error(s)" in out, out + err


def test_a_trigger_url_naming_another_project_path_or_gitlab_is_refused_before_any_request(live_world,
                                                                                            monkeypatch, capsys):
    for endpoint, message in (
        (trigger_endpoint("acme%2Fapp"), "the pipeline-trigger URL names project acme/app, but the trigger belongs "
                                         "to project acme/src"),
        (trigger_endpoint("acme%2Fsrc", host="https://gitlab.other.example"),
         "a pipeline-trigger URL at https://gitlab.other.example, but the trigger is on gl "
         "(https://gitlab.example.com): the token would be sent to another GitLab"),
    ):
        live = start(live_world, monkeypatch, Scenario("trigger", ("zd_endpoint",)),
                     ("'https://hooks.example/trigger?token=${token}'", f"'{endpoint}'"))
        code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW)
        assert code == 1 and message in err, out + err
        assert live.gitlab.log.count() == 0 and live.zendesk.log.count() == 0
        code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
        assert code == 1 and message in err and live.mutations() == []


def test_an_update_of_a_webhook_that_does_not_exist_is_a_plan_error_not_a_create(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("pat", ("hook",)),
                 ("hook: 'https://hooks.example/deploy'", "hook: 'https://hooks.example/deploy-v2'"))
    refused(capsys, live, "project acme/app has no hook 'https://hooks.example/deploy-v2'; mode update changes a "
                          "hook that exists and apply never creates one")
    assert [h["url"] for h in live.gl.table("hooks")] == ["https://hooks.example/deploy"]
