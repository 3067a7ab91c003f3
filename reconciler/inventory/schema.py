"""JSON Schema validation of the loaded inventory, with messages people can act on.

jsonschema's own messages ("Additional properties are not allowed ('scope' was unexpected)")
name neither the place nor the fix. Each error is turned into a `Diagnostic` at the offending
key's FILE:LINE:COL, with a "did you mean" where a known key or value is close.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.inventory.model import Diagnostic
from reconciler.inventory.yamlload import Document, PathKey, dotted

if TYPE_CHECKING:
    from fastjsonschema import Validator as CompiledValidator
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

# The file ships inside the package; schemas/inventory.schema.json at the top is a link to it
# for editors (the yaml-language-server modeline) and readers. It is generated from the kinds:
# `python -m reconciler.inventory.schema_file --write`.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "inventory.schema.json"

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}

# Messages for the schema's patterns (the patterns themselves live in the schema: its base in
# schema_file.py and the kinds' fragments).
_PATTERN_MESSAGES = {
    r"^[1-9][0-9]*[mhdw]$": "{value!r} is not a duration like 30m, 12h, 21d or 2w",
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "{value!r} is not an ISO date like 2026-11-22",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "{value!r} is not an environment variable name (letters, digits and _)",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "{value!r} is not a valid name (letters, digits, _, . and -)",
    r"^[A-Za-z0-9_]+$": "{value!r} is not a valid CI/CD variable key (letters, digits and _)",
    r"^https?://[^\s/]+": "{value!r} is not an http(s) URL",
    r"^[a-z0-9][a-z0-9-]*$": "{value!r} is not a Zendesk subdomain (lower-case letters, digits and -)",
    r"^(([a-z_]+:)?(read|write)|impersonate)$": "{value!r} is not a Zendesk scope (read, write, impersonate or RESOURCE:read|write)",
    r"^[^@\s]+@[^@\s]+$": "{value!r} is not an email address",
}


_MEANT = re.compile(r"^unknown key .* \(did you mean '([^']+)'\?\)")


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The inventory JSON Schema (schemas/inventory.schema.json)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def _validator(kind_def: str | None = None) -> Validator:
    """The validator of the whole document, or of one source/consumer kind's definition.

    The whole-document validator checks only the `kind` of sources and consumers; each is then
    validated against its kind's definition directly. Same result as the schema's if/then chain
    (which editors use), several times faster on large inventories."""
    import jsonschema  # imported here: only validation needs it

    schema = load_schema()
    if kind_def is not None:
        return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind_def}", "$defs": schema["$defs"]})
    defs = dict(schema["$defs"])
    for union in ("source", "consumer"):
        defs[union] = {k: v for k, v in defs[union].items() if k != "allOf"}
    return jsonschema.Draft202012Validator({**schema, "$defs": defs})


_kind_validators = lru_cache(maxsize=None)(_validator)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[object]) -> str | None:
    """The known choice `word` most likely meant: the one sharing the longest start with it
    (`rotate` -> `rotation`, at least 4 letters), else the closest spelling; None when nothing
    is close."""
    names = sorted(c for c in choices if isinstance(c, str))
    word = str(word)

    def shared(c: str) -> int:
        n = 0
        while n < min(len(c), len(word)) and c[n] == word[n]:
            n += 1
        return n

    best = max((shared(c) for c in names), default=0)
    by_start = [c for c in names if shared(c) == best]
    if best >= 4 and len(by_start) == 1:
        return by_start[0]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(word: str, choices: Iterable[object]) -> str:
    guess = did_you_mean(word, choices)
    return f" (did you mean {guess!r}?)" if guess else ""


@dataclass(frozen=True)
class _Failure:
    """What the messages read of a jsonschema error. The stubs type its fields as possibly unset
    (for an error built by hand); an error from `iter_errors` always sets them."""

    keyword: str  # the failing keyword: "required", "enum", "pattern"...
    expected: Any  # the keyword's value in the schema: any JSON (a list, a pattern, a number)
    instance: Any  # the part of the document that failed: any JSON
    schema: Mapping[str, Any]  # the subschema holding the keyword
    path: PathKey  # of `instance`, from the document's root
    message: str  # jsonschema's own

    @classmethod
    def of(cls, error: ValidationError, prefix: PathKey) -> _Failure:
        schema = error.schema
        return cls(keyword=str(error.validator), expected=error.validator_value, instance=error.instance,
                   schema=schema if isinstance(schema, Mapping) else {},
                   path=prefix + tuple(error.absolute_path), message=error.message)


def _one_of_message(error: _Failure) -> str:
    titles = [sub.get("title", "?") for sub in error.expected]
    if all(set(sub) <= {"title", "required"} for sub in error.expected):
        return "set exactly one of: " + ", ".join(titles)
    return "must be one of: " + ", ".join(titles)


def _diagnostics_for(error: _Failure, doc: Document) -> list[Diagnostic]:
    path = error.path
    value = error.instance
    kind = error.keyword
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extras = [k for k in value if k not in error.schema.get("properties", {})]
        out = []
        for extra in extras:
            if any(re.match(p, extra) for p in error.schema.get("patternProperties", {})):
                continue
            where = f"; known keys: {', '.join(known)}" if not suggestion(extra, known) and known else ""
            out.append(
                Diagnostic(
                    pos=doc.key_pos(path + (extra,)),
                    key=dotted(path + (extra,)),
                    message=f"unknown key {extra!r}{suggestion(extra, known)}{where}",
                )
            )
        return out
    if kind == "required":
        missing = [k for k in error.expected if k not in value]
        return [
            Diagnostic(pos=doc.key_pos(path), key=dotted(path + (m,)), message=f"missing required key {m!r}")
            for m in missing
        ]
    pos = doc.key_pos(path)
    key = dotted(path)
    if kind == "type":
        want = error.expected
        wants = [want] if isinstance(want, str) else list(want)
        message = f"expected {' or '.join(_TYPE_WORDS.get(w, w) for w in wants)}, got {_type_name(value)}"
    elif kind in ("enum", "const"):
        choices = error.expected if kind == "enum" else [error.expected]
        shown = ", ".join(json.dumps(c) if not isinstance(c, str) else c for c in choices)
        hint = suggestion(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        message = f"{json.dumps(value) if not isinstance(value, str) else repr(value)} is not allowed: use {shown}{hint}"
    elif kind == "pattern":
        template = _PATTERN_MESSAGES.get(error.expected, "{value!r} does not match the pattern " + error.expected)
        message = template.format(value=value)
    elif kind == "minLength":
        message = "must not be empty"
    elif kind == "minItems":
        message = f"needs at least {error.expected} item(s)"
    elif kind == "uniqueItems":
        message = "lists the same item twice"
    elif kind == "oneOf":
        message = _one_of_message(error)
    else:
        message = error.message
    return [Diagnostic(pos=pos, key=key, message=message)]


def _property_name_diagnostic(error: _Failure, doc: Document) -> Diagnostic:
    """A `propertyNames` error reports the parent's path with the bad name as its instance;
    cite the name's own key."""
    name = error.instance
    where: PathKey = error.path + (name,)
    if error.keyword == "enum":
        choices = ", ".join(error.expected)
        message = f"{name!r} is not allowed here: use {choices}{suggestion(name, error.expected)}"
    elif error.keyword == "pattern":
        message = _PATTERN_MESSAGES.get(error.expected, "{value!r} is not a valid name").format(value=name)
    else:
        message = f"{name!r}: {error.message}"
    return Diagnostic(pos=doc.key_pos(where), key=dotted(where), message=message)


