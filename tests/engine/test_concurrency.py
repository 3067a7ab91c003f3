"""Per-provider concurrency and rate limits (reconciler.clients.Throttle) against the sandboxes:
the client never exceeds a configured rate, never overdraws the server's budget
(`RateLimit-Remaining` with `RateLimit-Reset`, or Zendesk's `X-Rate-Limit-Remaining` alone), and
after a 429 sends nothing until its `Retry-After` has passed. Arrival times are taken at the
sandbox (a wrapper around the service's handler), so the assertions are about the wire."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.clients import Endpoints, GitLabApi, ProviderError, Rate, ZendeskApi, connect, limits_from_env
from reconciler.inventory.model import GitLabProvider, Inventory, Token, ZendeskProvider
from reconciler.kinds._gitlab import fetch_project_variables
from reconciler.kinds.external import ExternalSource
from reconciler.kinds.gitlab_ci_variable import GitLabCiVariable
from reconciler.secret import Secret
from reconciler_sandbox.core import FaultRule, RateLimiter
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.zendesk import serve_zendesk

TOLERANCE = 0.05  # seconds: thread wake-up and loopback jitter


def arrivals(server) -> list[tuple[float, int]]:
    """Record (monotonic arrival time, status) of every request the sandbox answers."""
    seen: list[tuple[float, int]] = []
    lock = threading.Lock()
    handle = server.service.handle

    def timed(request):
        at = time.monotonic()
        response = handle(request)
        with lock:
            seen.append((at, response.status))
        return response

    server.service.handle = timed
    return seen


@pytest.fixture
def gitlab_world():
    value = "glpat-" + secrets.token_hex(12)
    seed = {
        "users": [{"username": "bot", "admin": True, "tokens": [{"name": "cred", "scopes": ["api"], "value": value}]}],
        "projects": [{"path_with_namespace": "g/p"}],
        "variables": [{"project": "g/p", "key": f"K{i}", "value": f"plain-{i}"} for i in range(3)],
    }
    return seed, Secret(value)


def gitlab_api(server, token: Secret, **kw) -> GitLabApi:
    provider = GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL_TOKEN")
    return GitLabApi(provider, token, url=server.url, **kw)


def list_many(api, n: int, call) -> list:
    def one(_: int):
        with api.throttle:
            return call()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(n)))


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u - t < window) for i, t in enumerate(times))


def test_gitlab_budget_is_never_overdrawn(gitlab_world):
    seed, token = gitlab_world
    with serve_gitlab(seed, rate_limit=RateLimiter(limit=4, window=1.0)) as server:
        api = gitlab_api(server, token, concurrency=4)
        results = list_many(api, 6, lambda: fetch_project_variables(api, "g/p"))
    assert all(len(rows) == 3 for rows in results)
    statuses = [e.status for e in server.log.snapshot()]
    assert statuses.count(200) == 6 and 429 not in statuses  # waited for RateLimit-Reset instead
    assert api.throttle.throttled == 0 and api.throttle.waited > 0
    assert api.throttle.requests == 6


def test_configured_rate_is_never_exceeded(gitlab_world):
    seed, token = gitlab_world
    with serve_gitlab(seed) as server:
        seen = arrivals(server)
        api = gitlab_api(server, token, concurrency=4, rate=Rate(3, per=0.2))
        started = time.monotonic()
        list_many(api, 10, lambda: fetch_project_variables(api, "g/p"))
        elapsed = time.monotonic() - started
    assert len(seen) == 10
    assert most_in_any_window([t for t, _ in seen], 0.2 - TOLERANCE) <= 3
    assert elapsed >= 3 * 0.2  # 10 requests at 3 per 0.2 s need at least three more windows


def test_a_429_pauses_every_request_of_the_provider_for_retry_after(gitlab_world):
    seed, token = gitlab_world
    with serve_gitlab(seed) as server:
        server.faults.retry_after = 1
        server.faults.configure(rules=[FaultRule("429", nth=(3,))])
        seen = arrivals(server)
        api = gitlab_api(server, token, concurrency=4)
        results = list_many(api, 8, lambda: fetch_project_variables(api, "g/p"))
    assert all(len(rows) == 3 for rows in results)  # python-gitlab retried the refused one
    refused = [e for e in server.log.snapshot() if e.status == 429]
    assert len(refused) == 1 and api.throttle.throttled == 1
    # the injected 429 never reaches the handler, so it shows as a gap between arrivals
    gaps = [b - a for (a, _), (b, _) in zip(sorted(seen), sorted(seen)[1:], strict=False)]
    assert max(gaps) >= 1.0 - TOLERANCE  # everyone waited out Retry-After
    assert len(seen) == 8


def test_zendesk_budget_without_reset_time_is_probed_and_429s_are_waited_out():
    value = secrets.token_hex(32)
    seed = {"instances": {"acme": {"oauth_tokens": [{"scopes": ["read", "write"], "value": value}]}}}
    with serve_zendesk(seed, rate_limit=RateLimiter(limit=4, window=1.0)) as server:
        seen = arrivals(server)
        provider = ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN")
        api = ZendeskApi(provider, Secret(value), endpoints=Endpoints(zendesk_netloc=f"127.0.0.1:{server.port}"),
                         concurrency=4)
        results = list_many(api, 7, lambda: api.get("/api/v2/api_tokens.json"))
    assert all("api_tokens" in body for body in results)
    log = server.log.snapshot()
    assert sum(e.status == 200 for e in log) == 7
    # the budget runs out once: one probe (not every waiting request) finds the window still closed
    refused = [e for e in log if e.status == 429]
    assert len(refused) <= 1 and api.throttle.throttled == len(refused)
    answered = sorted(t for t, _ in seen)
    assert most_in_any_window(answered, 1.0 - TOLERANCE) <= 4


def test_limits_come_from_the_environment_and_bad_values_name_the_variable():
    assert limits_from_env({}) == (4, None)
    assert limits_from_env({"RECONCILE_CONCURRENCY": "2", "RECONCILE_MAX_RATE": "600/60"}) == (2, Rate(600, 60.0))
    assert limits_from_env({"RECONCILE_MAX_RATE": "5"}) == (4, Rate(5, 1.0))
    for env, name in (({"RECONCILE_CONCURRENCY": "0"}, "RECONCILE_CONCURRENCY"),
                      ({"RECONCILE_MAX_RATE": "fast"}, "RECONCILE_MAX_RATE"),
                      ({"RECONCILE_MAX_RATE": "10/0"}, "RECONCILE_MAX_RATE")):
        with pytest.raises(ProviderError, match=name):
            limits_from_env(env)


def test_connect_applies_the_configured_rate_to_every_provider(gitlab_world):
    seed, token = gitlab_world
    provider = GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL_TOKEN")
    tok = Token(name="t", source=ExternalSource(provider=None, value_env="X"),
                consumers=(GitLabCiVariable(provider="gl", project="g/p", key="K0"),))
    inventory = Inventory(providers={"gl": provider}, tokens={"t": tok})
    with serve_gitlab(seed) as server:
        clients = connect(inventory, env={"GL_TOKEN": token.reveal(), "RECONCILE_MAX_RATE": "2/0.2",
                                          "RECONCILE_CONCURRENCY": "3"}, endpoints=Endpoints(gitlab_url=server.url))
        api = clients["gl"]
        assert (api.throttle.concurrency, api.throttle.max_requests, api.throttle.per) == (3, 2, 0.2)
        seen = arrivals(server)
        list_many(api, 6, lambda: fetch_project_variables(api, "g/p"))
    assert len(seen) == 6 and most_in_any_window([t for t, _ in seen], 0.2 - TOLERANCE) <= 2
