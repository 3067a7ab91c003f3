"""Server machinery shared by the GitLab and Zendesk sandboxes.

A sandbox is a `Service` (routes + in-memory state, no I/O) served by a `SandboxServer`
(a threaded HTTP/1.1 server on 127.0.0.1). The server owns everything that is not an API's
behaviour: the shared `Clock`, fault injection (latency, 5xx, dropped connections, timeouts,
429), the crash hook, rate limiting, and the `RequestLog`. Services declare routes with
`Router.route` and raise `HTTPError` for error answers in their API's own shape.

Latency is the answer time of a real service, whose own work is inside it: a request is handled
when it arrives (its request line read) and its answer, injected error or dropped connection is
held until `Faults.latency` has passed since then; the sandbox's Python HTTP handling is not added
on top of it.

The request log records method, path, status and whether the request mutated state; never a
body, a header value or a query-string value, because those can carry secrets.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- clock -----------------------------------------------------------------------------------


class Clock:
    """The sandboxes' notion of now, shared by every sandbox of a world and settable by tests.

    Unset, it follows real time; `set()` pins it; `advance()` moves it (pinned or not).
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._pinned = _utc(now) if now is not None else None
        self._offset = timedelta()

    def now(self) -> datetime:
        with self._lock:
            base = self._pinned if self._pinned is not None else datetime.now(UTC)
            return base + self._offset

    def today(self):
        return self.now().date()

    def set(self, now: datetime) -> None:
        with self._lock:
            self._pinned = _utc(now)
            self._offset = timedelta()

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


_RELATIVE_WHEN = re.compile(r"^now(?:\s*([+-])\s*(\d+)\s*([smhdw]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(value: str | datetime | date, clock: Clock) -> datetime:
    """A seed timestamp as an aware UTC datetime.

    Accepts a datetime, a date (midnight UTC), an ISO 8601 string (`2026-01-31`,
    `2026-01-31T10:00:00Z`), or a time relative to the sandbox clock at seeding time: `now`,
    `now-300d`, `now+10d`, `now-12h` (units s, m, h, d, w), so seeded worlds stay valid
    whatever the date. Raises ValueError naming the value otherwise.
    """
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    m = _RELATIVE_WHEN.match(text)
    if m:
        now = clock.now()
        if not m.group(1):
            return now
        delta = timedelta(seconds=int(m.group(2)) * _UNIT_SECONDS[m.group(3)])
        return now + delta if m.group(1) == "+" else now - delta
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"not a timestamp: {text!r} (ISO 8601, or now, now-300d, now+12h)") from None


# --- requests, responses, routing ------------------------------------------------------------


@dataclass
class Request:
    method: str
    raw_path: str  # as sent, percent-encoded, without the query string
    query: dict[str, list[str]]
    headers: Message  # case-insensitive
    body: bytes
    base_url: str  # http://127.0.0.1:PORT, for absolute links
    params: dict[str, str] = field(default_factory=dict)  # filled by the router

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def host(self) -> str:
        return (self.headers.get("Host") or "").split(":")[0].lower()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def arg(self, name: str) -> str | None:
        """First value of a query-string parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body as JSON; a form-encoded body as a dict of first values; {} when empty."""
        if not self.body:
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode()).items()}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, {"error": "Invalid JSON body"}) from exc

    def merged_params(self) -> dict[str, Any]:
        """Query string and body merged, body winning: how Grape (GitLab) reads parameters."""
        merged: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in self.query.items()}
        body = self.json()
        if isinstance(body, dict):
            merged.update(body)
        return merged


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str -> text/plain; bytes -> as is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body, separators=(",", ":")).encode(), "application/json"