def _errors(data: dict[str, Any]) -> Iterator[tuple[PathKey, ValidationError]]:
    """(path prefix, error) for the document, then for each source and consumer by its kind."""
    for error in _validator().iter_errors(data):
        yield (), error
    schema = load_schema()
    sources = set(schema["$defs"]["source"]["properties"]["kind"]["enum"])
    consumers = set(schema["$defs"]["consumer"]["properties"]["kind"]["enum"])
    tokens = data.get("tokens")
    for name, token in (tokens.items() if isinstance(tokens, dict) else ()):
        if not isinstance(token, dict):
            continue
        parts: list[tuple[PathKey, Any, str]] = [(("tokens", name, "source"), token.get("source"), "source")]
        if isinstance(token.get("consumers"), list):
            parts += [(("tokens", name, "consumers", i), c, "consumer") for i, c in enumerate(token["consumers"])]
        for path, part, union in parts:
            kind = part.get("kind") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind in (sources if union == "source" else consumers):
                for error in _kind_validators(f"{union}_{kind}").iter_errors(part):
                    yield path, error


@lru_cache(maxsize=1)
def _fast_validators() -> tuple[CompiledValidator, _KindValidators] | None:
    """Compiled validators (fastjsonschema generates Python code from the schema): the document
    without the kind chains, and one per source/consumer kind (compiled when first needed:
    `_KindValidators`). They only answer "valid or not", ten times faster than jsonschema (0.16 s
    instead of 1.7 s on 1,000 tokens); None when they cannot be built, and then jsonschema does
    all the work.

    Sound as a fast path because on this schema they are never more lenient than jsonschema: the
    keywords used are draft-07 ones both implement alike; bool is not an integer in either, and
    the one boolean `const` compares `1 != True` in both (tests/benchmarks/test_fast_schema.py
    checks agreement on the bad-inventory corpus)."""
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - an install without the dependency
        return None
    schema = load_schema()
    defs = dict(schema["$defs"])
    for union in ("source", "consumer"):
        defs[union] = {k: v for k, v in defs[union].items() if k != "allOf"}
    top = {k: v for k, v in schema.items() if k != "$schema"}  # 2020-12 URI: fastjsonschema knows up to 07
    try:
        document = fastjsonschema.compile({**top, "$defs": defs})
    except Exception:  # pragma: no cover - a schema construct the compiler does not support
        return None
    return document, _KindValidators(schema["$defs"])


