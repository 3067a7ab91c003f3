"""The shared sandbox server: routing, faults, the crash hook and the request log."""

from __future__ import annotations

import time

import pytest
import requests

from reconciler_sandbox.core import Clock, FaultRule, RateLimiter, Response, SandboxServer, Service


class Counter(Service):
    name = "counter"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.count = 0
        self.router.add("GET", "/api/things/{id}{.json}", lambda r: Response(200, {"id": r.params["id"]}))
        self.router.add("POST", "/api/things", self.create)

    def create(self, request):
        self.count += 1
        return Response(201, {"count": self.count})


@pytest.fixture
def server():
    with SandboxServer(Counter(Clock())) as srv:
        yield srv


def test_placeholders_are_decoded_and_json_suffix_is_optional(server):
    assert requests.get(f"{server.url}/api/things/a%2Fb.json").json() == {"id": "a/b"}
    assert requests.get(f"{server.url}/api/things/7").json() == {"id": "7"}


def test_wrong_method_on_a_known_path_is_405(server):
    assert requests.delete(f"{server.url}/api/things/7").status_code == 405


def test_fault_after_applies_the_request_and_loses_the_answer(server):
    server.faults.configure(rules=[FaultRule("502", nth=(1,), method="POST", after=True)])
    assert requests.post(f"{server.url}/api/things").status_code == 502
    assert server.service.count == 1
    assert [e.applied for e in server.log.mutations()] == [True]


def test_fault_before_does_not_apply(server):
    server.faults.configure(rules=[FaultRule("500", nth=(1,), method="POST")])
    assert requests.post(f"{server.url}/api/things").status_code == 500
    assert server.service.count == 0
    assert server.log.mutations() == []


def test_crash_hook_applies_the_nth_mutation_then_drops_everything(server):
    server.faults.crash_after(2)
    assert requests.post(f"{server.url}/api/things").status_code == 201
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{server.url}/api/things")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/api/things/1")
    assert server.service.count == 2
    server.faults.recover()
    assert requests.get(f"{server.url}/api/things/1").status_code == 200


def test_timeout_fault_holds_the_request_past_the_client_timeout(server):
    server.faults.timeout_seconds = 1.0
    server.faults.configure(rules=[FaultRule("timeout", nth=(1,))])
    with pytest.raises(requests.Timeout):
        requests.get(f"{server.url}/api/things/1", timeout=0.2)


def test_seeded_rate_faults_are_reproducible():
    def run(seed: int) -> list[int]:
        with SandboxServer(Counter(Clock())) as srv:
            srv.faults.configure(rules=[FaultRule("503", rate=0.3)], seed=seed)
            return [requests.get(f"{srv.url}/api/things/{i}").status_code for i in range(30)]

    first = run(7)
    assert first == run(7)
    assert 503 in first and 200 in first


def test_log_never_holds_query_values(server):
    requests.get(f"{server.url}/api/things/1?token=glptt-abcdefgh12345678")
    entry = server.log.snapshot()[-1]
    assert entry.query_keys == ("token",)
    assert "glptt" not in repr(entry)


def eventually(condition, limit: float = 10.0) -> bool:
    """Whether `condition()` holds within `limit` seconds (polled)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_the_service_handles_a_request_on_arrival_and_holds_the_answer_for_the_latency(server):
    server.faults.configure(latency=30.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{server.url}/api/things", timeout=0.5)
    # applied and logged long before its latency is over: the handling is inside the latency
    assert eventually(lambda: server.service.count == 1)
    assert [(e.status, e.applied) for e in server.log.snapshot()] == [(201, True)]


@pytest.mark.parametrize("rule", [FaultRule("500", nth=(1,)), FaultRule("429", nth=(1,)), FaultRule("drop", nth=(1,)),
                                  FaultRule("502", nth=(1,), after=True), FaultRule("drop", nth=(1,), after=True)],
                         ids=["500", "429", "drop", "502-after", "drop-after"])
def test_a_fault_comes_no_sooner_than_the_latency(server, rule):
    server.faults.configure(latency=0.2, rules=[rule])
    start = time.monotonic()
    try:
        status = requests.post(f"{server.url}/api/things").status_code
    except requests.ConnectionError:
        status = 0
    assert time.monotonic() - start >= 0.2
    assert status == (0 if rule.kind == "drop" else int(rule.kind))
    assert server.service.count == (1 if rule.after else 0)


def test_a_crash_and_a_rate_limit_come_no_sooner_than_the_latency():
    with SandboxServer(Counter(Clock()), rate_limit=RateLimiter(limit=1)) as srv:
        srv.faults.configure(latency=0.2)
        requests.get(f"{srv.url}/api/things/1")
        start = time.monotonic()
        assert requests.get(f"{srv.url}/api/things/2").status_code == 429
        assert time.monotonic() - start >= 0.2
    with SandboxServer(Counter(Clock())) as srv:
        srv.faults.configure(latency=0.2)
        srv.faults.crash_after(1)
        start = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{srv.url}/api/things")
        assert time.monotonic() - start >= 0.2
        assert srv.service.count == 1