class HTTPError(Exception):
    """An error answer in the service's own shape. Raised from handlers."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, self.body, dict(self.headers))


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    handler: Handler
    template: str


class Router:
    """Routes like `/api/v4/projects/{id}/variables/{key}`.

    Placeholders match one path segment as sent (so an id of `group%2Fproject` matches) and are
    handed to the handler percent-decoded. `{name:path}` matches the rest of the path. A
    template ending in `{.json}` also matches with a `.json` suffix (Zendesk).
    """

    _placeholder = re.compile(r"\{(\.json|[a-z_]+(?::path)?)\}")

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, template, handler)
            return handler

        return register

    def add(self, method: str, template: str, handler: Handler) -> None:
        names: list[str] = []
        regex = ""
        pos = 0
        for m in self._placeholder.finditer(template):
            regex += re.escape(template[pos : m.start()])
            token = m.group(1)
            if token == ".json":
                regex += r"(?:\.json)?"
            elif token.endswith(":path"):
                names.append(token[:-5])
                regex += r"(.+)"
            else:
                names.append(token)
                regex += r"([^/]+?)"
            pos = m.end()
        regex += re.escape(template[pos:])
        self.routes.append(Route(method.upper(), re.compile(f"^{regex}$"), tuple(names), handler, template))

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for this request; raises 405 when the path exists for other methods only."""
        path_matched = False
        for route in self.routes:
            m = route.pattern.match(raw_path)
            if not m:
                continue
            path_matched = True
            if route.method == method:
                return route, {n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)}
        if path_matched:
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        return None


_LIVE_SERVICES: weakref.WeakSet[Service] = weakref.WeakSet()


def known_secrets() -> set[str]:
    """Every credential value any sandbox in this process has seeded or minted.

    The test suite's leak guard scans everything a test produced for these.
    """
    values: set[str] = set()
    for service in list(_LIVE_SERVICES):
        values |= service.secrets()
    return values


class Service:
    """Base of a sandboxed API: a router, state, and the API's own shapes for generic answers."""

    name = "service"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.router = Router()
        self.lock = threading.RLock()  # one lock around all state: simple and race-free
        _LIVE_SERVICES.add(self)

    def secrets(self) -> set[str]:
        """Every credential value this service was seeded with or minted (for the leak guard)."""
        return set()

    # Hooks a service overrides ------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "Not Found"})

    def is_mutating(self, request: Request) -> bool:
        return request.method in MUTATING_METHODS

    def rate_limit_headers(self, limit: int, remaining: int, reset_at: int) -> dict[str, str]:
        return {}

    def rate_limited(self, retry_after: int) -> Response:
        return Response(429, "Retry later", {"Retry-After": str(retry_after)})

    def server_error(self, status: int) -> Response:
        return Response(status, {"message": f"{status} Server Error"})

    def identity(self, request: Request) -> str:
        """Who the request is from, for per-caller rate limits."""
        return "anonymous"

    def dump_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # Dispatch -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            found = self.router.match(request.method, request.raw_path)
            if found is None:
                return self.not_found(request)
            route, params = found
            request.params = params
            with self.lock:
                return route.handler(request)
        except HTTPError as err:
            return err.response()

    def save(self, path: str | Path) -> None:
        with self.lock:
            state = self.dump_state()
        Path(path).write_text(json.dumps(state, indent=1, sort_keys=True, default=str))

    def load(self, path: str | Path) -> None:
        state = json.loads(Path(path).read_text())
        with self.lock:
            self.load_state(state)


# --- faults ----------------------------------------------------------------------------------

FAULT_KINDS = ("500", "502", "503", "504", "drop", "timeout", "429")


@dataclass
class FaultRule:
    """Inject `kind` into matching requests.

    `rate`: probability per matching request (seeded). `nth`: the 1-based numbers, among
    matching requests, to hit. `after`: let the request change state first and lose the answer
    (an unclear outcome, as when a proxy times out after the backend committed).
    """

    kind: str
    rate: float = 0.0
    nth: tuple[int, ...] = ()
    method: str | None = None
    path: str | None = None  # regex searched in the decoded path
    after: bool = False
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")

    def matches(self, request: Request) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return not (self.path and not re.search(self.path, request.path))


