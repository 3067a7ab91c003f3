"""A small model of how GitLab turns `.gitlab-ci.yml` into jobs, enough to test this project's file:

- `rules:if` expressions of the subset the file uses (GL doc ci/jobs/job_rules.md, "CI/CD variable
  expressions"): `$VAR` (set and not empty), `==` / `!=` against a string, a variable or `null`,
  `=~` / `!~` against a `/regex/`, `&&` (binds tighter) and `||`, and parentheses;
- `rules:changes` (a list or `paths:`) as glob patterns over the changed files (`**` crosses
  directories, like Ruby's File.fnmatch with FNM_PATHNAME | FNM_EXTGLOB);
- the first matching rule decides; `when: never` drops the job; `workflow:rules` gate the pipeline;
- `extends` from hidden (`.name`) jobs, merged key by key as GitLab does (hashes deep, the rest
  replaced);
- `include: component:` of this project's own component (`templates/NAME.yml`) and `include:
  local:`, with `spec:inputs` (https://docs.gitlab.com/ci/inputs/): an input without `default` is
  required, `type` is string (default), boolean, number or array, `options` and `regex` restrict
  it, and `$[[ inputs.NAME ]]` is replaced: a whole value by the typed value, inside a string by
  its text;
- running a job: its `script` lines in one `bash -e` shell with `pipefail`, as the runner's bash
  shell does, with the variables GitLab would set. `before_script` (pip install) is left out: the
  test's virtual environment already provides `reconcile` (tests/ci/test_runner_emulator.py runs
  the real one under gitlab-ci-local).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CI_FILE = ROOT / ".gitlab-ci.yml"
KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
            "before_script", "after_script", "spec"}


TEMPLATES = ROOT / "templates"
DEFAULT_STAGES = [".pre", "build", "test", "deploy", ".post"]  # GitLab's, when the file names none
_INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")


def load(path: Path = CI_FILE) -> dict[str, Any]:
    """The configuration with its includes of this project's templates expanded."""
    config = yaml.safe_load(path.read_text())
    merged: dict[str, Any] = {}
    for entry in config.pop("include", None) or []:
        merged = _merge(merged, included(entry))
    return {"stages": DEFAULT_STAGES, **_merge(merged, config)}


def included(entry: dict[str, Any]) -> dict[str, Any]:
    if "component" in entry:
        name = entry["component"].rpartition("@")[0].rpartition("/")[2]
        template = TEMPLATES / f"{name}.yml"
    else:
        template = ROOT / entry["local"].lstrip("/")
    return component_jobs(template, entry.get("inputs") or {})


def component_jobs(template: Path, given: dict[str, Any]) -> dict[str, Any]:
    """The jobs of a template with a `spec:inputs` header, its inputs interpolated (ValueError for
    an input GitLab would refuse)."""
    header, body = yaml.safe_load_all(template.read_text())
    values = input_values(header["spec"]["inputs"], given)
    return interpolate(body, values)


_TYPES = {"string": str, "boolean": bool, "number": (int, float), "array": list}


def input_values(spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"unknown input(s) {', '.join(unknown)}")
    values = {}
    for name, rules in spec.items():
        rules = rules or {}
        if name not in given and "default" not in rules:
            raise ValueError(f"input {name} is required")
        value = given.get(name, rules.get("default"))
        kind = rules.get("type", "string")
        if not isinstance(value, _TYPES[kind]) or (kind == "number" and isinstance(value, bool)):
            raise ValueError(f"input {name}: {value!r} is not a {kind}")
        if "options" in rules and value not in rules["options"]:
            raise ValueError(f"input {name}: {value!r} is not one of {rules['options']}")
        if "regex" in rules and not re.search(rules["regex"], str(value)):
            raise ValueError(f"input {name}: {value!r} does not match {rules['regex']}")
        values[name] = value
    return values


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def interpolate(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {interpolate(k, values): interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, values) for v in node]
    if not isinstance(node, str):
        return node
    whole = _INPUT.fullmatch(node.strip())
    if whole:
        return values[whole.group(1)]
    return _INPUT.sub(lambda m: _text(values[m.group(1)]), node)


