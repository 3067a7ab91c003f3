"""API clients per provider: python-gitlab and zenpy, with timeouts, retries, rate limits and
bounded concurrency. Nothing else in the tool opens a connection to GitLab or Zendesk.

- GitLab: `gitlab.Gitlab(url, private_token=..., timeout=..., retry_transient_errors=True)` for
  reads; python-gitlab waits out 429 (Retry-After / RateLimit-Reset) by itself. Writes that must
  never be repeated (rotate, create) pass `retry_transient_errors=False` per call (kinds/).
- Zendesk: `Zenpy(subdomain=..., oauth_token=... | email+token, session=...)`; zenpy waits out
  Retry-After. Endpoints zenpy does not cover (OAuth, API tokens, app installations) use that
  client's authenticated session through `ZendeskApi.get/get_all/put/post/patch/delete`, which wait out
  429 the same way and follow cursor pages.
- Every HTTP request of a provider passes its `Throttle` (mounted as the sessions' adapter): at
  most `concurrency` fetches at once, at most a configured `Rate`, never more than the server's
  `RateLimit-Remaining` / `X-Rate-Limit-Remaining` allows, and a pause for a 429's `Retry-After`
  that holds every request of that provider.
- One `Throttle` per provider for the whole process: `Clients` builds it once and every client of
  that provider passes it (observe, apply, discovery, the state backend; a client re-made with
  another credential keeps it).
- A credential goes only to its provider: every session sends requests only to the provider's own
  origin (scheme, host, port), so a page link (GitLab's `Link` header, Zendesk's `links.next` /
  `next_page`) elsewhere is an error, and follows no redirect: a 3xx answer is an error, never
  a resend of the credential (`ThrottledAdapter`, the transport of every session).
- In sandbox mode (`Endpoints`), GitLab URLs point at the sandbox; each Zendesk session sends what
  zenpy addresses to `https://{subdomain}.zendesk.com` to the sandbox instead, with
  `Host: {subdomain}.zendesk.com` (how the sandbox tells instances apart). The process environment
  is never changed.

Errors that stop a plan (missing credential, unreachable provider, refused credential) are a
`ProviderError` whose message is one line naming the provider and the environment variable.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import gitlab
import requests
from gitlab import exceptions as gl_errors
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth

from reconciler.errors import ReconcileError
from reconciler.inventory.model import GitLabProvider, Inventory, Provider, ZendeskProvider
from reconciler.kinds import FetchError, Identity
from reconciler.secret import Secret
from reconciler.trust import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, TRUST_ALL, Trust, endpoint_refusal

if TYPE_CHECKING:
    # requests' stubs name what merge_environment_settings and the pool key return (the classes
    # exist only there)
    from requests.adapters import _HostParams, _PoolKwargs
    from requests.sessions import _Settings as RequestSettings



@dataclass
class Environment:
    """What requests reads from the process environment for one provider's requests, worked out
    once per host instead of on every request (`_environment_once_per_host`)."""

    settings: dict[tuple[Any, ...], RequestSettings] = field(default_factory=dict)  # proxies, CA bundle
    logins: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # ~/.netrc's, by host

DEFAULT_TIMEOUT = 15.0
DEFAULT_CONCURRENCY = 4
MAX_PAUSE = 60.0  # longest single wait for budget (a longer Retry-After is waited in steps)
PROBE_POLL = 0.05  # budget exhausted, reset unknown: how often waiting requests look again
MAX_429_RETRIES = 5
MAX_GITLAB_RETRIES = 4  # 429 and transient errors (reads); backoff 0.1 s doubling, or Retry-After


class ProviderError(ReconcileError):
    """A provider cannot be used: one line naming it and its environment variable."""


class OffOrigin(ProviderError):
    """A request of a provider's session to another origin (a page link or an answer pointed
    there), or a redirect answer: refused, so the credential never leaves the provider."""


Origin = tuple[str, str, int | None]  # (scheme, host, port)


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of `url` as requests' adapter reads it to pick the connection
    (`urllib.parse`), the default port made explicit. An unreadable port gives port None, which
    matches no provider."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def shown(origin: Origin) -> str:
    """An origin as a person reads it (never a path or query: a link may carry a value)."""
    scheme, host, port = origin
    return f"{scheme}://{host}" + ("" if port == {"http": 80, "https": 443}.get(scheme) else f":{port}")


class CredentialsMissing(ProviderError):
    def __init__(self, missing: list[tuple[str, str]]) -> None:
        self.missing = missing
        names = ", ".join(f"{env} (provider {p})" for p, env in missing)
        super().__init__(f"missing credential environment variable(s): {names}")


@dataclass(frozen=True)
class Endpoints:
    """Where providers are reached instead of their inventory URLs (sandbox mode, or the
    environment's overrides)."""

    gitlab_url: str | None = None  # every GitLab provider -> this URL
    zendesk_netloc: str | None = None  # 127.0.0.1:PORT for every Zendesk instance
    zendesk_scheme: str = "http"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Endpoints | None:
        """The overrides RECONCILE_SANDBOX_GITLAB_URL and RECONCILE_SANDBOX_ZENDESK_NETLOC (what
        `reconcile sandbox` prints), or None. One that points neither at loopback nor at an origin
        the trusted provider set names is a ProviderError (reconciler.trust)."""
        gitlab_url = env.get(SANDBOX_ENV_GITLAB, "").strip() or None
        netloc = env.get(SANDBOX_ENV_ZENDESK, "").strip() or None
        if gitlab_url is None and netloc is None:
            return None
        for name, address in ((SANDBOX_ENV_GITLAB, gitlab_url), (SANDBOX_ENV_ZENDESK, netloc and f"http://{netloc}")):
            why = address and endpoint_refusal(name, address, env)
            if why:
                raise ProviderError(why)
        return cls(gitlab_url=gitlab_url, zendesk_netloc=netloc)

    def gitlab(self, url: str) -> str:
        """Where the GitLab at `url` is reached."""
        return self.gitlab_url or url


@dataclass(frozen=True)
class Rate:
    """A configured ceiling: at most `requests` per `per` seconds for one provider."""

    requests: int
    per: float = 1.0

    def throttle_args(self) -> dict[str, Any]:
        return {"max_requests": self.requests, "per": self.per}


class Throttle:
    """One provider's request budget; counts requests.

    - at most `concurrency` fetches at once (`with throttle:`, re-entrant per thread, so a fetch
      holding a slot may follow its pages);
    - at most `max_requests` requests sent in any `per` seconds, when configured (a sliding window
      of send times: the rate never exceeds it, whatever the server says);
    - the server's budget: `RateLimit-Remaining` (GitLab, with `RateLimit-Reset`) or
      `X-Rate-Limit-Remaining` (Zendesk, no reset time), counted down locally for each request sent
      so that requests in flight cannot overdraw it; at zero, wait for the reset (GitLab) or, once
      no request is in flight, let one probe through at a time (Zendesk) until the window has
      rolled;
    - a 429's `Retry-After` pauses every request of the provider, not only the one refused.

    `gate()` runs before each HTTP request and `done()` after it (`ThrottledAdapter`).
    """

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, *, max_requests: int | None = None,
                 per: float = 1.0) -> None:
        self.concurrency = max(1, concurrency)
        self.slots = threading.BoundedSemaphore(self.concurrency)
        self.lock = threading.Lock()
        self.local = threading.local()
        self.max_requests = max_requests
        self.per = per
        self.sent: deque[float] = deque()  # monotonic send times within the last `per` seconds
        self.remaining: int | None = None  # the server's budget left, minus requests sent since
        self.reset_at: float | None = None  # epoch seconds (RateLimit-Reset)
        self.cooldown_until = 0.0  # epoch seconds: a 429's Retry-After
        self.probe_until = 0.0  # a probe is in flight (budget exhausted, reset unknown) until then
        self.inflight = 0
        self.requests = 0
        self.throttled = 0  # 429 answers seen
        self.waited = 0.0  # seconds spent waiting for budget

    def __enter__(self) -> Throttle:
        depth = getattr(self.local, "depth", 0)
        if depth == 0:
            self.slots.acquire()
        self.local.depth = depth + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.local.depth -= 1
        if self.local.depth == 0:
            self.slots.release()

    def _wait(self, now: float, mono: float) -> float:
        """Seconds to wait before the next request may go (0: go). Called under the lock."""
        if self.cooldown_until > now:
            return self.cooldown_until - now
        if self.remaining is not None and self.remaining <= 0:
            if self.reset_at is not None:
                if self.reset_at > now:
                    return self.reset_at - now
                self.remaining, self.reset_at = None, None  # the window has rolled
            elif self.probe_until > now:
                return min(PROBE_POLL, self.probe_until - now)
            elif self.inflight > 0:
                return PROBE_POLL  # their answers may show budget left; probe only when none is out
            else:
                self.probe_until = now + DEFAULT_TIMEOUT
                self.local.probing = True  # done() in this thread ends the probe
        if self.max_requests is not None:
            while self.sent and mono - self.sent[0] >= self.per:
                self.sent.popleft()
            if len(self.sent) >= self.max_requests:
                return self.sent[0] + self.per - mono
        return 0.0

    def gate(self) -> None:
        """Block until a request may be sent within every budget, and reserve it."""
        while True:
            with self.lock:
                now, mono = time.time(), time.monotonic()
                wait = self._wait(now, mono)
                if wait <= 0:
                    if self.max_requests is not None:
                        self.sent.append(mono)
                    if self.remaining is not None:
                        self.remaining -= 1
                    self.inflight += 1
                    return
                self.waited += min(wait, MAX_PAUSE)
            time.sleep(min(wait, MAX_PAUSE))

    def done(self, response: requests.Response | None) -> None:
        """After a request: count it and learn the server's budget from its headers."""
        with self.lock:
            self.inflight -= 1
            probe = getattr(self.local, "probing", False)
            if probe:
                self.local.probing = False
                self.probe_until = 0.0
            if response is None:
                return
            self.requests += 1
            headers = response.headers
            remaining = headers.get("RateLimit-Remaining") or headers.get("X-Rate-Limit-Remaining")
            reset = headers.get("RateLimit-Reset")
            if remaining is not None and remaining.strip().isdigit():
                left = int(remaining) - self.inflight
                if reset and reset.strip().isdigit():
                    new_window = self.reset_at is None or float(reset) > self.reset_at
                    self.reset_at = float(reset)
                    self.remaining = left if new_window or self.remaining is None else min(self.remaining, left)
                elif self.remaining is None or probe:
                    self.remaining = left  # without a reset time, only a probe shows a new window
                else:
                    self.remaining = min(self.remaining, left)  # answers may arrive out of order
            if response.status_code == 429:
                self.throttled += 1
                self.cooldown_until = max(self.cooldown_until, time.time() + retry_after(headers))


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds a 429 asks to wait: `Retry-After` in seconds or as an HTTP date; 1 when absent."""
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return 1.0


class ThrottledAdapter(HTTPAdapter):
    """Every request of a session passes its provider's Throttle (pages, retries and all), goes
    only to one of the provider's `origins` (OffOrigin before anything is sent otherwise), and
    no redirect is followed (OffOrigin on a 3xx answer: requests and python-gitlab would resend
    the credential headers, PRIVATE-TOKEN included, to wherever it points). `label` names the
    provider in those errors. `redirect` (sandbox mode): (prefix, replacement) of the URLs sent
    elsewhere."""

    def __init__(self, throttle: Throttle, redirect: tuple[str, str] | None = None, *,
                 origins: Iterable[str] = (), label: str = "the provider") -> None:
        super().__init__(pool_maxsize=max(10, throttle.concurrency))
        self.throttle = throttle
        self.redirect = redirect
        self.origins = frozenset(origin_of(url) for url in origins)
        self.label = label
        self.pool_keys: dict[tuple[Any, ...], tuple[_HostParams, _PoolKwargs]] = {}

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[_HostParams, _PoolKwargs]:
        """requests' pool key of a request, worked out once per origin and TLS settings: requests
        asks the file system whether a CA bundle path (REQUESTS_CA_BUNDLE) is a directory on
        every request."""
        parts = urlsplit(request.url or "")
        key = (parts.scheme, parts.netloc, verify, tuple(cert) if isinstance(cert, list) else cert)
        found = self.pool_keys.get(key)
        if found is None:
            found = self.pool_keys[key] = super().build_connection_pool_key_attributes(request, verify, cert)
        return found[0].copy(), found[1].copy()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if self.origins and origin_of(url) not in self.origins:
            raise OffOrigin(f"{self.label}: refused to send a request to {shown(origin_of(url))}, which is not the "
                            "provider's own origin (a page link or an answer pointed there); its credential goes "
                            "nowhere else")
        if self.redirect and url.startswith(self.redirect[0]):
            request.url = self.redirect[1] + url[len(self.redirect[0]):]
        with self.throttle:  # a slot (free when this thread's fetch holds one): apply's threads stay within it
            self.throttle.gate()
            try:
                response = super().send(request, *args, **kwargs)
            except BaseException:
                self.throttle.done(None)
                raise
            self.throttle.done(response)
        if response.is_redirect:
            target = origin_of(urljoin(url, response.headers.get("location", "")))
            response.close()
            raise OffOrigin(f"{self.label} answered {response.status_code}, a redirect to {shown(target)}: not "
                            "followed (the credential is never sent again elsewhere); set the provider's URL to "
                            "where it serves the API")
        return response


def _hook(session: requests.Session, throttle: Throttle, known: Environment,
          redirect: tuple[str, str] | None = None, *, origins: Iterable[str] = (),
          label: str = "the provider") -> None:
    adapter = ThrottledAdapter(throttle, redirect, origins=origins, label=label)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    _environment_once_per_host(session, known)


def _no_login(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The auth of a request to a host ~/.netrc has no login for: nothing (requests looks in
    ~/.netrc again for a request without auth)."""
    return request


