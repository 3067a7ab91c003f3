"""The client-CPU shortcuts give the same answers as the slow paths they replace."""

from __future__ import annotations

import pytest
import requests

from reconciler.clients import _environment_once_per_host
from reconciler.kinds.zendesk_webhook import ZendeskWebhook, ambiguous, find_webhook


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/api/v4/user", "https://gitlab.example.com/api/v4/user",
                                 "https://acme.zendesk.com/api/v2/webhooks"])
def test_proxy_settings_read_once_per_host_equal_requests_own(monkeypatch, url):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.zendesk.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    fast, slow, known = requests.Session(), requests.Session(), {}
    _environment_once_per_host(fast, known)
    for _ in range(2):  # the second answer comes from `known`
        got = fast.merge_environment_settings(url, {}, None, True, None)
        assert got == slow.merge_environment_settings(url, {}, None, True, None)
        got["proxies"]["https"] = "changed"  # a caller changing its copy changes nothing cached
    assert len(known) == 1


def hook(webhook: str) -> ZendeskWebhook:
    return ZendeskWebhook(provider="zd", webhook=webhook, endpoint="https://x.example/?t=${token}")


def test_webhook_lookup_matches_a_scan():
    data = [{"id": "01A", "name": "Notify"}, {"id": "01B", "name": "Notify"}, {"id": "Notify2", "name": "Other"},
            {"id": "01C", "name": "Notify2"}, {"id": "01D", "name": None}]
    for name in ("Notify", "01B", "Notify2", "Other", "missing", "01D"):
        scan = next((r for r in data if str(r.get("id")) == name or r.get("name") == name), None)
        assert find_webhook(hook(name), data) is scan
    assert "2 webhooks are named 'Notify' (ids 01A, 01B)" in (ambiguous(hook("Notify"), data) or "")
    assert ambiguous(hook("Notify2"), data) is None  # an id wins over a name
    data.append({"id": "01E", "name": "Other"})  # a changed list is indexed again
    assert ambiguous(hook("Other"), data) is not None
