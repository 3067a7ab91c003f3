"""A provider's credential goes to the provider's own origin (scheme, host, port) and nowhere else:
no client follows a redirect (python-gitlab would resend PRIVATE-TOKEN to any host, https to http
included), and page links elsewhere (GitLab's `Link` header, Zendesk's `links.next`) are refused.

A GitLab sandbox answers the real requests; `Recorder` is a tiny server on another loopback port
that records every request it receives (the place a hostile answer points to), and `Hostile`
answers every request with what a test gives it (a 302, or a page whose next link points to the
recorder)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.clients import Endpoints, OffOrigin, ZendeskApi, gitlab_client, make_throttle, origin_of
from reconciler.inventory.model import ZendeskProvider
from reconciler.secret import Secret
from reconciler_sandbox.gitlab import serve_gitlab

Answer = tuple[int, dict[str, str], bytes]


@contextmanager
def server(answer: Callable[[str], Answer]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """(base URL, the headers of every request received) of a loopback server answering
    `answer(path)`."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append({k.lower(): v for k, v in self.headers.items()})
            status, headers, body = answer(self.path)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def recorder() -> Callable[[str], Answer]:
    return lambda path: (200, {"Content-Type": "application/json"}, b"[]")


def redirect_to(target: str) -> Callable[[str], Answer]:
    return lambda path: (302, {"Location": target + path}, b"")


def page_linking_to(target: str, body: object, header: bool = False) -> Callable[[str], Answer]:
    headers = {"Content-Type": "application/json"}
    if header:
        headers["Link"] = f'<{target}/elsewhere?page=2>; rel="next"'
    return lambda path: (200, headers, json.dumps(body).encode())


def gitlab_credential() -> tuple[str, dict]:
    value = "glpat-" + secrets.token_hex(12)
    return value, {"users": [{"username": "bot", "tokens": [{"name": "cred", "scopes": ["api"], "value": value}]}]}


def test_a_gitlab_redirect_to_another_port_is_an_error_and_never_gets_the_credential():
    value, seed = gitlab_credential()
    with serve_gitlab(seed) as sandbox, server(redirect_to(sandbox.url)) as (front, front_seen):
        gl = gitlab_client(front, make_throttle(1, None), private_token=value)
        with pytest.raises(OffOrigin, match=r"answered 302, a redirect to http://127\.0\.0\.1:\d+: not followed"):
            gl.http_get("/user")
        assert len(front_seen) == 1 and front_seen[0]["private-token"] == value  # the provider's own origin
        assert sandbox.log.count() == 0, "the redirect was followed: the credential reached another port"


def test_a_gitlab_page_link_to_another_origin_is_refused():
    value, _ = gitlab_credential()
    with server(recorder()) as (elsewhere, seen), \
            server(page_linking_to(elsewhere, [{"id": 1}], header=True)) as (front, _):
        gl = gitlab_client(front, make_throttle(1, None), private_token=value)
        with pytest.raises(OffOrigin, match=r"refused to send a request to http://127\.0\.0\.1:\d+, which is not"):
            gl.http_list("/projects", get_all=True)
        assert seen == [], "a page link elsewhere was followed with the credential"


def zendesk_api(front: str, credential: str) -> ZendeskApi:
    return ZendeskApi(ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN"), Secret(credential),
                      endpoints=Endpoints(zendesk_netloc=front.removeprefix("http://")))


@pytest.mark.parametrize("link", ["recorder", "plain http", "offset"])
def test_a_zendesk_page_link_to_another_origin_is_refused(link):
    credential = secrets.token_hex(32)
    with server(recorder()) as (elsewhere, seen):
        target = "http://acme.zendesk.com" if link == "plain http" else elsewhere  # the instance, over http
        url = f"{target}/api/v2/oauth/clients.json?page[after]=x"
        body: dict = {"clients": [{"id": 1, "identifier": "a"}]}
        body.update({"next_page": url} if link == "offset" else {"meta": {"has_more": True}, "links": {"next": url}})
        with server(page_linking_to(elsewhere, body)) as (front, front_seen):
            api = zendesk_api(front, credential)
            with pytest.raises(OffOrigin, match=f"request to {target}, which is not the provider's own origin"):
                api.get_all("/api/v2/oauth/clients.json", "clients")
        assert len(front_seen) == 1 and seen == [], "a page link elsewhere was followed with the credential"


def test_a_zendesk_redirect_is_an_error_and_never_gets_the_credential():
    credential = secrets.token_hex(32)
    with server(recorder()) as (elsewhere, seen), server(redirect_to(elsewhere)) as (front, _):
        api = zendesk_api(front, credential)
        with pytest.raises(OffOrigin, match="Zendesk provider zd .* answered 302"):
            api.get("/api/v2/oauth/clients.json")
        with pytest.raises(OffOrigin, match="answered 302"):
            list(api.zenpy.webhooks())
        assert seen == []


def test_origins_are_read_as_the_http_stack_reads_them():
    assert origin_of("https://gitlab.example.com/api") == ("https", "gitlab.example.com", 443)
    assert origin_of("https://GitLab.example.com:443/x") == origin_of("https://gitlab.example.com/y")
    assert origin_of("http://gitlab.example.com/api") != origin_of("https://gitlab.example.com/api")
    assert origin_of("https://gitlab.example.com.evil.net/api")[1] == "gitlab.example.com.evil.net"
    assert origin_of("https://gitlab.example.com@evil.net/api")[1] == "evil.net"