def _environment_once_per_host(session: requests.Session, known: Environment) -> None:
    """requests reads the proxy settings from the environment on every request (all of
    os.environ, twice: proxies, then no_proxy): about 3 ms of CPU per request with a few hundred
    variables, under the GIL, more than the rest of a list call's client work; and it looks for
    ~/.netrc on every request without auth. The answers are the same for every request to one
    host, so they are worked out once per (host, arguments) and provider (`known`: shared by the
    provider's sessions, those that authenticate with a value included); same settings as
    requests' own (proxies, NO_PROXY, REQUESTS_CA_BUNDLE, a ~/.netrc or $NETRC login)."""
    merge, prepare = session.merge_environment_settings, session.prepare_request

    def prepare_once(request: requests.Request) -> requests.PreparedRequest:
        parts = urlsplit(str(request.url or ""))
        if session.trust_env and not request.auth and not session.auth and not parts.username:
            host = (parts.hostname or "").lower()
            if host not in known.logins:
                known.logins[host] = get_netrc_auth(request.url)
            request.auth = known.logins[host] or _no_login
        return prepare(request)

    def merge_once(url: str | bytes | None, proxies: MutableMapping[str, str] | None, stream: bool | None,
                   verify: bool | str | None, cert: str | tuple[str, str] | None) -> RequestSettings:
        parts = urlsplit(url or "")  # requests passes the prepared URL: a str
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify,
               cert if not isinstance(cert, list) else tuple(cert))
        settings = known.settings.get(key)
        if settings is None:
            settings = known.settings[key] = merge(url, proxies, stream, verify, cert)
        return {**settings, "proxies": dict(settings["proxies"])}

    session.merge_environment_settings = merge_once  # type: ignore[method-assign]
    session.prepare_request = prepare_once  # type: ignore[method-assign]