# --- expressions -------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<re>/(?:[^/\\]|\\.)*/[a-z]*)
  | (?P<null>null\b)
  | (?P<op>==|!=|=~|!~|&&|\|\||\(|\))
)""", re.X)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse rules:if at {text[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class Expression:
    """Parse once, evaluate against variables."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.tree = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"trailing input in rules:if {text!r}")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _or(self):
        left = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            left = ("or", left, self._and())
        return left

    def _and(self):
        left = self._primary()
        while self._peek() == ("op", "&&"):
            self._take()
            left = ("and", left, self._primary())
        return left

    def _primary(self):
        if self._peek() == ("op", "("):
            self._take()
            inner = self._or()
            if self._take() != ("op", ")"):
                raise ValueError(f"unbalanced parentheses in {self.text!r}")
            return inner
        left = self._take()
        nxt = self._peek()
        if nxt and nxt[0] == "op" and nxt[1] in ("==", "!=", "=~", "!~"):
            op = self._take()[1]
            return ("cmp", op, left, self._take())
        if left[0] != "var":
            raise ValueError(f"a bare {left[1]!r} is not an expression in {self.text!r}")
        return ("present", left)

    def __call__(self, variables: Mapping[str, str]) -> bool:
        return bool(self._eval(self.tree, variables))

    def _value(self, tok: tuple[str, str], variables: Mapping[str, str]) -> str | None:
        kind, text = tok
        if kind == "var":
            return variables.get(text[1:])
        if kind == "str":
            return text[1:-1]
        if kind == "null":
            return None
        raise ValueError(f"unexpected {text!r} in {self.text!r}")

    def _eval(self, node, variables: Mapping[str, str]) -> bool:
        tag = node[0]
        if tag == "or":
            return self._eval(node[1], variables) or self._eval(node[2], variables)
        if tag == "and":
            return self._eval(node[1], variables) and self._eval(node[2], variables)
        if tag == "present":
            return bool(self._value(node[1], variables))
        _, op, left, right = node
        lhs = self._value(left, variables)
        if op in ("==", "!="):
            same = lhs == self._value(right, variables)
            return same if op == "==" else not same
        kind, text = right
        if kind != "re":
            raise ValueError(f"{op} needs a /regex/ in {self.text!r}")
        body, flags = text[1:text.rindex("/")], text[text.rindex("/") + 1:]
        found = lhs is not None and re.search(body, lhs, re.I if "i" in flags else 0) is not None
        return found if op == "=~" else not found


# --- changes -----------------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += r"(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += r".*"
            i += 2
        elif pattern[i] == "*":
            out += r"[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += r"[^/]"
            i += 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            out += "(?:" + "|".join(re.escape(alt) for alt in pattern[i + 1:end].split(",")) + ")"
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


def changes_match(spec: Any, changed: Iterable[str] | None) -> bool:
    """`changed` None: a pipeline without a diff to compare (schedules): changes are always true."""
    if changed is None:
        return True
    paths = spec.get("paths", []) if isinstance(spec, dict) else spec
    files = list(changed)
    return any(glob_regex(p).match(f) for p in paths for f in files)


# --- jobs --------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(config: dict[str, Any], name: str) -> dict[str, Any]:
    job = dict(config[name])
    parents = job.pop("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        job = _merge(resolve(config, parent), job)
    return job


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: resolve(config, name) for name in config
            if name not in KEYWORDS and not name.startswith(".") and isinstance(config[name], dict)}


def rules_decide(rules: list[dict[str, Any]], variables: Mapping[str, str], changed: Iterable[str] | None) -> str:
    """The `when` of the first matching rule, or "never" when none matches."""
    for rule in rules:
        if "if" in rule and not Expression(rule["if"])(variables):
            continue
        if "changes" in rule and not changes_match(rule["changes"], changed):
            continue
        return rule.get("when", "on_success")
    return "never"


def select(config: dict[str, Any], variables: Mapping[str, str], changed: Iterable[str] | None = None
           ) -> dict[str, dict[str, Any]]:
    """The jobs a pipeline with these variables (and changed files) would contain, by name."""
    changed = list(changed) if changed is not None else None
    workflow = (config.get("workflow") or {}).get("rules")
    if workflow is not None and rules_decide(workflow, variables, changed) == "never":
        return {}
    chosen = {}
    for name, job in jobs(config).items():
        when = rules_decide(job["rules"], variables, changed) if "rules" in job else "on_success"
        if when != "never":
            chosen[name] = job
    return chosen


def run_job(config: dict[str, Any], name: str, job: dict[str, Any], variables: Mapping[str, str], cwd: Path,
            timeout: float = 120.0) -> tuple[int, str]:
    """Run the job's `script` in `cwd` like the runner's bash shell; return (exit code, log)."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
           "HOME": str(cwd), "LANG": "C.UTF-8"}
    env.update({k: str(v) for k, v in (config.get("variables") or {}).items()})
    env.update({k: str(v) for k, v in (job.get("variables") or {}).items()})
    env.update(variables)
    script = "set -o pipefail\n" + "\n".join(job["script"]) + "\n"
    done = subprocess.run(["bash", "-ec", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return done.returncode, done.stdout