class _KindValidators(dict[str, "CompiledValidator"]):
    """`source_<kind>` / `consumer_<kind>` -> compiled validator, compiled on first use (a small
    inventory uses a few kinds: `reconcile validate` need not compile all 13).

    A kind's "exactly one of these keys" (a `oneOf` whose every branch requires one key: a CI
    variable's project, group or instance) is checked by `validate`, not compiled: the compiled
    code tries each branch and raises an exception for each that fails, half of a kind's check."""

    def __init__(self, defs: dict[str, Any]) -> None:
        super().__init__()
        self.known = {f"{union}_{kind}" for union in ("source", "consumer")
                      for kind in defs[union]["properties"]["kind"]["enum"]}
        self.one_of = {name: keys for name in self.known if (keys := _one_key_each(defs[name].get("oneOf")))}
        self.defs = {name: {k: v for k, v in d.items() if k != "oneOf"} if name in self.one_of else d
                     for name, d in defs.items()}

    def __contains__(self, name: object) -> bool:
        return name in self.known

    def __missing__(self, name: str) -> CompiledValidator:
        import fastjsonschema

        validator = self[name] = fastjsonschema.compile({"$ref": f"#/$defs/{name}", "$defs": self.defs})
        return validator

    def validate(self, name: str, instance: dict[str, Any]) -> None:
        """Raise `fastjsonschema.JsonSchemaException` when `instance` is not a valid `name`."""
        self[name](instance)  # checks first that it is a mapping
        keys = self.one_of.get(name)
        if keys is not None and sum(key in instance for key in keys) != 1:
            import fastjsonschema

            raise fastjsonschema.JsonSchemaValueException(f"exactly one of {', '.join(keys)} is required")


def _one_key_each(branches: Any) -> tuple[str, ...] | None:
    """The keys of a `oneOf` whose every branch only requires one key (a title aside), else None."""
    if not isinstance(branches, list) or not branches:
        return None
    keys = []
    for branch in branches:
        if not isinstance(branch, dict) or set(branch) - {"required", "title"}:
            return None
        required = branch.get("required")
        if not isinstance(required, list) or len(required) != 1:
            return None
        keys.append(required[0])
    return tuple(keys)


def is_valid_fast(data: dict[str, Any]) -> bool | None:
    """True when the compiled validators accept the whole document (then jsonschema would find
    nothing either); False when they reject it; None when they are unavailable."""
    fast = _fast_validators()
    if fast is None:
        return None
    import fastjsonschema

    document, kinds = fast
    try:
        document(data)
        tokens = data.get("tokens")
        for token in tokens.values() if isinstance(tokens, dict) else ():
            if not isinstance(token, dict):
                continue
            source = token.get("source")
            if isinstance(source, dict) and f"source_{source.get('kind')}" in kinds:
                kinds.validate(f"source_{source['kind']}", source)
            for consumer in token.get("consumers") or ():
                if isinstance(consumer, dict) and f"consumer_{consumer.get('kind')}" in kinds:
                    kinds.validate(f"consumer_{consumer['kind']}", consumer)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def validate_document(doc: Document) -> list[Diagnostic]:
    """Every schema violation in the document, each at its key; none when it is valid."""
    if is_valid_fast(doc.data):
        return []  # the common case; jsonschema below only when there is something to explain
    found: list[Diagnostic] = []
    for prefix, error in _errors(doc.data):
        failure = _Failure.of(error, prefix)
        if doc.is_poisoned(failure.path):
            continue  # the loader already reported this value (custom tag, ...)
        if "propertyNames" in error.schema_path:
            found.append(_property_name_diagnostic(failure, doc))
        else:
            found.extend(_diagnostics_for(failure, doc))
    # `scope:` for `scopes:` is one mistake: say "unknown key 'scope' (did you mean 'scopes'?)"
    # and not also "missing required key 'scopes'".
    meant = {d.key.rsplit(".", 1)[0] + "." + m for d in found for m in _MEANT.findall(d.message)}
    found = [d for d in found if not (d.message.startswith("missing required key") and d.key in meant)]
    # One message per (place, key, text): if/then branches can report the same thing twice.
    unique = {(d.pos, d.key, d.message): d for d in found}
    return sorted(unique.values(), key=lambda d: (d.pos, d.key))


def schema_properties(node: Any = None, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, subschema) of a property anywhere in the schema; the README reference test
    and the schema tests walk it."""
    node = load_schema() if node is None else node
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}.{name}", sub
        for key, value in node.items():
            if key != "if":  # the conditions of if/then name keys; they define none
                yield from schema_properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from schema_properties(item, f"{path}[{i}]")