def gitlab_client(url: str, throttle: Throttle, *, environment: Environment | None = None,
                  timeout: float = DEFAULT_TIMEOUT, retry: bool = True, max_retries: int | None = None,
                  **auth: Any) -> gitlab.Gitlab:
    """python-gitlab for `url` whose every request passes `throttle`. `auth`: python-gitlab's
    private_token, job_token or http_username + http_password. `max_retries`: the retries of a
    call that does not say (python-gitlab's own default is 10)."""
    gl = gitlab.Gitlab(url, timeout=timeout, retry_transient_errors=retry, keep_base_url=True, **auth)
    _hook(gl.session, throttle, Environment() if environment is None else environment, origins=[url],
          label=f"GitLab {url}")
    if max_retries is not None:
        request = gl.http_request

        def http_request(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("max_retries", max_retries)
            return request(*args, **kwargs)

        gl.http_request = http_request  # type: ignore[method-assign]
    return gl


def reauthenticated(gl: gitlab.Gitlab, **auth: Any) -> gitlab.Gitlab:
    """A client like `gl` (URL, timeout, retries, and the throttle its requests pass) that
    authenticates with `auth` instead."""
    adapter = gl.session.get_adapter(gl.url)
    if isinstance(adapter, ThrottledAdapter):
        return gitlab_client(gl.url, adapter.throttle, timeout=gl.timeout or DEFAULT_TIMEOUT,
                             retry=gl.retry_transient_errors, **auth)
    new = gitlab.Gitlab(gl.url, timeout=gl.timeout, ssl_verify=gl.ssl_verify, api_version=gl.api_version,
                        retry_transient_errors=gl.retry_transient_errors,
                        user_agent=gl.headers.get("User-Agent", gitlab.const.USER_AGENT), **auth)
    # not one of ours: still its credential goes nowhere but its own origin
    _hook(new.session, make_throttle(DEFAULT_CONCURRENCY, None), Environment(), origins=[gl.url],
          label=f"GitLab {gl.url}")
    return new


def token_self(gl: gitlab.Gitlab) -> dict[str, Any]:
    """The live token `gl` authenticates with: `GET /personal_access_tokens/self` (python-gitlab's
    errors as they come: a refused credential is a GitlabAuthenticationError)."""
    row = gl.http_get("/personal_access_tokens/self")
    if not isinstance(row, dict) or "id" not in row:
        raise gl_errors.GitlabParsingError(error_message="/personal_access_tokens/self: no token id in the answer")
    return row


class GitLabApi:
    """python-gitlab for one GitLab provider."""

    def __init__(self, provider: GitLabProvider, token: Secret, *, url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
                 rate: Rate | None = None, throttle: Throttle | None = None,
                 environment: Environment | None = None) -> None:
        self.provider = provider
        self.env = provider.token_env
        self.url = url or provider.url
        self.timeout = timeout
        self.throttle = throttle or make_throttle(concurrency, rate)
        self.environment = Environment() if environment is None else environment
        self.gl = self._client(token, retry=True)
        self._users: dict[str | None, str] = {}
        self.credential = f"the credential in ${self.env}"  # what it authenticates with, for messages
        self.known_credential_id: str | None = None  # what credential_id() answered last

    def _client(self, token: Secret, *, retry: bool) -> gitlab.Gitlab:
        # python-gitlab's default of 10 retries with doubling backoff makes an unreachable
        # provider take minutes to report; a per-call max_retries still wins
        return gitlab_client(self.url, self.throttle, environment=self.environment, timeout=self.timeout,
                             retry=retry, max_retries=MAX_GITLAB_RETRIES, private_token=token.reveal())

    def credential_id(self) -> str:
        """The live id of the provider's own credential (`GET /personal_access_tokens/self`)."""
        with self.throttle:
            self.known_credential_id = str(token_self(self.gl)["id"])
        return self.known_credential_id

    def credential_before_rotate(self) -> str | None:
        """Prove the provider's credential valid before a rotate (a rotate is never sent with a
        revoked token) and return its live id (so a rotate of the credential itself is seen);
        None when it is no token that can read itself (a job token). CredentialRefused when
        GitLab refuses it."""
        try:
            return self.credential_id()
        except gl_errors.GitlabAuthenticationError:
            raise CredentialRefused(self.env, self.credential) from None
        except gl_errors.GitlabParsingError:
            return None

    def authenticated_as(self, value: Secret, token: str) -> GitLabApi:
        """A handle of this provider (its URL, so the value goes nowhere else, and its throttle)
        that authenticates with `value`, the current value of the inventory token `token` (a
        source's `created_with`)."""
        handle = GitLabApi(self.provider, value, url=self.url, timeout=self.timeout, throttle=self.throttle,
                           environment=self.environment)
        handle.credential = f"the current value of token {token}"
        return handle

    def continue_with(self, value: Secret) -> str | None:
        """After the provider's own credential was rotated in place: authenticate with its new
        `value` from here on. The old token, now revoked (a state store that sent it follows)."""
        old = self.gl.private_token
        self.gl = self._client(value, retry=True)
        return old

    def identify_token(self, value: Secret) -> Identity:
        """Which live token `value` is: `GET /personal_access_tokens/self` authenticated with it."""
        with self.throttle:
            try:
                row = token_self(self._client(value, retry=True))
            except gl_errors.GitlabAuthenticationError:
                return Identity(None, invalid=True)
            except gl_errors.GitlabHttpError as err:
                if err.response_code in (400, 403, 404):
                    return Identity(None, invalid=True)
                raise
        return Identity(str(row["id"]))

    def user_id(self, username: str | None) -> str:
        if username not in self._users:
            if username is None:
                self._users[None] = str(self.gl.http_get("/user")["id"])  # type: ignore[index]
            else:
                rows = self.gl.http_get("/users", query_data={"username": username})
                self._users[username] = str(rows[0]["id"])  # type: ignore[index]
        return self._users[username]

    def classify(self, exc: BaseException) -> FetchError:
        """A scope-level failure as a FetchError; a provider-level one raises ProviderError."""
        where = f"GitLab provider {self.provider.name} ({self.url})"
        if isinstance(exc, gl_errors.GitlabAuthenticationError):
            raise ProviderError(f"{where} refused {self.credential} (401 Unauthorized)") from None
        if isinstance(exc, requests.RequestException | gl_errors.GitlabConnectionError):
            raise ProviderError(f"{where} cannot be reached ({type(exc).__name__}); "
                                f"check its url, and {self.credential}") from None
        if isinstance(exc, gl_errors.GitlabError):
            code = getattr(exc, "response_code", None) or 0
            if code >= 500 or code == 429:
                raise ProviderError(f"{where} answered {code}: {exc.error_message}") from None
            return FetchError(code, f"{code} {exc.error_message}")
        raise exc


class ZendeskApi:
    """zenpy (and its authenticated session) for one Zendesk instance."""

    def __init__(self, provider: ZendeskProvider, credential: Secret, *, email: str | None = None,
                 endpoints: Endpoints | None = None, timeout: float = DEFAULT_TIMEOUT,
                 concurrency: int = DEFAULT_CONCURRENCY, rate: Rate | None = None,
                 throttle: Throttle | None = None, environment: Environment | None = None) -> None:
        from zenpy import Zenpy

        self.provider = provider
        self.oauth = provider.oauth_token_env is not None
        self.env = provider.oauth_token_env or provider.api_token_env or ""
        self.timeout = timeout
        self.throttle = throttle or make_throttle(concurrency, rate)
        self.environment = Environment() if environment is None else environment
        self.host = f"{provider.subdomain}.{provider.domain}"
        self.endpoints = endpoints
        self.redirect: tuple[str, str] | None = None
        if endpoints and endpoints.zendesk_netloc:
            self.base_url = f"{endpoints.zendesk_scheme}://{endpoints.zendesk_netloc}"
            self.redirect = (f"https://{self.host}/", self.base_url + "/")  # where zenpy addresses the instance
        else:
            self.base_url = f"https://{self.host}"
        self.origins = (f"https://{self.host}", self.base_url)  # where zenpy addresses it, where it is reached
        self.session = self._session()
        self.oauth_client_ids: dict[str, str] = {}  # OAuth client identifier -> id, as listed this run
        self.known_credential_id: str | None = None  # what credential_id() answered last
        creds: dict[str, Any] = ({"oauth_token": credential.reveal()} if self.oauth
                                 else {"email": email or provider.email, "token": credential.reveal()})
        self.zenpy = Zenpy(subdomain=provider.subdomain, domain=provider.domain, session=self.session,
                           timeout=timeout, disable_cache=True, **creds)

    def _session(self, bearer: Secret | None = None) -> requests.Session:
        session = requests.Session()
        if self.endpoints and self.endpoints.zendesk_netloc:
            session.headers["Host"] = self.host
        if bearer is not None:
            session.headers["Authorization"] = f"Bearer {bearer.reveal()}"
        _hook(session, self.throttle, self.environment, self.redirect, origins=self.origins,
              label=f"Zendesk provider {self.provider.name} ({self.host})")
        return session

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              session: requests.Session | None = None, url: str | None = None) -> requests.Response:
        session = session or self.session
        for _ in range(MAX_429_RETRIES + 1):
            response = session.request(method, url or self.base_url + path, params=params, json=json,
                                        timeout=self.timeout)
            if response.status_code != 429:
                return response
            time.sleep(min(MAX_PAUSE, float(response.headers.get("Retry-After") or 1)))
        return response

    def _check(self, response: requests.Response) -> Any:
        if response.status_code == 401:
            raise _Refused(response.status_code)
        if response.status_code >= 400:
            raise _Failed(response.status_code, _zendesk_message(response))
        return response.json() if response.content else None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.throttle:
            return self._check(self._call("GET", path, params=params))

    def get_all(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list, following cursor (`links.next` with `meta.has_more`) or offset
        (`next_page`) pages."""
        found: list[dict[str, Any]] = []
        url: str | None = None
        query: Mapping[str, Any] | None = params
        while True:
            with self.throttle:
                body = self._check(self._call("GET", path, params=query, url=url))
            found.extend(dict(row) for row in body.get(key) or ())
            links, meta = body.get("links") or {}, body.get("meta") or {}
            nxt = links.get("next") if meta.get("has_more") else body.get("next_page")
            if not nxt:
                return found
            url, query = self._local(nxt), None

    def _local(self, url: str) -> str:
        """A page link as this client reaches it (the sandbox answers absolute links to itself)."""
        if self.endpoints and self.endpoints.zendesk_netloc and url.startswith("https://" + self.host):
            return self.base_url + url[len("https://" + self.host):]
        return url

    def put(self, path: str, body: Any) -> Any:
        with self.throttle:
            return self._check(self._call("PUT", path, json=body))

    def post(self, path: str, body: Any) -> Any:
        with self.throttle:
            return self._check(self._call("POST", path, json=body))

    def delete(self, path: str) -> None:
        with self.throttle:
            self._check(self._call("DELETE", path))

    def oauth_client_id(self, identifier: str) -> str:
        """The numeric id of the OAuth client `identifier`: from the clients list observe already
        fetched (an id never changes; a client deleted since makes the mint fail, nothing else),
        else listed now."""
        known = self.oauth_client_ids.get(identifier)
        if known is not None:
            return known
        self.remember_oauth_clients(self.get_all("/api/v2/oauth/clients.json", "clients"))
        if identifier in self.oauth_client_ids:
            return self.oauth_client_ids[identifier]
        raise ProviderError(f"Zendesk {self.provider.name}: no OAuth client {identifier!r}")

    def remember_oauth_clients(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Keep identifier -> id of listed OAuth clients for this run (one list per instance
        instead of one per mint)."""
        self.oauth_client_ids.update({str(r["identifier"]): str(r["id"]) for r in rows
                                      if r.get("identifier") is not None and r.get("id") is not None})

    def credential_id(self) -> str | None:
        """The live id of the provider's own credential when it is an OAuth token (`GET
        /api/v2/oauth/tokens/current`); None for an API token, which cannot read itself."""
        if not self.oauth:
            return None
        self.known_credential_id = str(self.get("/api/v2/oauth/tokens/current.json")["token"]["id"])
        return self.known_credential_id

    def credential_before_rotate(self) -> None:
        """No check before a rotate: what Zendesk rotates (an OAuth client's secret) is never the
        instance's own credential, and a refused credential fails the rotate call itself."""
        return None

    def patch(self, path: str, body: Any) -> Any:
        with self.throttle:
            return self._check(self._call("PATCH", path, json=body))

    def oauth_grant(self, params: Mapping[str, Any]) -> requests.Response:
        """`POST /oauth/tokens` (no /api/v2): the client authenticates in the body, so the request
        carries no API credential (a bare session)
        (developer.zendesk.com/api-reference/ticketing/oauth/grant_type_tokens/). The answer as it
        came: the caller reads the OAuth error of a refusal."""
        with self.throttle:
            return self._call("POST", "/oauth/tokens", json=dict(params), session=self._session())

    def oauth_token_of(self, value: Secret) -> dict[str, Any]:
        """The token object of OAuth access token `value` (`GET /api/v2/oauth/tokens/current`
        authenticated with it)."""
        with self.throttle:
            body = self._check(self._call("GET", "/api/v2/oauth/tokens/current.json",
                                          session=self._session(bearer=value)))
        return dict(body["token"])

    def revoke_bearer(self, bearer: Secret) -> int:
        """`DELETE /api/v2/oauth/tokens/current` authenticated with `bearer`: the status."""
        with self.throttle:
            return self._call("DELETE", "/api/v2/oauth/tokens/current.json",
                              session=self._session(bearer=bearer)).status_code

    def identify_oauth_token(self, value: Secret) -> Identity | None:
        """Which OAuth token `value` is: `GET /api/v2/oauth/tokens/current` authenticated with it.
        401/404: not a live token. 403: a live token whose scopes (e.g. `tickets:read` only) do not
        let it read itself, so which one it is cannot be told: None, never "invalid"."""
        with self.throttle:
            response = self._call("GET", "/api/v2/oauth/tokens/current.json", session=self._session(bearer=value))
        if response.status_code == 403:
            return None
        if response.status_code in (401, 404):
            return Identity(None, invalid=True)
        body = self._check(response)
        return Identity(str(body["token"]["id"]))

    def classify(self, exc: BaseException) -> FetchError:
        where = f"Zendesk provider {self.provider.name} ({self.host})"
        if isinstance(exc, _Refused):
            raise ProviderError(f"{where} refused the credential in ${self.env} (401 Unauthorized)") from None
        if isinstance(exc, requests.RequestException):
            raise ProviderError(f"{where} cannot be reached ({type(exc).__name__}); "
                                f"check the credential in ${self.env}") from None
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, _Failed):
            status = exc.status
        if status == 401:
            raise ProviderError(f"{where} refused the credential in ${self.env} (401 Unauthorized)") from None
        if status is not None and (status >= 500 or status == 429):
            raise ProviderError(f"{where} answered {status}") from None
        if status is not None:
            return FetchError(int(status), f"{status} {getattr(exc, 'message', '') or exc}")
        raise exc


