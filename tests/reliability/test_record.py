"""`--record DIR` (reconciler/record.py): the transcript holds every request, and no secret.

Unit: the scrubber on a hand-built transcript covering every place a secret travels (headers,
query strings, form bodies, JSON fields at any depth, URLs inside JSON, a value learned in one
answer and repeated in a later request, percent-encoded). Integration: real writes through
python-gitlab and requests against the sandboxes (rotate, variables, hooks, triggers, Zendesk
webhooks and OAuth tokens) recorded, then scanned for every value the sandboxes minted; and
`reconcile plan --sandbox --record DIR` records every request the server saw, also where vcrpy
is not installed.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import gitlab
import pytest
import yaml
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.record import Recording, Scrubber, cassette_path, recording
from reconciler.secret import REDACTED
from reconciler_sandbox.core import Clock, known_secrets
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.world import DEFAULT_SEED, start_world
from reconciler_sandbox.zendesk import serve_zendesk, session_for

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def mint(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(24)


def exchange(method: str, uri: str, body=None, headers=None, status=200, answer=None, answer_headers=None) -> dict:
    return {
        "request": {"method": method, "uri": uri, "body": body, "headers": {k: [v] for k, v in (headers or {}).items()}},
        "response": {"status": {"code": status, "message": "OK"},
                     "headers": {k: [v] for k, v in (answer_headers or {"Content-Type": "application/json"}).items()},
                     "body": {"string": answer}},
    }


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_scrubber_removes_every_kind_of_secret_and_keeps_the_rest():
    import base64

    v = {name: mint(name[:3] + "-") for name in (
        "pat", "job", "bearer", "basicpw", "zdapi", "query", "minted", "variable", "hooktoken", "urlvar", "header",
        "setting", "wh_bearer", "wh_password", "wh_apikey", "endpoint", "client_secret", "full_token", "signing",
        "form_secret", "userinfo", "known")}
    basic = base64.b64encode(f"admin@example.com/token:{v['zdapi']}".encode()).decode()
    transcript = {"version": 1, "interactions": [
        exchange("GET", f"https://gitlab.example/api/v4/user?private_token={v['query']}&per_page=100",
                 headers={"PRIVATE-TOKEN": v["pat"], "User-Agent": "python-gitlab"}),
        exchange("GET", "https://gitlab.example/api/v4/job", headers={"JOB-TOKEN": v["job"]}),
        exchange("GET", "https://acme.zendesk.com/api/v2/webhooks", headers={"Authorization": f"Bearer {v['bearer']}"}),
        exchange("GET", "https://acme.zendesk.com/api/v2/api_tokens", headers={"Authorization": f"Basic {basic}"}),
        # rotate: the new value arrives in an answer...
        exchange("POST", "https://gitlab.example/api/v4/personal_access_tokens/7/rotate",
                 answer=json.dumps({"id": 8, "name": "sync", "token": v["minted"], "scopes": ["api"]})),
        # ...and leaves in later requests: in a variable, in a field no rule knows, percent-encoded in a path
        exchange("PUT", "https://gitlab.example/api/v4/projects/1/variables/SYNC",
                 body=json.dumps({"key": "SYNC", "value": v["variable"], "masked": True, "note": v["minted"]})),
        exchange("GET", f"https://gitlab.example/api/v4/lookup/{v['minted']}/x"),
        exchange("POST", "https://gitlab.example/api/v4/projects/1/hooks",
                 body=json.dumps({"url": "https://h.example/{p}", "token": v["hooktoken"], "push_events": True,
                                  "url_variables": [{"key": "p", "value": v["urlvar"]}],
                                  "custom_headers": [{"key": "X-Key", "value": v["header"]}]})),
        exchange("PUT", "https://acme.zendesk.com/api/v2/apps/installations/3.json",
                 body=json.dumps({"settings": {"gitlab_token": v["setting"], "title": "Ticket Sync"}}),
                 answer=json.dumps({"installation": {"id": 3, "settings": {"gitlab_token": v["setting"]}}})),
        exchange("PATCH", "https://acme.zendesk.com/api/v2/webhooks/01H", body=json.dumps({"webhook": {
            "endpoint": f"https://gitlab.example/api/v4/projects/1/trigger/pipeline?ref=main&token={v['endpoint']}",
            "authentication": {"type": "bearer_token", "add_position": "header", "data": {"token": v["wh_bearer"]}}}})),
        exchange("POST", "https://acme.zendesk.com/api/v2/webhooks", body=json.dumps({"webhook": {
            "name": "basic", "authentication": {"type": "basic_auth", "data": {"username": "bot", "password": v["wh_password"]}},
            "signing_secret": {"algorithm": "sha256", "secret": v["signing"]}}})),
        exchange("POST", "https://acme.zendesk.com/api/v2/webhooks", body=json.dumps({"webhook": {
            "authentication": {"type": "api_key", "data": {"name": "X-Api-Key", "value": v["wh_apikey"]}}}})),
        exchange("PUT", "https://acme.zendesk.com/api/v2/oauth/clients/4/generate_secret",
                 answer=json.dumps({"client": {"id": 4, "identifier": "reconcile", "secret": v["client_secret"]}})),
        exchange("POST", "https://acme.zendesk.com/api/v2/oauth/tokens",
                 answer=json.dumps({"token": {"id": 9, "full_token": v["full_token"], "scopes": ["read"]}})),
        exchange("POST", "https://acme.zendesk.com/oauth/tokens",
                 body=f"grant_type=client_credentials&client_id=reconcile&client_secret={v['form_secret']}",
                 headers={"Content-Type": "application/x-www-form-urlencoded"}),
        exchange("GET", f"https://bot:{v['userinfo']}@mirror.example/api"),
        exchange("GET", "https://gitlab.example/api/v4/version", answer=f"plain text that mentions {v['known']}",
                 answer_headers={"Content-Type": "text/plain"}),
    ]}
    scrubbed = Scrubber(known=[v["known"]]).transcript(transcript)
    text = yamlserializer.serialize(scrubbed)
    left = sorted(name for name, value in v.items() if value in text)
    assert left == [], f"not scrubbed: {left}"
    # what is not a secret stays readable: names, methods, paths, non-secret fields and query values
    flat = "\n".join(strings(scrubbed))
    for kept in ("per_page=100", "python-gitlab", '"name": "sync"', '"masked": true', '"username": "bot"',
                 '"name": "X-Api-Key"', '"title": "<redacted>"', "trigger/pipeline?ref=", "grant_type=client_credentials",
                 "/api/v4/projects/1/variables/SYNC", '"algorithm": "sha256"', "Bearer <redacted>", "Basic <redacted>"):
        assert kept in flat, kept
    assert text.count(REDACTED) >= len(v)
    # the transcript is a cassette vcrpy itself can load
    requests_, responses = deserialize(text, yamlserializer)
    assert len(requests_) == len(responses) == len(transcript["interactions"])


def test_cassette_paths_never_overwrite(tmp_path):
    first = cassette_path(tmp_path, "plan", NOW)
    first.write_text("x")
    second = cassette_path(tmp_path, "plan", NOW)
    assert first.name == "reconcile-plan-20261122T120000Z.yaml" and second.name.endswith("-2.yaml")


GL_ADMIN = mint("glpat-")
ZD_ADMIN = mint()


def gitlab_seed() -> dict:
    return {
        "users": [{"username": "root", "admin": True,
                   "tokens": [{"name": "admin", "scopes": ["api"], "value": GL_ADMIN, "expires_at": "now+300d"}]},
                  {"username": "bot", "tokens": [{"name": "sync", "scopes": ["api"], "value": mint("glpat-"),
                                                   "expires_at": "now+5d"}]}],
        "projects": [{"path_with_namespace": "support/sync", "id": 4711, "members": {"root": 50}}],
        "variables": [{"project": "support/sync", "key": "SYNC_TOKEN", "value": mint("glpat-"), "masked": True}],
    }


def zendesk_seed() -> dict:
    return {"instances": {"acme": {
        "users": [{"email": "admin@acme.example", "role": "admin"}],
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile", "secret": mint()}],
        "oauth_tokens": [{"client": "reconcile", "value": ZD_ADMIN, "scopes": ["read", "write"]}],
    }}}


@pytest.fixture
def servers():
    clock = Clock(NOW)
    gl_server, zd_server = serve_gitlab(gitlab_seed(), clock), serve_zendesk(zendesk_seed(), clock)
    yield gl_server, zd_server
    gl_server.stop()
    zd_server.stop()


def test_real_writes_through_the_clients_are_recorded_without_any_minted_value(servers, tmp_path):
    gl_server, zd_server = servers
    path = tmp_path / "writes.yaml"
    with recording(path) as rec:
        gl = gitlab.Gitlab(gl_server.url, private_token=GL_ADMIN, timeout=5)
        bot_token = next(t for t in gl.personal_access_tokens.list(get_all=True) if t.name == "sync")
        rotated = gl.http_post(f"/personal_access_tokens/{bot_token.id}/rotate")
        project = gl.projects.get("support/sync")
        var = project.variables.get("SYNC_TOKEN")
        var.value = rotated["token"]
        var.save()
        trigger = project.triggers.create({"description": "sync"})
        project.hooks.create({"url": "https://hooks.example/{p}?token=" + trigger.token, "token": rotated["token"],
                              "url_variables": [{"key": "p", "value": mint()}],
                              "custom_headers": [{"key": "X-Token", "value": trigger.token}]})
        zd = session_for(zd_server, "acme", oauth_token=ZD_ADMIN)
        base = zd_server.url + "/api/v2"
        client_id = zd.get(base + "/oauth/clients.json", timeout=5).json()["clients"][0]["id"]
        oauth = zd.post(base + "/oauth/tokens.json", json={"token": {"client_id": client_id, "scopes": ["read"]}},
                        timeout=5).json()["token"]
        zd.put(base + f"/oauth/clients/{client_id}/generate_secret.json", timeout=5)
        zd.post(base + "/webhooks", timeout=5, json={"webhook": {
            "name": "sync", "status": "active", "http_method": "POST", "request_format": "json",
            "subscriptions": ["conditional_ticket_events"],
            "endpoint": f"{gl_server.url}/api/v4/projects/4711/trigger/pipeline?token={trigger.token}",
            "authentication": {"type": "bearer_token", "add_position": "header", "data": {"token": oauth["token"]}}}})
    minted = {s for s in known_secrets() if len(s) >= 8}
    assert {rotated["token"], trigger.token, oauth["token"], GL_ADMIN, ZD_ADMIN} <= minted
    text = path.read_text()
    assert not any(s in text for s in minted), "a sandbox value reached the recording"
    assert rec.requests == gl_server.log.count() + zd_server.log.count() > 10
    cassette = yaml.safe_load(text)
    methods = [i["request"]["method"] for i in cassette["interactions"]]
    assert methods.count("POST") >= 5 and "PUT" in methods
    rotate = next(i for i in cassette["interactions"] if i["request"]["uri"].endswith("/rotate"))
    assert json.loads(rotate["response"]["body"]["string"])["token"] == REDACTED
    assert rotate["request"]["headers"]["PRIVATE-TOKEN"] == [REDACTED]


@pytest.fixture
def world(tmp_path, monkeypatch):
    from pathlib import Path

    (tmp_path / "inventory").symlink_to(Path(__file__).resolve().parents[2] / "inventory")
    monkeypatch.chdir(tmp_path)
    w = start_world(DEFAULT_SEED, now=NOW)
    for name, value in w.credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, w.gitlab.url)
    monkeypatch.setenv(SANDBOX_ENV_ZENDESK, w.endpoints.zendesk_netloc)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "CI"):
        monkeypatch.delenv(name, raising=False)
    yield w
    w.stop()


def test_plan_record_captures_every_request_the_sandboxes_saw(world, tmp_path, capsys):
    code = cli.main(["plan", "--sandbox", "--now", "2026-11-22T12:00:00Z", "--record", "recordings"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [path] = (tmp_path / "recordings").iterdir()
    assert f"recorded {world.requests()} request(s), secrets scrubbed, to recordings/{path.name}" in err
    cassette = yaml.safe_load(path.read_text())
    assert len(cassette["interactions"]) == world.requests() > 15
    assert world.mutations() == 0
    text = path.read_text()
    assert not any(len(s) >= 8 and s in text for s in known_secrets())
    assert "/api/v4/personal_access_tokens" in text and "/api/v2/webhooks" in text


def test_apply_record_scrubs_the_minted_value_from_every_request_and_answer(tmp_path, monkeypatch, capsys):
    from fault_matrix import Scenario  # fault_matrix puts tests/apply on the path

    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "CI", "RECONCILE_ESCROW_KEY"):
        monkeypatch.delenv(name, raising=False)
    live = Scenario("pat", ("variable", "zd_webhook", "zd_endpoint", "hook")).start(tmp_path)
    try:
        for name, value in live.env.items():
            monkeypatch.setenv(name, value)
        code = cli.main(["apply", "--sandbox", "--auto-approve", "--now", "2026-11-22T12:00:00Z",
                         "--inventory", str(live.inventory), "--record", "recordings"])
        out, err = capsys.readouterr()
        assert code == 0, err
        new = live.held("variable")
        assert new and new != live.old and live.works(new)
        [path] = (tmp_path / "recordings").iterdir()
        assert path.name.startswith("reconcile-apply-")
        text = path.read_text()
        assert new not in text and live.old not in text
        assert not any(len(s) >= 8 and s in text for s in known_secrets())
        cassette = yaml.safe_load(text)
        writes = [i["request"] for i in cassette["interactions"] if i["request"]["method"] != "GET"]
        assert [w["method"] for w in writes].count("PATCH") == 2 and len(writes) >= 5
        rotate = next(i for i in cassette["interactions"] if i["request"]["uri"].endswith("/rotate"))
        assert json.loads(rotate["response"]["body"]["string"])["token"] == REDACTED
        assert "token=%3Credacted%3E" in text or "token=<redacted>" in text  # the endpoint's query
        assert f"recorded {len(cassette['interactions'])} request(s)" in err
    finally:
        live.stop()


def test_a_learned_value_is_removed_in_its_encoded_forms_too():
    value = "s3cr3t/with+odd=chars&more"
    transcript = {"version": 1, "interactions": [
        exchange("POST", "https://acme.zendesk.com/oauth/tokens", body=json.dumps({"client_secret": value})),
        exchange("GET", "https://gitlab.example/api/v4/echo/" + quote(value, safe="") + "?q=" + quote_plus(value)),
        exchange("GET", "https://gitlab.example/api/v4/version",
                 answer=json.dumps({"note": json.dumps({"nested": value})})),  # JSON inside JSON: escaped quotes
    ]}
    text = yamlserializer.serialize(Scrubber().transcript(transcript))
    for form in (value, quote(value, safe=""), quote_plus(value)):
        assert form not in text
    assert "/api/v4/echo/" in text


def test_a_value_written_to_a_hidden_variable_or_a_hook_url_variable_is_scrubbed(servers, tmp_path):
    """The values written here never appear in an answer (a hidden variable reads back null; a URL
    variable's PUT answers nothing about it), so only the request body's position can remove them:
    `{"value": X, ...}` at the top of a request body, JSON or form-encoded."""
    gl_server, _ = servers
    hidden, urlvar, form = mint("hid-"), mint("url-"), mint("frm-")
    path = tmp_path / "hidden.yaml"
    with recording(path):
        gl = gitlab.Gitlab(gl_server.url, private_token=GL_ADMIN, timeout=5)
        project = gl.projects.get("support/sync")
        project.variables.create({"key": "HIDDEN", "value": mint("first-"), "masked_and_hidden": True, "masked": True})
        # as kinds/gitlab_ci_variable.py writes a hidden variable in place
        project.variables.update("HIDDEN", {"value": hidden}, filter={"environment_scope": "*"})
        hook = project.hooks.create({"url": "https://hooks.example/{p}", "url_variables": [{"key": "p", "value": mint()}]})
        # as kinds/gitlab_webhook.py writes a URL variable
        gl.http_put(f"/projects/4711/hooks/{hook.id}/url_variables/p", post_data={"value": urlvar})
        gl.session.put(f"{gl_server.url}/api/v4/projects/4711/hooks/{hook.id}/url_variables/p",
                       data={"value": form}, headers={"PRIVATE-TOKEN": GL_ADMIN}, timeout=5)
    assert gl_server.service.variable_value("project", "support/sync", "HIDDEN") == hidden
    text = path.read_text()
    for value in (hidden, urlvar, form):
        assert value not in text, "a written value reached the recording"
    bodies = [i["request"]["body"] for i in yaml.safe_load(text)["interactions"] if i["request"]["method"] == "PUT"]
    assert len(bodies) == 3 and all(REDACTED in b for b in bodies), bodies


def test_the_cassette_is_what_vcrpy_itself_would_write(tmp_path):
    """The cassette is written with PyYAML (vcrpy is a test-only dependency): byte for byte what
    vcrpy's serializer makes of the same transcript, so `vcr` loads it."""
    rec = Recording(tmp_path / "c.yaml")
    rec.interactions = [exchange("GET", "https://gitlab.example/api/v4/version?private_token=abcdefgh12",
                                 answer=json.dumps({"version": "18.0", "token": "s3cr3t-value"}))]
    rec.save()
    assert rec.saved
    assert rec.path.read_text() == yamlserializer.serialize(rec.transcript())


HIDE_VCR = """
import sys
class HideVcr:  # a plain install: vcrpy is only in the test extra
    def find_spec(self, name, path=None, target=None):
        if name == "vcr" or name.startswith("vcr."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, HideVcr())
for name in [m for m in sys.modules if m == "vcr" or m.startswith("vcr.")]:
    del sys.modules[name]
from reconciler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_vcr(cwd, *args: str):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC")}
    return subprocess.run([sys.executable, "-c", HIDE_VCR, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_record_works_where_vcrpy_is_not_installed(tmp_path):
    from pathlib import Path

    (tmp_path / "inventory").symlink_to(Path(__file__).resolve().parents[2] / "inventory")
    probe = run_without_vcr(tmp_path, "--help")
    assert probe.returncode == 0, probe.stderr
    plan = run_without_vcr(tmp_path, "plan", "--sandbox", "--now", "2026-11-22T12:00:00Z", "--record", "rec")
    assert plan.returncode == 0, plan.stderr
    assert "Traceback" not in plan.stderr
    [plan_file] = (tmp_path / "rec").iterdir()
    assert f"to rec/{plan_file.name}" in plan.stderr
    assert len(yaml.safe_load(plan_file.read_text())["interactions"]) > 15
    apply = run_without_vcr(tmp_path, "apply", "--sandbox", "--auto-approve", "--now", "2026-11-22T12:00:00Z",
                            "--record", "rec")
    assert apply.returncode == 0, apply.stderr
    assert "Traceback" not in apply.stderr
    [apply_file] = [p for p in (tmp_path / "rec").iterdir() if p.name.startswith("reconcile-apply-")]
    assert f"to rec/{apply_file.name}" in apply.stderr
    writes = [i for i in yaml.safe_load(apply_file.read_text())["interactions"] if i["request"]["method"] != "GET"]
    assert writes


def test_a_cassette_that_cannot_be_written_is_never_claimed(world, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    code = cli.main(["plan", "--sandbox", "--now", "2026-11-22T12:00:00Z", "--record", "a-file/recordings"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "error: --record: cannot write a-file/recordings/reconcile-plan-" in err
    assert "recorded " not in err and "Traceback" not in err
