"""Contract: the sandbox's variables and hooks endpoints take the parameters GitLab's own spec declares.

No recordings exist for these endpoints, so GitLab's Swagger file (../shared/oracles/specs/
gitlab-openapi-v2.yaml, generated from its API code) is the oracle for their parameters: every
operation exists in the sandbox with the same method, and a request setting every declared body
parameter is accepted and reads back. (The spec's status codes are not trusted: see the oracles
README.)
"""

from __future__ import annotations

import functools
import secrets

import pytest
import requests
import yaml

from reconciler_sandbox.gitlab import serve_gitlab

ADMIN = "glpat-" + secrets.token_urlsafe(15)[:20]
PATHS = (
    "/api/v4/projects/{id}/variables", "/api/v4/projects/{id}/variables/{key}",
    "/api/v4/groups/{id}/variables", "/api/v4/groups/{id}/variables/{key}",
    "/api/v4/admin/ci/variables", "/api/v4/admin/ci/variables/{key}",
    "/api/v4/projects/{id}/hooks", "/api/v4/projects/{id}/hooks/{hook_id}",
    "/api/v4/projects/{id}/hooks/{hook_id}/url_variables/{key}",
    "/api/v4/projects/{id}/hooks/{hook_id}/custom_headers/{key}",
)
SAMPLES = {
    "key": "SPEC_KEY", "value": "spec-value-123", "variable_type": "file", "environment_scope": "*",
    "description": "from the spec", "masked_and_hidden": False, "filter": {"environment_scope": "*"},
    "url": "https://spec.example.com/{v}", "name": "spec hook", "token": "spec-hook-secret-1",
    "push_events_branch_filter": "main", "custom_webhook_template": '{"x":1}', "branch_filter_strategy": "wildcard",
    "url_variables": [{"key": "v", "value": "url-var-1"}], "custom_headers": [{"key": "X-Spec", "value": "hdr-1"}],
}


class _Loader(yaml.SafeLoader):
    pass


# The spec has bare `=` values PyYAML's resolver treats as the `value` tag (see the oracles README).
_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@functools.cache
def _load_spec(path: str) -> dict:
    return yaml.load(open(path).read(), Loader=getattr(yaml, "CSafeLoader", _Loader))


@pytest.fixture
def spec(oracles):
    return _load_spec(str(oracles / "specs" / "gitlab-openapi-v2.yaml"))


@pytest.fixture(scope="module")
def server():
    srv = serve_gitlab({
        "users": [{"username": "root", "admin": True,
                   "tokens": [{"name": "t", "scopes": ["api"], "value": ADMIN, "expires_at": "now+10d"}]}],
        "groups": [{"full_path": "grp", "id": 20}],
        "projects": [{"path_with_namespace": "grp/proj", "id": 10}],
    })
    yield srv
    srv.stop()


def operations(spec):
    for path in PATHS:
        for method, op in spec["paths"][path].items():
            body: dict = {}
            for param in op.get("parameters", []):
                if param["in"] == "body":
                    ref = param["schema"]["$ref"].rsplit("/", 1)[-1]
                    body = spec["definitions"][ref]["properties"]
            yield path, method.upper(), op, body


def sample(name: str, schema: dict):
    if name in SAMPLES:
        return SAMPLES[name]
    # Some operations declare a flag as a string (Grape String coercion); send a boolean either way.
    if schema.get("type") == "boolean" or name in ("protected", "masked", "raw", "enable_ssl_verification") \
            or name.endswith("_events"):
        return True
    return "x"


def test_every_spec_operation_is_routed(spec, server):
    router = server.service.router
    for path, method, _op, _body in operations(spec):
        concrete = path.replace("{id}", "10").replace("{key}", "K").replace("{hook_id}", "1")
        matched = [r for r in router.routes if r.method == method and r.pattern.match(concrete)]
        assert matched, f"{method} {path} is not served"


def test_create_and_update_accept_every_declared_body_parameter(spec, server):
    headers = {"PRIVATE-TOKEN": ADMIN}
    checked = 0
    for path, method, _op, body in operations(spec):
        if method not in ("POST", "PUT") or not body or "url_variables/{key}" in path or "custom_headers/{key}" in path:
            continue
        server.service.reset({
            "users": [{"username": "root", "admin": True,
                       "tokens": [{"name": "t", "scopes": ["api"], "value": ADMIN, "expires_at": "now+10d"}]}],
            "groups": [{"full_path": "grp", "id": 20}],
            "projects": [{"path_with_namespace": "grp/proj", "id": 10}],
            "variables": [] if method == "POST" else [
                {"project": 10, "key": "SPEC_KEY", "value": "old-value-123"},
                {"group": 20, "key": "SPEC_KEY", "value": "old-value-123"},
                {"instance": True, "key": "SPEC_KEY", "value": "old-value-123"}],
            "hooks": [{"project": 10, "url": "https://old.example.com", "id": 1}],
        })
        payload = {name: sample(name, schema) for name, schema in body.items()}
        url = server.url + path.replace("{id}", "20" if "/groups/" in path else "10").replace(
            "{key}", "SPEC_KEY").replace("{hook_id}", "1")
        answer = requests.request(method, url, json=payload, headers=headers, timeout=5)
        assert answer.status_code in (200, 201), f"{method} {path}: {answer.status_code} {answer.text}"
        entity = answer.json()
        for name, value in payload.items():
            if name in ("filter", "masked_and_hidden", "token", "url_variables", "custom_headers"):
                continue
            if name in entity:
                assert entity[name] == value, f"{method} {path}: {name} reads back {entity[name]!r}"
        if "/hooks" in path:
            assert entity["token_present"] is True
            assert entity["url_variables"] == [{"key": "v"}] and entity["custom_headers"] == [{"key": "X-Spec"}]
            assert server.service.hook_secrets(entity["id"]) == {
                "token": "spec-hook-secret-1", "url_variables": {"v": "url-var-1"}, "custom_headers": {"X-Spec": "hdr-1"}}
        checked += 1
    assert checked == 8  # POST and PUT of project, group and instance variables and of project hooks