class CredentialRefused(Exception):
    """The provider refused its own credential (revoked or expired); `env` holds it. `what` names
    it for people: "the credential in $ENV", or another token's value it was made with."""

    def __init__(self, env: str, what: str | None = None) -> None:
        super().__init__(env)
        self.env = env
        self.what = what or f"the credential in ${env}"


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _zendesk_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("description") or body.get("error") or body)[:200]
    return str(body)[:200]


Api = GitLabApi | ZendeskApi


@dataclass
class Clients:
    """The handle of every provider, by name, for the whole process: built here from the
    inventory's providers and the environment (`Clients.from_env`), one `Throttle` per provider
    shared by every client of it (observe, apply, discovery, the state backend). Handles are
    made on first use."""

    providers: Mapping[str, Provider]
    env: Mapping[str, str] = field(repr=False)  # credentials: never in a repr
    endpoints: Endpoints | None = None
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    rate: Rate | None = None
    apis: dict[str, Api] = field(default_factory=dict)
    throttles: dict[str, Throttle] = field(default_factory=dict)
    environments: dict[str, Environment] = field(default_factory=dict, repr=False)
    trust: Trust = TRUST_ALL  # which providers may be contacted (reconciler.trust)

    @classmethod
    def from_env(cls, providers: Mapping[str, Provider], env: Mapping[str, str] | None = None,
                 endpoints: Endpoints | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 concurrency: int | None = None, rate: Rate | None = None, trust: Trust = TRUST_ALL) -> Clients:
        """`concurrency` and `rate`, when not given, from RECONCILE_CONCURRENCY and
        RECONCILE_MAX_RATE in `env`, and `endpoints` from its overrides (`Endpoints.from_env`; a
        bad value: ProviderError)."""
        env = os.environ if env is None else env
        env_concurrency, env_rate = limits_from_env(env)
        endpoints = Endpoints.from_env(env) if endpoints is None else endpoints
        return cls(providers, env, endpoints, timeout, env_concurrency if concurrency is None else concurrency,
                   env_rate if rate is None else rate, trust=trust)

    def __getitem__(self, provider: str) -> Api:
        if provider not in self.apis:
            self._refuse(provider)
        return self.apis[provider]

    def refusal(self, provider: str) -> str | None:
        """Why `provider` must not be contacted in this run (not in the trusted set), or None."""
        found = self.providers.get(provider)
        return None if found is None else self.trust.refusal(provider, found)

    def _refuse(self, provider: str) -> None:
        why = self.refusal(provider)
        if why is not None:
            raise ProviderError(why)

    def throttle(self, provider: str) -> Throttle:
        """The request budget of `provider` (RECONCILE_CONCURRENCY, RECONCILE_MAX_RATE)."""
        if provider not in self.throttles:
            self.throttles[provider] = make_throttle(self.concurrency, self.rate)
            self.environments[provider] = Environment()
        return self.throttles[provider]

    def connect(self, names: Iterable[str]) -> None:
        """Handles for `names` that have none yet, with their credentials (every missing one
        reported at once). Makes no request. A provider outside the trusted set gets none: its
        credential is never read and nothing is sent to it."""
        todo = sorted(n for n in set(names) - set(self.apis) if self.refusal(n) is None)
        creds = credentials(self.providers, self.env, todo)
        for name in todo:
            provider, throttle = self.providers[name], self.throttle(name)
            if isinstance(provider, GitLabProvider):
                self.apis[name] = GitLabApi(provider, creds[name], url=self.gitlab_url(provider),
                                            timeout=self.timeout, throttle=throttle,
                                            environment=self.environments[name])
            else:
                self.apis[name] = ZendeskApi(provider, creds[name], endpoints=self.endpoints, timeout=self.timeout,
                                             throttle=throttle, environment=self.environments[name])

    def apis_of(self, names: Iterable[str]) -> dict[str, Api]:
        """The handles of `names`, connected when not yet."""
        wanted = sorted(set(names))
        for name in wanted:
            self._refuse(name)
        self.connect(wanted)
        return {name: self.apis[name] for name in wanted}

    def gitlab_url(self, provider: GitLabProvider) -> str:
        return self.endpoints.gitlab_url if self.endpoints and self.endpoints.gitlab_url else provider.url

    def gitlab(self, provider: str, *, timeout: float | None = None, **auth: Any) -> gitlab.Gitlab:
        """python-gitlab for GitLab provider `provider`, authenticated with `auth` (not
        necessarily the provider's credential: the state backend may use a CI job token), through
        the provider's throttle."""
        found = self.providers.get(provider)
        if not isinstance(found, GitLabProvider):
            raise ProviderError(f"provider {provider} is not a GitLab provider")
        self._refuse(provider)
        throttle = self.throttle(provider)
        return gitlab_client(self.gitlab_url(found), throttle, environment=self.environments[provider],
                             timeout=self.timeout if timeout is None else timeout, **auth)

    def requests(self) -> int:
        """HTTP requests sent so far, every client of every provider (the state backend's too)."""
        return sum(throttle.requests for throttle in self.throttles.values())


