"""Plain http and URL parsing: the host a check judges is the host the HTTP stack connects to, a
provider URL carries no user name or password, and a value goes to a consumer over plain http only
when the consumer says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from reconciler.cli import main
from reconciler.inventory import diagnose
from reconciler.inventory.checks import url_target

PROVIDERS = """
providers:
  zd:
    kind: zendesk
    subdomain: acme
    auth: {oauth_token_env: ZD_TOKEN}
  gl:
    kind: gitlab
    url: URL
    auth: {token_env: GL_TOKEN}
"""


def inventory(tmp_path: Path, consumer: str = "", url: str = "https://gitlab.example.com") -> Path:
    text = PROVIDERS.replace("URL", url)
    if consumer:
        text += ("tokens:\n  sync-trigger:\n    source: {kind: gitlab_pipeline_trigger, provider: gl, "
                 "project: acme/sync, description: sync}\n    consumers:\n" + consumer)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def errors(path: Path) -> list[str]:
    _, found = diagnose(path)
    return [f"{d.key}: {d.message}" for d in found if d.severity == "error"]


@pytest.mark.parametrize("url", ["http://evil\\@localhost", "http://evil.example\\@127.0.0.1:8080/"])
def test_a_provider_url_that_only_looks_like_loopback_is_refused(tmp_path, url, capsys):
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    assert prepared.url.startswith("http://evil")  # where requests would really connect
    found = errors(inventory(tmp_path, url=url))
    assert len(found) == 1 and "http:// would send the credential in clear" in found[0], found
    assert main(["validate", "--inventory", str(tmp_path)]) == 1
    assert "providers.gl" in capsys.readouterr().err


def test_a_provider_url_with_a_user_or_password_is_refused(tmp_path):
    found = errors(inventory(tmp_path, url="https://bot:hunter2hunter2@gitlab.example.com"))
    assert len(found) == 1 and "user name or password in the URL is refused" in found[0], found
    assert "hunter2" not in found[0]


def test_loopback_and_https_provider_urls_pass(tmp_path):
    for url in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:3000", "https://gitlab.example.com"):
        assert errors(inventory(tmp_path, url=url)) == [], url


def test_url_target_reads_urls_as_requests_connects():
    for url in ("http://evil\\@localhost/x", "http://a:b@localhost:80/", "https://GitLab.Example.com/"):
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        target = url_target(url)
        assert target is not None and requests.utils.urlparse(prepared.url).hostname == target.host


ZENDESK_HOOK = """      - kind: zendesk_webhook
        provider: zd
        webhook: sync
        endpoint: "ENDPOINT"
"""


def test_a_plain_http_webhook_endpoint_is_an_error_unless_allowed(tmp_path):
    endpoint = "http://ci.example.com/hooks/sync?token=${token}"  # not a trigger URL: that would be another error
    found = errors(inventory(tmp_path, ZENDESK_HOOK.replace("ENDPOINT", endpoint)))
    assert len(found) == 1 and found[0].startswith("tokens.sync-trigger.consumers[0].endpoint: http://ci.example.com "
                                                   "would receive the value in clear"), found
    assert "allow_plain_http: true" in found[0]
    allowed = ZENDESK_HOOK.replace("ENDPOINT", endpoint) + "        allow_plain_http: true\n"
    assert errors(inventory(tmp_path, allowed)) == []
    loopback = ZENDESK_HOOK.replace("ENDPOINT", "http://127.0.0.1:9000/hook?token=${token}")
    assert errors(inventory(tmp_path, loopback)) == []


def test_a_gitlab_hook_named_by_a_plain_http_url_is_an_error_unless_allowed(tmp_path):
    hook = ("      - kind: gitlab_webhook\n        provider: gl\n        project: acme/app\n"
            "        hook: http://deploy.example.com/hooks/{token}\n        secret: {url_variable: token}\n")
    found = errors(inventory(tmp_path, hook))
    assert len(found) == 1 and found[0].startswith("tokens.sync-trigger.consumers[0].hook: http://deploy.example.com"), found
    assert errors(inventory(tmp_path, hook + "        allow_plain_http: true\n")) == []


def test_any_consumer_whose_template_is_a_plain_http_url_is_an_error(tmp_path):
    variable = ("      - kind: gitlab_ci_variable\n        provider: gl\n        project: acme/app\n        key: HOOK\n"
                "        value: \"http://hooks.example.com/run?token=${token}\"\n")
    found = errors(inventory(tmp_path, variable))
    assert len(found) == 1 and found[0].startswith("tokens.sync-trigger.consumers[0].value: http://hooks.example.com"), found
