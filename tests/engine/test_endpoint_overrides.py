"""The variables `reconcile sandbox` prints work for plain `plan`, `apply` and `check` (no
`--sandbox`): the inventory's providers are reached at the sandbox, the ledger lives on the
sandbox's Terraform-state endpoint of the state project, and the trusted provider set still
decides which providers are contacted. An override that points neither at loopback nor at an
origin the trusted set names is refused before any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import cli
from reconciler.clients import Endpoints, ProviderError
from reconciler.trust import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, TRUSTED_PROVIDERS_ENV, endpoint_refusal
from reconciler_sandbox.world import DEFAULT_SEED, start_world

ROOT = Path(__file__).resolve().parents[2]
STATE_PROJECT = "gitlab-com/support/support-ops/reconcile"


@pytest.mark.parametrize("address", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9",
                                     "https://127.0.0.2"])
def test_a_loopback_override_is_accepted(address):
    assert endpoint_refusal(SANDBOX_ENV_GITLAB, address, {}) is None


@pytest.mark.parametrize("address, why", [
    ("https://gitlab.example.com", "neither loopback nor named by $RECONCILE_TRUSTED_PROVIDERS"),
    ("http://10.1.2.3:8080", "neither loopback"),
    ("http://127.0.0.1.example.com", "neither loopback"),
    ("ftp://127.0.0.1", "not an http(s) address"),
    ("http://someone:pw@127.0.0.1:80", "not an http(s) address"),
    ("http://127.0.0.1:99999", "not an http(s) address"),
    ("http://127.0.0.1/?token=abc", "not an http(s) address"),
])
def test_any_other_override_is_refused_without_repeating_a_malformed_value(address, why):
    refusal = endpoint_refusal(SANDBOX_ENV_GITLAB, address, {})
    assert refusal is not None and why in refusal and refusal.startswith(f"${SANDBOX_ENV_GITLAB}: ")
    assert "pw" not in refusal and "abc" not in refusal


def test_an_origin_the_trusted_set_names_is_accepted():
    env = {TRUSTED_PROVIDERS_ENV: "https://gitlab.example.com=RECONCILE_GITLAB_TOKEN"}
    assert endpoint_refusal(SANDBOX_ENV_GITLAB, "https://gitlab.example.com", env) is None
    assert endpoint_refusal(SANDBOX_ENV_GITLAB, "https://other.example.com", env) is not None


def test_endpoints_come_from_the_environment_only_when_set():
    assert Endpoints.from_env({}) is None
    found = Endpoints.from_env({SANDBOX_ENV_GITLAB: "http://127.0.0.1:1", SANDBOX_ENV_ZENDESK: "127.0.0.1:2"})
    assert found == Endpoints(gitlab_url="http://127.0.0.1:1", zendesk_netloc="127.0.0.1:2")
    with pytest.raises(ProviderError, match=SANDBOX_ENV_ZENDESK):
        Endpoints.from_env({SANDBOX_ENV_ZENDESK: "zendesk.example.com:443"})


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The demo world as `reconcile sandbox` serves it, its printed variables in the environment."""
    (tmp_path / "inventory").symlink_to(ROOT / "inventory")
    monkeypatch.chdir(tmp_path)
    for name in ("CI", "CI_PIPELINE_SOURCE", "CI_MERGE_REQUEST_IID", TRUSTED_PROVIDERS_ENV,
                 "RECONCILE_TRUSTED_INVENTORY"):
        monkeypatch.delenv(name, raising=False)
    world = start_world(DEFAULT_SEED)
    for name, value in {**world.credentials, SANDBOX_ENV_GITLAB: world.gitlab.url,
                        SANDBOX_ENV_ZENDESK: world.endpoints.zendesk_netloc}.items():
        monkeypatch.setenv(name, value)
    yield world
    world.stop()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plain_plan_apply_and_check_work_with_the_printed_variables(served, capsys):
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert (code, err) == (2, ""), out
    assert "to rotate" in out
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0, out + err
    assert "Apply complete:" in out and "0 failed" in out
    # the ledger is the state project's Terraform state on the sandbox, not a local file
    project = served.gitlab.service.project(STATE_PROJECT)
    assert served.gitlab.service.store.tables["terraform_states"], "no Terraform state written"
    assert any(s["project_id"] == project["id"] for s in served.gitlab.service.store.tables["terraform_states"].values())
    assert not Path(".reconcile").exists()
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0, out + err
    code, out, err = run(capsys, "check", "--issue", STATE_PROJECT)
    assert code == 2 and "issue #1" in err and "created" in err, out + err  # 2: tokens need attention


def test_a_merge_request_pipeline_still_needs_the_trusted_provider_set(served, capsys, monkeypatch):
    monkeypatch.setenv("CI_PIPELINE_SOURCE", "merge_request_event")
    code, out, err = run(capsys, "plan")
    assert code == 1 and "not in the trusted provider set" in out + err


def test_a_redirect_to_another_host_is_refused_before_any_request(served, capsys, monkeypatch):
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, "https://collector.example.com")
    before = served.requests()
    code, out, err = run(capsys, "plan")
    assert code == 1 and "collector.example.com is neither loopback" in err
    assert served.requests() == before


def test_the_merge_request_notes_reach_the_same_gitlab_as_the_providers():
    from reconciler.gitlab_ci import CIError, connect_gitlab

    token = {"RECONCILE_GITLAB_TOKEN": "glpat-" + "n" * 20}
    gl = connect_gitlab("https://gitlab.com", "RECONCILE_GITLAB_TOKEN", {**token, SANDBOX_ENV_GITLAB: "http://127.0.0.1:9"})
    assert gl.url == "http://127.0.0.1:9"
    assert connect_gitlab("https://gitlab.com", "RECONCILE_GITLAB_TOKEN", token).url == "https://gitlab.com"
    with pytest.raises(CIError, match="neither loopback"):
        connect_gitlab("https://gitlab.com", "RECONCILE_GITLAB_TOKEN", {**token, SANDBOX_ENV_GITLAB: "https://x.example"})