def used_providers(inventory: Inventory, targets: Iterable[str] | None = None) -> list[str]:
    names: set[str] = set()
    for name, token in inventory.tokens.items():
        if targets and name not in targets:
            continue
        if token.source.provider:
            names.add(token.source.provider)
        names.update(c.provider for c in token.consumers)
    return sorted(names)


def credentials(providers: Mapping[str, Provider], env: Mapping[str, str], names: Iterable[str]) -> dict[str, Secret]:
    """The credential of each provider from the environment; every missing one at once."""
    found: dict[str, Secret] = {}
    missing: list[tuple[str, str]] = []
    for name in names:
        provider: Provider = providers[name]
        envs = provider.credential_envs
        if not envs:
            missing.append((name, "(no credential configured)"))
            continue
        env_name = envs[0]
        value = env.get(env_name)
        if not value:
            missing.append((name, env_name))
        else:
            found[name] = Secret(value)
    if missing:
        raise CredentialsMissing(missing)
    return found


CONCURRENCY_ENV = "RECONCILE_CONCURRENCY"  # requests at once per provider (default 4)
RATE_ENV = "RECONCILE_MAX_RATE"  # at most N requests per S seconds per provider: "N/S" or "N" (per second)


def limits_from_env(env: Mapping[str, str]) -> tuple[int, Rate | None]:
    """(concurrency, rate) from RECONCILE_CONCURRENCY and RECONCILE_MAX_RATE; a bad value is a
    one-line ProviderError naming the variable."""
    concurrency, rate = DEFAULT_CONCURRENCY, None
    text = (env.get(CONCURRENCY_ENV) or "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ProviderError(f"${CONCURRENCY_ENV}: {text!r} is not a whole number of at least 1")
        concurrency = int(text)
    text = (env.get(RATE_ENV) or "").strip()
    if text:
        count, _, per = text.partition("/")
        try:
            rate = Rate(int(count), float(per) if per else 1.0)
        except ValueError:
            rate = None
        if rate is None or rate.requests < 1 or rate.per <= 0:
            raise ProviderError(f"${RATE_ENV}: {text!r} is not REQUESTS/SECONDS (e.g. 600/60) or REQUESTS per second")
    return concurrency, rate


def make_throttle(concurrency: int, rate: Rate | None) -> Throttle:
    return Throttle(concurrency, **(rate.throttle_args() if rate else {}))


def throttle_from_env(env: Mapping[str, str]) -> Throttle:
    """A budget as RECONCILE_CONCURRENCY and RECONCILE_MAX_RATE set it, for a GitLab reached
    outside an inventory's providers (the CI notes on the pipeline's own GitLab)."""
    return make_throttle(*limits_from_env(env))


def connect(inventory: Inventory, *, env: Mapping[str, str] | None = None, endpoints: Endpoints | None = None,
            targets: Iterable[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
            concurrency: int | None = None, rate: Rate | None = None, trust: Trust = TRUST_ALL) -> Clients:
    """Clients with a handle for every trusted provider the (targeted) inventory uses. Makes no request.
    `concurrency` and `rate` bound each provider separately; when not given, they come from
    RECONCILE_CONCURRENCY and RECONCILE_MAX_RATE in `env` (default: 4 at once, no ceiling of our
    own beyond the servers' budgets)."""
    clients = Clients.from_env(inventory.providers, env, endpoints, timeout=timeout, concurrency=concurrency,
                               rate=rate, trust=trust)
    clients.connect(used_providers(inventory, targets))
    return clients