def test_pair_endpoints_take_a_value(spec, server):
    server.service.reset({
        "users": [{"username": "root", "admin": True,
                   "tokens": [{"name": "t", "scopes": ["api"], "value": ADMIN, "expires_at": "now+10d"}]}],
        "projects": [{"path_with_namespace": "grp/proj", "id": 10}],
        "hooks": [{"project": 10, "url": "https://old.example.com", "id": 1}],
    })
    for kind in ("url_variables", "custom_headers"):
        put = spec["paths"][f"/api/v4/projects/{{id}}/hooks/{{hook_id}}/{kind}/{{key}}"]["put"]
        ref = next(p for p in put["parameters"] if p["in"] == "body")["schema"]["$ref"].rsplit("/", 1)[-1]
        assert set(spec["definitions"][ref]["properties"]) == {"value"}
        answer = requests.put(f"{server.url}/api/v4/projects/10/hooks/1/{kind}/K1", json={"value": "pair-value-1"},
                              headers={"PRIVATE-TOKEN": ADMIN}, timeout=5)
        assert answer.status_code == 204
    assert server.service.hook_secrets(1)["url_variables"] == {"K1": "pair-value-1"}


# --- pipeline schedules ---------------------------------------------------------------------------

SCHEDULES = "/api/v4/projects/{id}/pipeline_schedules"
# Not modelled: the tool never runs a schedule or lists its pipelines.
SCHEDULE_PATHS_NOT_SERVED = (SCHEDULES + "/{pipeline_schedule_id}/pipelines", SCHEDULES + "/{pipeline_schedule_id}/play")
SCHEDULE_SAMPLES = {"description": "from the spec", "ref": "develop", "cron": "0 1 * * *", "cron_timezone": "Asia/Tokyo",
                    "active": False, "key": "SPEC_KEY", "value": "spec-value-123", "variable_type": "file"}


def schedule_operations(spec):
    for path in sorted(p for p in spec["paths"] if p.startswith(SCHEDULES) and p not in SCHEDULE_PATHS_NOT_SERVED):
        for method, op in spec["paths"][path].items():
            body = next((spec["definitions"][p["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"]
                         for p in op.get("parameters", []) if p["in"] == "body"), {})
            yield path, method.upper(), op, body


def test_every_schedule_operation_answers_its_documented_success_with_every_body_parameter(spec, server):
    seen = set()
    for path, method, op, body in schedule_operations(spec):
        server.service.reset({
            "users": [{"username": "root", "admin": True,
                       "tokens": [{"name": "t", "scopes": ["api"], "value": ADMIN, "expires_at": "now+10d"}]},
                      {"username": "alice"}],
            "projects": [{"path_with_namespace": "grp/proj", "id": 10}],
            # Owned by someone else, so that taking ownership changes it (201; 200 when already owned).
            "pipeline_schedules": [{"project": 10, "id": 13, "description": "old", "owner": "alice",
                                    "variables": [{"key": "SPEC_KEY", "value": "old-value-123"}]}],
        })
        payload = {name: SCHEDULE_SAMPLES[name] for name in body}
        if method == "POST" and "key" in payload:
            payload["key"] = "NEW_KEY"
        url = server.url + path.replace("{id}", "10").replace("{pipeline_schedule_id}", "13").replace("{key}", "SPEC_KEY")
        answer = requests.request(method, url, json=payload or None, headers={"PRIVATE-TOKEN": ADMIN}, timeout=5)
        success = [int(code) for code in op["responses"] if code.startswith("2")]
        assert answer.status_code in success, f"{method} {path}: {answer.status_code} {answer.text}"
        if answer.status_code != 204:
            entity = answer.json()
            for name, value in payload.items():
                assert entity[name] == value, f"{method} {path}: {name} reads back {entity[name]!r}"
            if "pipeline_schedule_id" in path and "variables" not in path:
                assert set(spec["definitions"]["API_Entities_Ci_PipelineScheduleDetails"]["properties"]) <= set(entity)
        seen.add((method, path))
    assert len(seen) == 9  # list, create, get, update, delete, take ownership; create, update, delete a variable