class Faults:
    """Fault configuration of one server; changeable while it runs."""

    def __init__(
        self,
        latency: float = 0.0,
        rules: Iterable[FaultRule] = (),
        seed: int = 0,
        timeout_seconds: float = 5.0,
        retry_after: int = 1,
    ) -> None:
        self.lock = threading.Lock()
        # seconds from a request's arrival to its answer; the server's own handling is inside it
        self.latency = latency
        self.rules = list(rules)
        self.random = random.Random(seed)
        self.timeout_seconds = timeout_seconds  # how long a "timeout" fault holds the request past its latency
        self.retry_after = retry_after  # Retry-After of injected 429s
        self.crash_after_mutations: int | None = None
        self.mutations = 0
        self.crashed = False
        self.injected: dict[str, int] = {}

    def configure(self, *, latency: float | None = None, rules: Iterable[FaultRule] | None = None,
                  seed: int | None = None) -> None:
        with self.lock:
            if latency is not None:
                self.latency = latency
            if rules is not None:
                self.rules = list(rules)
            if seed is not None:
                self.random = random.Random(seed)

    def crash_after(self, n: int | None) -> None:
        """After the n-th mutating request (counted from now) is applied, drop its answer and
        every later connection, as if the process driving the API had died at that point."""
        with self.lock:
            self.crash_after_mutations = n
            self.mutations = 0
            self.crashed = False

    def recover(self) -> None:
        with self.lock:
            self.crash_after_mutations = None
            self.crashed = False

    def clear(self) -> None:
        with self.lock:
            self.rules = []
            self.latency = 0.0
            self.crash_after_mutations = None
            self.crashed = False

    def pick(self, request: Request) -> FaultRule | None:
        with self.lock:
            for rule in self.rules:
                if not rule.matches(request):
                    continue
                rule.seen += 1
                if rule.seen in rule.nth or (rule.rate and self.random.random() < rule.rate):
                    self.injected[rule.kind] = self.injected.get(rule.kind, 0) + 1
                    return rule
            return None

    def count_mutation(self) -> bool:
        """Count an applied mutation; True when this one triggers the crash."""
        with self.lock:
            self.mutations += 1
            if self.crash_after_mutations is not None and self.mutations >= self.crash_after_mutations:
                self.crashed = True
                return True
            return False


# --- rate limits -----------------------------------------------------------------------------


