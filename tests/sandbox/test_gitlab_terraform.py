"""The GitLab sandbox's Terraform-state HTTP backend (the ledger backend builds on it)."""

from __future__ import annotations

import json
import secrets

import pytest
import requests

from reconciler_sandbox.gitlab import serve_gitlab

MAINTAINER_PAT = "glpat-" + secrets.token_urlsafe(15)[:20]
DEVELOPER_PAT = "glpat-" + secrets.token_urlsafe(15)[:20]
JOB_TOKEN = "glcbt-" + secrets.token_urlsafe(15)[:20]
OTHER_JOB_TOKEN = "glcbt-" + secrets.token_urlsafe(15)[:20]

SEED = {
    "users": [
        {"username": "ops", "tokens": [{"name": "ledger", "scopes": ["api"], "value": MAINTAINER_PAT,
                                        "expires_at": "now+30d"}]},
        {"username": "dev", "tokens": [{"name": "dev", "scopes": ["api"], "value": DEVELOPER_PAT,
                                        "expires_at": "now+30d"}]},
    ],
    "projects": [
        {"path_with_namespace": "infra/ledger", "id": 77, "members": {"ops": 40, "dev": 30}},
        {"path_with_namespace": "infra/other", "members": {"ops": 40}},
    ],
    "job_tokens": [{"project": "infra/ledger", "user": "ops", "value": JOB_TOKEN},
                   {"project": "infra/other", "user": "ops", "value": OTHER_JOB_TOKEN}],
}

LOCK = {"ID": "lock-1", "Operation": "OperationTypeApply", "Info": "", "Who": "ops@ci", "Version": "1.0",
        "Created": "2026-01-01T00:00:00Z", "Path": ""}


@pytest.fixture(scope="module")
def shared():
    srv = serve_gitlab()
    yield srv
    srv.stop()


@pytest.fixture
def server(shared):
    shared.service.reset(SEED)
    return shared


def url(server, name="ledger", project="77"):
    return f"{server.url}/api/v4/projects/{project}/terraform/state/{name}"


def pat(token=MAINTAINER_PAT):
    return {"PRIVATE-TOKEN": token}


def test_unknown_state_is_404_then_post_creates_a_version_that_get_returns(server):
    assert requests.get(url(server), headers=pat()).json() == {"message": "404 Not found"}
    body = json.dumps({"version": 4, "serial": 1}).encode()
    assert requests.post(url(server), data=body, headers=pat()).status_code == 200
    got = requests.get(url(server), headers=pat())
    assert got.status_code == 200 and got.content == body
    assert len(server.service.terraform_state(77, "ledger")["versions"]) == 1


def test_empty_post_answers_204_and_stores_nothing(server):
    assert requests.post(url(server), data=b"", headers=pat()).status_code == 204
    assert server.service.terraform_state(77, "ledger") is None


def test_project_path_works_like_the_id(server):
    assert requests.post(url(server, project="infra%2Fledger"), data=b"{}", headers=pat()).status_code == 200
    assert requests.get(url(server), headers=pat()).content == b"{}"


def test_lock_conflicts_and_post_needs_the_lock_id(server):
    first = requests.post(url(server) + "/lock", json=LOCK, headers=pat())
    assert first.status_code == 200
    assert first.json()["ID"] == "lock-1" and first.json()["Who"] == "ops"
    second = requests.post(url(server) + "/lock", json={**LOCK, "ID": "lock-2"}, headers=pat())
    assert second.status_code == 409 and second.json()["ID"] == "lock-1"
    # Writing while locked: without the ID or with another one refused; with it accepted.
    assert requests.post(url(server), data=b"{}", headers=pat()).status_code == 409
    assert requests.post(url(server) + "?ID=lock-2", data=b"{}", headers=pat()).status_code == 409
    assert requests.post(url(server) + "?ID=lock-1", data=b'{"a":1}', headers=pat()).status_code == 200
    assert requests.delete(url(server) + "/lock", json={"ID": "lock-2"}, headers=pat()).status_code == 409
    assert requests.delete(url(server) + "/lock", json={"ID": "lock-1"}, headers=pat()).status_code == 200
    assert requests.post(url(server), data=b'{"a":2}', headers=pat()).status_code == 200
    assert requests.get(url(server), headers=pat()).json() == {"a": 2}


def test_force_unlock_without_id(server):
    requests.post(url(server) + "/lock", json=LOCK, headers=pat())
    assert requests.delete(url(server) + "/lock", headers=pat()).status_code == 200
    assert server.service.terraform_state(77, "ledger")["lock"] is None


def test_lock_requires_every_lock_field(server):
    answer = requests.post(url(server) + "/lock", json={"ID": "x"}, headers=pat())
    assert answer.status_code == 400 and "missing" in answer.json()["error"]


def test_delete_state_respects_the_lock(server):
    requests.post(url(server), data=b"{}", headers=pat())
    requests.post(url(server) + "/lock", json=LOCK, headers=pat())
    assert requests.delete(url(server), headers=pat()).status_code == 409
    assert requests.delete(url(server) + "?ID=lock-1", headers=pat()).status_code == 200
    assert requests.get(url(server), headers=pat()).status_code == 404


def test_job_token_works_as_basic_auth_on_its_own_project_only(server):
    assert requests.post(url(server), data=b"{}", auth=("gitlab-ci-token", JOB_TOKEN)).status_code == 200
    assert requests.get(url(server), auth=("gitlab-ci-token", JOB_TOKEN)).status_code == 200
    assert requests.get(url(server), auth=("gitlab-ci-token", OTHER_JOB_TOKEN)).status_code == 404
    # GitLab declares these routes `job_token_allowed: :basic_auth`: the JOB-TOKEN header is ignored.
    assert requests.get(url(server), headers={"JOB-TOKEN": JOB_TOKEN}).status_code == 401
    # A job token is not accepted on the rest of the API.
    assert requests.get(f"{server.url}/api/v4/projects/77", headers={"JOB-TOKEN": JOB_TOKEN}).status_code == 401


def test_basic_auth_with_a_pat_and_bearer(server):
    assert requests.post(url(server), data=b"{}", auth=("ops", MAINTAINER_PAT)).status_code == 200
    assert requests.get(url(server), headers={"Authorization": f"Bearer {MAINTAINER_PAT}"}).status_code == 200


def test_developer_reads_but_cannot_write(server):
    requests.post(url(server), data=b"{}", headers=pat())
    assert requests.get(url(server), headers=pat(DEVELOPER_PAT)).status_code == 200
    assert requests.post(url(server), data=b"{}", headers=pat(DEVELOPER_PAT)).status_code == 403


def test_unauthenticated_is_401(server):
    assert requests.get(url(server)).status_code == 401
    assert requests.get(url(server), headers=pat("glpat-" + "unknown" * 3)).status_code == 401


def test_state_survives_save_and_load(server, tmp_path):
    requests.post(url(server), data=b'{"kept":true}', headers=pat())
    path = tmp_path / "gitlab.sandbox.json"
    server.service.save(path)
    fresh = serve_gitlab()
    try:
        fresh.service.load(path)
        assert requests.get(url(fresh), headers=pat()).json() == {"kept": True}
    finally:
        fresh.stop()
