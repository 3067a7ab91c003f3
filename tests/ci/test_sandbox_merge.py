"""The GitLab sandbox's merge endpoint and commit -> merge request lookup, through python-gitlab."""

from __future__ import annotations

import secrets

import gitlab
import pytest

from reconciler_sandbox.gitlab import serve_gitlab


def mint(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


MAINTAINER, GUEST = mint(), mint()
HEAD, OTHER, EARLIER = "b" * 40, "c" * 40, "d" * 40


@pytest.fixture(scope="module")
def shared():
    with serve_gitlab() as srv:
        yield srv


@pytest.fixture
def server(shared):
    seed = {
        "users": [
            {"username": "maya", "tokens": [{"name": "api", "scopes": ["api"], "value": MAINTAINER,
                                             "expires_at": "now+30d"}]},
            {"username": "gus", "tokens": [{"name": "api", "scopes": ["api"], "value": GUEST,
                                            "expires_at": "now+30d"}]},
        ],
        "projects": [{"path_with_namespace": "ops/inventory", "id": 42, "members": {"maya": 40, "gus": 10}}],
        "merge_requests": [
            {"project": "ops/inventory", "iid": 3, "sha": HEAD, "title": "Rotate the sync trigger"},
            {"project": "ops/inventory", "iid": 4, "sha": OTHER, "title": "Unrelated"},
        ],
    }
    shared.service.reset(seed)
    # the commits of !3's diff (seeds have no repository; by_related_commit_sha also matches these)
    shared.service.store.tables["merge_requests"][1]["commits"] = [EARLIER, HEAD]
    return shared


def project(server, token=MAINTAINER):
    return gitlab.Gitlab(server.url, private_token=token, timeout=5).projects.get(42, lazy=True)


def test_merge_sets_the_merge_commit_and_the_commit_finds_the_merged_mr(server):
    mr = project(server).mergerequests.get(3)
    assert mr.state == "opened" and mr.merge_commit_sha is None
    mr.merge(sha=HEAD)
    assert mr.state == "merged" and len(mr.merge_commit_sha) == 40
    assert mr.merged_by["username"] == "maya" and mr.merged_at and mr.detailed_merge_status == "not_open"
    for sha in (mr.merge_commit_sha, mr.merge_commit_sha[:8], HEAD, EARLIER):
        found = project(server).commits.get(sha, lazy=True).merge_requests(get_all=True)
        assert [m["iid"] for m in found] == [3], sha
        assert found[0]["state"] == "merged" and found[0]["merge_commit_sha"] == mr.merge_commit_sha
    assert project(server).commits.get("e" * 40, lazy=True).merge_requests(get_all=True) == []


def test_squash_merge_records_the_squash_commit(server):
    mr = project(server).mergerequests.get(4)
    mr.merge(squash=True)
    assert mr.squash and len(mr.squash_commit_sha) == 40 and mr.squash_commit_sha != mr.merge_commit_sha
    found = project(server).commits.get(mr.squash_commit_sha, lazy=True).merge_requests(get_all=True)
    assert [m["iid"] for m in found] == [4]


def test_merge_refusals_follow_gitlab(server):
    mr = project(server).mergerequests.get(3)
    with pytest.raises(gitlab.GitlabMRClosedError) as err:  # python-gitlab's class for any merge failure
        mr.merge(sha=OTHER)
    assert err.value.response_code == 409 and HEAD in str(err.value.error_message)
    with pytest.raises(gitlab.GitlabAuthenticationError) as auth:  # python-gitlab raises this for any 401
        project(server, GUEST).mergerequests.get(3, lazy=True).merge()
    assert auth.value.response_code == 401
    mr.merge()
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        mr.merge()
    assert err.value.response_code == 405


def test_user_notes_count_counts_the_notes(server):
    mr = project(server).mergerequests.get(3)
    mr.notes.create({"body": "one"})
    mr.notes.create({"body": "two"})
    assert project(server).mergerequests.get(3).user_notes_count == 2