class RateLimiter:
    """A fixed-window budget per caller: `limit` requests per `window` seconds of real time."""

    def __init__(self, limit: int = 100000, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[float, int]] = {}

    def take(self, who: str) -> tuple[bool, int, int]:
        """(allowed, remaining, reset_epoch_seconds)."""
        now = time.monotonic()
        with self.lock:
            start, used = self.windows.get(who, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            self.windows[who] = (start, used)
            reset = math.ceil(time.time() + (start + self.window - now))  # never before the window ends
            return allowed, max(self.limit - used, 0), reset


# --- request log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    seq: int
    service: str
    host: str
    method: str
    path: str  # decoded, without the query string
    query_keys: tuple[str, ...]
    status: int  # 0 when the connection was dropped
    mutating: bool  # a write method
    applied: bool  # the service changed state (even if the answer was then lost)
    fault: str | None  # the injected fault, "crash", or None


class RequestLog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[LogEntry] = []

    def add(self, **fields: Any) -> None:
        with self.lock:
            self.entries.append(LogEntry(seq=len(self.entries) + 1, **fields))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def snapshot(self) -> list[LogEntry]:
        with self.lock:
            return list(self.entries)

    def mutations(self) -> list[LogEntry]:
        """Requests that changed state (answered 2xx, or applied before a lost answer)."""
        return [e for e in self.snapshot() if e.applied]

    def count(self) -> int:
        with self.lock:
            return len(self.entries)


# --- the server ------------------------------------------------------------------------------


def _sleep_until(deadline: float) -> None:
    """Wait until monotonic time `deadline` (at once when it has passed)."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


class _Dropped(Exception):
    """Close the connection without answering: when the request's latency has passed, `hold`
    seconds later (a timeout), or `at_once` (a crashed server: nothing is there to wait)."""

    def __init__(self, reason: str, applied: bool = False, *, hold: float = 0.0, at_once: bool = False) -> None:
        super().__init__(reason)
        self.applied = applied
        self.hold = hold
        self.at_once = at_once


class _Injected(Exception):
    """An injected error answer (after the request may have been applied)."""

    def __init__(self, error: HTTPError, applied: bool) -> None:
        super().__init__(error.status)
        self.error = error
        self.applied = applied


class SandboxServer:
    """Serves one `Service` on 127.0.0.1 (a free port unless one is given)."""

    def __init__(
        self,
        service: Service,
        *,
        faults: Faults | None = None,
        rate_limit: RateLimiter | None = None,
        log: RequestLog | None = None,
        port: int = 0,
    ) -> None:
        self.service = service
        self.faults = faults or Faults()
        self.rate_limit = rate_limit or RateLimiter()
        self.log = log or RequestLog()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"sandbox-{self.service.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------

    def _serve(self, request: Request) -> tuple[Response, bool]:
        """Faults, rate limit, dispatch, crash hook. Returns (response, applied); raises
        _Dropped to drop the connection and _Injected for an injected error answer. Takes no
        time of its own: the caller holds the answer until the request's latency has passed."""
        faults = self.faults
        if faults.crashed:
            raise _Dropped("crashed", at_once=True)
        rule = faults.pick(request)
        if rule and not rule.after:
            self._inject(rule, applied=False)
        allowed, remaining, reset = self.rate_limit.take(self.service.identity(request))
        limit_headers = self.service.rate_limit_headers(self.rate_limit.limit, remaining, reset)
        if not allowed:
            response = self.service.rate_limited(max(1, reset - int(time.time())))
            response.headers = {**limit_headers, **response.headers}
            return response, False
        response = self.service.handle(request)
        response.headers = {**limit_headers, **response.headers}
        applied = self.service.is_mutating(request) and 200 <= response.status < 300
        if applied and faults.count_mutation():
            raise _Dropped("crash", applied=True)
        if rule and rule.after:
            self._inject(rule, applied=applied)
        return response, applied

    def _inject(self, rule: FaultRule, applied: bool) -> None:
        if rule.kind == "drop":
            raise _Dropped("drop", applied)
        if rule.kind == "timeout":
            raise _Dropped("timeout", applied, hold=self.faults.timeout_seconds)
        if rule.kind == "429":
            retry = self.faults.retry_after
            error = HTTPError(429, self.service.rate_limited(retry).body, {"Retry-After": str(retry)})
        else:
            error = HTTPError(int(rule.kind), self.service.server_error(int(rule.kind)).body)
        raise _Injected(error, applied)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer goes out in one write (`_answer`); with Nagle on, a write that follows
            # another waits for the client's delayed ACK (~40 ms on Linux loopback).
            disable_nagle_algorithm = True
            deadline = 0.0  # monotonic time before which the request is not answered

            def log_message(self, *args: object) -> None:  # the RequestLog is the log
                pass

            def parse_request(self) -> bool:
                # The request has arrived: its request line is read. Its latency counts from
                # here, so reading its headers is inside it, as a real service's work is.
                self.deadline = time.monotonic() + server.faults.latency
                return super().parse_request()

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    raw_path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers=self.headers,
                    body=body,
                    base_url=server.url,
                )
                fault = None
                try:
                    response, applied = server._serve(request)
                except _Injected as injected:
                    response, applied = injected.error.response(), injected.applied
                    fault = str(injected.error.status)
                except _Dropped as dropped:
                    server._record(request, 0, dropped.applied, str(dropped))
                    if not dropped.at_once:
                        _sleep_until(self.deadline + dropped.hold)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                server._record(request, response.status, applied, fault)
                answer = self._answer(response)
                _sleep_until(self.deadline)
                self.wfile.write(answer)

            def _answer(self, response: Response) -> bytes:
                """Status line, headers and body as one write (what send_response, send_header
                and end_headers would send in several)."""
                payload, ctype = response.encode()
                headers = [(n, v) for n, v in response.headers.items() if n.lower() != "content-type"]
                if ctype or "Content-Type" in response.headers:
                    headers.append(("Content-Type", response.headers.get("Content-Type", ctype or "")))
                headers.append(("Content-Length", str(len(payload))))
                if any(n.lower() == "connection" and v.lower() == "close" for n, v in headers):
                    self.close_connection = True
                phrase = self.responses.get(response.status, ("",))[0]
                head = [f"{self.protocol_version} {response.status} {phrase}",
                        f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                        *(f"{name}: {value}" for name, value in headers)]
                text = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "strict")
                return text if self.command == "HEAD" else text + payload

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

            def handle_one_request(self) -> None:
                # Custom verbs (LOCK/UNLOCK of the Terraform-state endpoint) reach _dispatch too.
                try:
                    super().handle_one_request()
                except (ConnectionError, TimeoutError):
                    self.close_connection = True

            def __getattr__(self, name: str):
                if name.startswith("do_"):
                    return self._dispatch
                raise AttributeError(name)

        return _Handler

    def _record(self, request: Request, status: int, applied: bool, fault: str | None) -> None:
        self.log.add(
            service=self.service.name,
            host=request.host,
            method=request.method,
            path=request.path,
            query_keys=tuple(sorted(request.query)),
            status=status,
            mutating=self.service.is_mutating(request),
            applied=applied,
            fault=fault,
        )
