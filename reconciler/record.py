"""`--record DIR`: capture every HTTP request the tool makes and every answer, with every secret
scrubbed, as a cassette in vcrpy's layout (YAML, `interactions` of `request`/`response`) that a user
can attach to a bug report, and that `vcr` can load.

Capture is a hook on `requests.adapters.HTTPAdapter.send` (python-gitlab and zenpy both send
through requests), thread-safe, so the concurrent observe is captured whole. Nothing reaches the
disk until the block ends; then `Scrubber` scrubs the whole transcript in two passes:

1. by position: credential headers (PRIVATE-TOKEN, JOB-TOKEN, Authorization, cookies), query and
   form parameters named like a credential (token, private_token, client_secret...), JSON fields
   named like one at any depth (token, secret, password, full_token...), the `value` of CI/CD
   variables, URL variables and custom headers (and any top-level `value` of a request body), every setting of a Zendesk app installation,
   `authentication.data` of Zendesk webhooks (but its username), every query value of a webhook
   `endpoint` (it may carry `?token=`), URL passwords, and the `${token}` position of every
   consumer template of the inventory (a webhook endpoint with the value in its path, `Bearer
   ${token}`) in any string that has the template's shape. Every value removed is *learned*.
2. by value: every learned value (and every `known` value given by the caller), wherever it still
   appears (a header, a URL path, a body of another interaction, percent-encoded or not), is
   replaced.

So a value minted in one answer and written to a consumer in a later request is gone from both.
A request that got no answer (refused, reset, timed out) is kept with status 0 and the error's type.
The cassette is written 0600 (its directory 0700 when created): it is a transcript of privileged
calls even without their secrets.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from reconciler.secret import REDACTED, Secret

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

MIN_LEARNED = 8  # shorter strings are replaced by position only: by value they would match by chance

SECRET_HEADERS = {"private-token", "job-token", "authorization", "proxy-authorization", "cookie", "set-cookie",
                  "x-gitlab-token", "x-api-key"}
# names of query parameters, form fields and JSON fields whose value is a credential
SECRET_NAMES = {
    "token", "private_token", "access_token", "refresh_token", "job_token", "full_token", "token_value",
    "secret", "client_secret", "secret_token", "signing_secret", "password", "api_token", "apitoken",
    "oauth_token", "bearer_token", "api_key",
}
# JSON objects whose `value` is a credential: CI/CD variables, hook URL variables and custom headers
_VALUE_HOLDERS = {"key", "variable_type"}
_SAFE_AUTH_DATA = {"username", "name", "header_name"}
TOKEN_PLACEHOLDER = "${token}"


def _template_pattern(template: str) -> re.Pattern[str]:
    """A pattern matching a whole string rendered through `template`; group `token` is the value."""
    parts = [re.escape(part) for part in template.split(TOKEN_PLACEHOLDER)]
    return re.compile(parts[0] + "(?P<token>.+?)" + "".join("(?P=token)" + part for part in parts[1:-1]) + parts[-1],
                      re.DOTALL)


def inventory_templates(inventory: str | Path) -> list[str]:
    """The consumer templates of the inventory at `inventory` that put the value inside a longer
    string (`https://hooks.example/${token}/run`, `Bearer ${token}`); none when it does not load
    (then no session ran and nothing was sent)."""
    from reconciler.inventory import diagnose
    from reconciler.kinds import consumer_kind

    model, _ = diagnose(inventory)
    if model is None:
        return []
    found = {consumer_kind(c.kind).template(c) for token in model.tokens.values() for c in token.consumers}
    return sorted(t for t in found if TOKEN_PLACEHOLDER in t and t.replace(TOKEN_PLACEHOLDER, ""))


class Scrubber:
    """Scrubs a transcript in vcrpy's layout (`{"interactions": [{"request", "response"}]}`).
    `learned` holds every value removed by position, so it can be removed wherever else it appears."""

    def __init__(self, known: Iterable[str | Secret] = (), templates: Iterable[str] = ()) -> None:
        self.learned: set[str] = set()
        for value in known:
            self.learn(value.reveal() if isinstance(value, Secret) else value)
        self.templates = [(t.split(TOKEN_PLACEHOLDER), _template_pattern(t)) for t in templates
                          if TOKEN_PLACEHOLDER in t and t.replace(TOKEN_PLACEHOLDER, "")]

    def learn(self, value: Any) -> None:
        # words with spaces are names and titles (app settings), not credentials: replacing them
        # everywhere would blank half of a bug report; they are still removed where they stood
        if isinstance(value, str) and len(value) >= MIN_LEARNED and not any(c.isspace() for c in value):
            self.learned.add(value)

    # -- pass 1: by position ---------------------------------------------------------------------

    def templated(self, text: str) -> str:
        """`text` with the value replaced when it has the shape of a consumer template: the
        value's position is the template's `${token}`, wherever that is (a URL path, a header)."""
        for parts, pattern in self.templates:
            match = pattern.fullmatch(text)
            if match:
                self.learn(match.group("token"))
                return REDACTED.join(parts)
        return text

    def header(self, name: str, value: str) -> str:
        if name.lower() not in SECRET_HEADERS:
            return value
        scheme, _, credential = value.partition(" ")
        if credential and scheme.lower() in ("bearer", "basic", "token"):
            self.learn(credential)
            if scheme.lower() == "basic":
                self._learn_basic(credential)
            return f"{scheme} {REDACTED}"
        self.learn(value)
        return REDACTED

    def _learn_basic(self, encoded: str) -> None:
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return
        self.learn(password)  # a password, or a Zendesk API token ("email/token:TOKEN")

    def url(self, text: str, *, all_query: bool = False) -> str:
        """A URL with credential-named query values (all of them with `all_query`) and any
        userinfo password replaced; or, when it has the shape of a consumer template, the value
        at the template's `${token}`."""
        scrubbed = self.templated(text)
        if scrubbed != text:
            return scrubbed
        try:
            parts = urlsplit(text)
        except ValueError:
            return text
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, _, password = userinfo.partition(":")
            if password:
                self.learn(password)
                netloc = f"{user}:{REDACTED}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            out = []
            for key, value in pairs:
                if value and (all_query or _secret_name(key.lower())):
                    self.learn(value)
                    value = REDACTED
                out.append((key, value))
            query = urlencode(out, safe="<>")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def json(self, value: Any, parent: str = "") -> Any:
        if isinstance(value, dict):
            holds_value = bool(_VALUE_HOLDERS & set(value))
            out = {}
            for key, item in value.items():
                lowered = str(key).lower()
                if _secret_name(lowered) and not isinstance(item, dict | list):
                    out[key] = self._gone(item)
                elif lowered == "value" and (holds_value or parent in ("url_variables", "custom_headers", "settings_objects", "data")):
                    out[key] = self._gone(item)
                elif lowered == "settings" and parent in ("installation", "installations", "") and isinstance(item, dict):
                    out[key] = {k: self._gone(v) for k, v in item.items()}  # every app setting: may be secure
                elif lowered == "data" and parent == "authentication" and isinstance(item, dict):
                    out[key] = {k: (v if k in _SAFE_AUTH_DATA else self._gone(v)) for k, v in item.items()}
                elif lowered in ("endpoint", "url") and isinstance(item, str):
                    out[key] = self.url(item, all_query=lowered == "endpoint")
                else:
                    out[key] = self.json(item, lowered)
            return out
        if isinstance(value, list):
            return [self.json(item, parent) for item in value]
        return self.templated(value) if isinstance(value, str) else value

    def _gone(self, value: Any) -> Any:
        if value in (None, "", True, False) or isinstance(value, int | float):
            return value  # not a credential: keep the shape readable
        if isinstance(value, str):
            self.learn(value)
            return REDACTED
        return REDACTED

    def body(self, text: str | None, content_type: str, *, request: bool = False) -> str | None:
        """A body with its secrets replaced. In a `request` body a top-level `value` is one too:
        it is what a write delivers (`{"value": X, "masked": ...}` to a CI variable, `{"value": X}`
        to a hook's URL variable or custom header) and no answer may ever have shown X."""
        if not text:
            return text
        stripped = text.lstrip()
        if stripped[:1] in "{[":
            try:
                data = json.loads(text)
            except ValueError:
                return text
            if request and isinstance(data, dict):
                data = {k: (self._gone(v) if str(k).lower() == "value" and not isinstance(v, dict | list) else v)
                        for k, v in data.items()}
            return json.dumps(self.json(data), sort_keys=True)
        if "x-www-form-urlencoded" in content_type or (
            "=" in text and " " not in text and "\n" not in text and not stripped.startswith("<")
        ):
            pairs = parse_qsl(text, keep_blank_values=True)
            if pairs:
                out = []
                for key, value in pairs:
                    if value and (_secret_name(key.lower()) or (request and key.lower() == "value")):
                        self.learn(value)
                        value = REDACTED
                    out.append((key, self.templated(value)))
                return urlencode(out, safe="<>")
        return text

    def interaction(self, interaction: dict[str, Any]) -> None:
        request, response = interaction["request"], interaction["response"]
        request["headers"] = {k: [self.header(k, v) for v in _list(vs)] for k, vs in request["headers"].items()}
        request["uri"] = self.url(request["uri"])
        request["body"] = self.body(_text(request.get("body")), _content_type(request["headers"]), request=True)
        response["headers"] = {k: [self.header(k, v) for v in _list(vs)] for k, vs in response["headers"].items()}
        body = response.get("body") or {}
        body["string"] = self.body(_text(body.get("string")), _content_type(response["headers"]))
        response["body"] = body

    # -- pass 2: by value ------------------------------------------------------------------------

    def replace_known(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in sorted(self.learned, key=len, reverse=True):
                for form in {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}:
                    if form in value:
                        value = value.replace(form, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.replace_known(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.replace_known(v) for v in value]
        return value

    def transcript(self, data: dict[str, Any]) -> dict[str, Any]:
        """Scrub a whole transcript (`{"interactions": [...]}`): both passes."""
        for interaction in data.get("interactions", []):
            self.interaction(interaction)
        return self.replace_known(data)


def _secret_name(name: str) -> bool:
    return name in SECRET_NAMES or name.endswith(("_token", "_secret", "password"))


def _list(values: Any) -> list[str]:
    return [str(v) for v in values] if isinstance(values, list | tuple) else [str(values)]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes of binary>"  # cannot be scrubbed: never written
    return value if isinstance(value, str) else str(value)


def _content_type(headers: dict[str, list[str]]) -> str:
    for key, values in headers.items():
        if key.lower() == "content-type" and values:
            return values[0].lower()
    return ""


def cassette_path(directory: str | Path, command: str, now: datetime | None = None) -> Path:
    """DIR/reconcile-COMMAND-YYYYmmddTHHMMSSZ.yaml, numbered when that name is taken."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    directory = Path(directory)
    path = directory / f"reconcile-{command}-{stamp}.yaml"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"reconcile-{command}-{stamp}-{n}.yaml"
    return path


class Recording:
    """What `recording()` yields: where the cassette goes and the interactions captured so far."""

    def __init__(self, path: Path, known: Iterable[str | Secret] = (), templates: Iterable[str] = ()) -> None:
        self.path = path
        self.known = tuple(known)
        self.templates = tuple(templates)
        self.interactions: list[dict[str, Any]] = []
        self.saved = False  # the cassette is on disk: only then may the CLI say where it went
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        return len(self.interactions)

    def add(self, request: PreparedRequest, response: Response | None, error: BaseException | None) -> None:
        """One exchange (a `requests.PreparedRequest` and its `Response`, or the error instead)."""
        body = request.body
        entry = {
            "request": {"method": request.method, "uri": request.url,
                        "body": body if isinstance(body, str | bytes | None) else "<streamed body>",
                        "headers": {k: [v] for k, v in request.headers.items()}},
            "response": _response(response, error),
        }
        with self._lock:
            self.interactions.append(entry)

    def transcript(self) -> dict[str, Any]:
        """The scrubbed transcript in vcrpy's cassette layout (`version`, `interactions`)."""
        with self._lock:
            interactions = copy.deepcopy(self.interactions)
        for entry in interactions:
            entry["request"]["body"] = _text(entry["request"]["body"])
            entry["response"]["body"]["string"] = _text(entry["response"]["body"]["string"])
        return Scrubber(self.known, self.templates).transcript({"version": 1, "interactions": interactions})

    def save(self) -> Path:
        """Write the cassette readable by its owner only (0600; a directory it creates, 0700).
        PyYAML writes it, not vcrpy (a test-only dependency): the transcript is plain strings,
        numbers, lists and maps, which vcrpy's serializer dumps the same way, so `--record`
        works on a plain install and `vcr` still loads the file."""
        import yaml

        text = yaml.dump(self.transcript(), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.chmod(0o700)  # mkdir's mode is narrowed by the umask, never widened: say it
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # a file that already existed keeps its mode otherwise
            out.write(text)
        self.saved = True
        return self.path


def _response(response: Response | None, error: BaseException | None) -> dict[str, Any]:
    if response is None:
        # no answer (refused, reset, timed out): vcrpy has no layout for it; status 0 says so
        return {"status": {"code": 0, "message": type(error).__name__ if error else "no answer"},
                "headers": {}, "body": {"string": None}}
    try:
        content = response.content
    except Exception:  # a stream that broke while being read: the caller sees that error itself
        content = b"<unreadable body>"
    return {"status": {"code": response.status_code, "message": response.reason or ""},
            "headers": {k: [v] for k, v in response.headers.items()}, "body": {"string": content}}


@contextmanager
def recording(path: str | Path, *, known: Iterable[str | Secret] = (),
              templates: Iterable[str] | Callable[[], Iterable[str]] = ()) -> Iterator[Recording]:
    """Record every HTTP request made through `requests` inside the block (python-gitlab and zenpy
    both use it), from every thread, and save the scrubbed cassette at `path` when the block ends.
    `known`: values to scrub wherever they appear besides those found by position. `templates`:
    consumer templates whose `${token}` position is scrubbed too (or a function giving them, called
    when the block ends).

    vcrpy's own capture is not used: it swaps its patches out while a request is sent
    (`force_reset`), so requests sent meanwhile from other threads (observe is concurrent) went
    unrecorded: 9 of 22 in a `plan --sandbox`. A hook on `HTTPAdapter.send` sees every one."""
    from requests.adapters import HTTPAdapter

    rec = Recording(Path(path), known, () if callable(templates) else templates)
    original = HTTPAdapter.send

    # named as in the method it replaces, so a caller may pass `request=` by keyword
    def send(self: HTTPAdapter, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException as exc:
            rec.add(request, None, exc)
            raise
        rec.add(request, response, None)
        return response

    # mypy refuses any assignment to a method; patching this one is the point
    HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield rec
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]
        try:
            if callable(templates):
                rec.templates = tuple(templates())
            rec.save()  # also after a failure: that is when a transcript is wanted
        except OSError as err:
            from reconciler.engine import SessionError

            raise SessionError(f"--record: cannot write {rec.path} ({err.strerror or err})") from None


@contextmanager
def record_to(directory: str | Path | None, command: str,
              report: Callable[[Recording], object] | None = None, *,
              inventory: str | Path | None = None) -> Iterator[Recording | None]:
    """`--record DIR` of a command: record into a fresh cassette under DIR, or do nothing when
    DIR is None. `report(recording)` is called afterwards (the CLI says where the file went).
    `inventory`: its consumer templates say where else a value sits (`recording(templates=)`)."""
    if directory is None:
        yield None
        return
    templates = (lambda: inventory_templates(inventory)) if inventory is not None else ()
    rec = None
    try:
        with recording(cassette_path(directory, command), templates=templates) as rec:
            yield rec
    finally:  # after the save, failed or not: never name a file that was not written
        if report is not None and rec is not None and rec.saved:
            report(rec)
