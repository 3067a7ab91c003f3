"""The client-CPU shortcuts give the same answers as the slow paths they replace."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.adapters import HTTPAdapter

from reconciler.clients import Environment, Throttle, ThrottledAdapter, _environment_once_per_host, _hook
from reconciler.kinds.zendesk_webhook import ZendeskWebhook, ambiguous, find_webhook


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/api/v4/user", "https://gitlab.example.com/api/v4/user",
                                 "https://acme.zendesk.com/api/v2/webhooks"])
def test_proxy_settings_read_once_per_host_equal_requests_own(monkeypatch, url):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.zendesk.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    fast, slow, known = requests.Session(), requests.Session(), Environment()
    _environment_once_per_host(fast, known)
    for _ in range(2):  # the second answer comes from `known`
        got = fast.merge_environment_settings(url, {}, None, True, None)
        assert got == slow.merge_environment_settings(url, {}, None, True, None)
        got["proxies"]["https"] = "changed"  # a caller changing its copy changes nothing cached
    assert len(known.settings) == 1


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


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 to anything and records the request line and its Authorization header."""

    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.requestline, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Recording", (Recorder,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def hooked(*origins: str) -> tuple[requests.Session, Environment]:
    session, known = requests.Session(), Environment()
    _hook(session, Throttle(2), known, origins=origins)
    return session, known


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "NETRC"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_from_the_environment_still_carries_the_requests(clean_env, recorder):
    proxy, seen = recorder
    clean_env.setenv("HTTP_PROXY", proxy)
    session, _ = hooked("http://gitlab.example")
    for _ in range(2):
        assert session.get("http://gitlab.example/api/v4/version", timeout=5).status_code == 200
    assert [line for line, _ in seen] == ["GET http://gitlab.example/api/v4/version HTTP/1.1"] * 2
    clean_env.setenv("NO_PROXY", "gitlab.example")
    session, _ = hooked("http://gitlab.example")  # a new provider's sessions read the environment anew
    with pytest.raises(requests.ConnectionError):  # straight to gitlab.example, which does not resolve
        session.get("http://gitlab.example/api/v4/version", timeout=5)
    assert len(seen) == 2


def test_a_netrc_login_is_read_once_per_host_and_sent_as_requests_sends_it(clean_env, recorder, tmp_path):
    url, seen = recorder
    password = secrets.token_hex(8)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login bot password {password}\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    session, known = hooked(url)
    for _ in range(2):
        session.get(url + "/api/v4/user", timeout=5)
    requests.Session().get(url + "/api/v4/user", timeout=5)  # requests' own, for comparison
    expected = "Basic " + base64.b64encode(f"bot:{password}".encode()).decode()
    assert [auth for _, auth in seen] == [expected] * 3
    assert list(known.logins) == ["127.0.0.1"]
    netrc.write_text("")  # read once: the login stays for this provider's sessions
    session.get(url + "/api/v4/user", timeout=5)
    assert seen[-1][1] == expected
    clean_env.setenv("NETRC", str(tmp_path / "none"))
    session, known = hooked(url)
    session.get(url + "/api/v4/user", headers={"PRIVATE-TOKEN": "x"}, timeout=5)
    assert seen[-1][1] is None and known.logins == {"127.0.0.1": None}


@pytest.mark.parametrize("bundle", ["file", "directory", "missing"])
def test_a_ca_bundle_from_the_environment_still_applies(clean_env, tmp_path, bundle):
    path = tmp_path / "ca"
    if bundle == "file":
        path.write_text("")
    elif bundle == "directory":
        path.mkdir()
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(path))
    session, _ = hooked("https://gitlab.example")
    settings = session.merge_environment_settings("https://gitlab.example/api/v4/user", {}, None, True, None)
    assert settings["verify"] == str(path)
    prepared = requests.Request("GET", "https://gitlab.example/api/v4/user").prepare()
    adapter = session.get_adapter("https://gitlab.example")
    assert isinstance(adapter, ThrottledAdapter)
    for _ in range(2):  # the second from the adapter's cache
        assert adapter.build_connection_pool_key_attributes(prepared, str(path)) == \
            HTTPAdapter().build_connection_pool_key_attributes(prepared, str(path))
    if bundle == "missing":  # requests refuses before connecting, as it does without the cache
        with pytest.raises(OSError, match="CA certificate bundle"):
            session.get("https://gitlab.example/api/v4/user", timeout=5)
