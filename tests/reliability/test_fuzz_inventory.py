"""`reconcile validate` on hostile or broken inventory text: it passes, or prints one
`FILE:LINE:COLUMN: key: message` line per problem and a count, and exits 1. Never a traceback,
and never slow (each example has a deadline).

Two generators (hypothesis, derandomized so CI is reproducible): YAML-ish text from the characters
YAML gives meaning to, and structure-aware documents under the real section names, with nested
mappings and lists, anchors and aliases (some chained into small alias bombs), merge keys, tags
and huge scalars.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.cli import main

DIAGNOSTIC = re.compile(r"^.+:\d+:\d+: .+$")
COUNT = re.compile(r"^\d+ errors?( \(--strict: warnings count as errors\))?$")
# The deadline: an unbounded alias bomb takes minutes, the bounded one about a second.
FUZZ = settings(max_examples=40, derandomize=True, database=None, deadline=10_000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def validate(files: dict[str, str]) -> tuple[int, str, str]:
    """Run `reconcile validate` on a fresh directory holding `files`."""
    with tempfile.TemporaryDirectory() as root:
        for name, text in files.items():
            (Path(root) / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", "--inventory", root])
        return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, out: str, err: str) -> None:
    for what in ("aliases expand", "levels deep", "YAML syntax error", "is not allowed here", "unknown key"):
        if what in err:
            event(what)
    assert "Traceback" not in out + err
    if code == 0:
        assert out.startswith("ok: ")
        return
    assert code == 1
    lines = err.splitlines()
    assert lines and COUNT.match(lines[-1]), err[-2000:]
    for line in lines[:-1]:
        assert DIAGNOSTIC.match(line), line


YAML_CHARS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?<=~. \n\t\\") + ["\n  ", "\n- ", ": ", "---\n", "...\n",
                                                                       "&a ", "*a", "<<: ", "!!str ", "tokens",
                                                                       "providers", "kind", "\u00e9", "\x00", "\ufeff"])
YAMLISH = st.lists(YAML_CHARS | st.text(max_size=4), max_size=120).map("".join)


@settings(FUZZ, max_examples=150)
@given(YAMLISH)
def test_yamlish_text_is_validated_cleanly(text: str) -> None:
    assert_clean(*validate({"a.yaml": text}))


# --- structure-aware documents ---------------------------------------------------------------

SECTIONS = ["providers", "tokens", "policy", "defaults", "discovery", "check", "state"]
KEYS = st.sampled_from([*SECTIONS, "kind", "provider", "name", "scopes", "consumers", "source", "key", "project",
                        "url", "auth", "token_env", "expires_at", "x", "<<"]) | st.text(alphabet="abcXYZ_- .:#é", min_size=1, max_size=6)
SCALARS = st.one_of(
    st.sampled_from(["gitlab", "zendesk", "api", "2026-12-01", "12h", "21d", "null", "~", "yes", "0x1F", ".inf",
                     "https://gitlab.example", "'${token}'", "''", '"a\\u0000b"', "!!binary aGk=", "!!set {a}",
                     "!!python/object/apply:os.system ['true']", "!vault secret", "!!timestamp 2026-01-01",
                     "!!float nan", "!!int 99999999999999999999999"]),
    st.integers(-(2**80), 2**80).map(str),
    st.integers(1, 50_000).map(lambda n: '"' + "x" * n + '"'),  # huge scalars
    st.text(alphabet="abc xyz:#-", max_size=10).map(lambda t: "'" + t.replace("'", "''") + "'"),
)


ANCHOR_NAMES = itertools.count()


@st.composite
def node(draw: Any, anchors: list[str], depth: int = 0) -> str:
    """One flow-style YAML node; may define an anchor, refer to one, or nest."""
    choice = draw(st.integers(0, 9 if depth < 6 else 3))
    if choice <= 1:
        return draw(SCALARS)
    if choice <= 3 and anchors:
        return "*" + draw(st.sampled_from(anchors))
    anchor = ""
    if draw(st.booleans()):
        anchor = f"&a{next(ANCHOR_NAMES)} "  # named before the children, added after: never recursive
    if choice <= 6:
        items = draw(st.lists(node(anchors, depth + 1), max_size=4))
        text = "[" + ", ".join(items) + "]"
    else:
        pairs = draw(st.lists(st.tuples(KEYS, node(anchors, depth + 1)), max_size=4))
        text = "{" + ", ".join(f"{key_text(k)}: {v}" for k, v in pairs) + "}"
    if anchor:
        anchors.append(anchor[1:].strip())
    return draw(st.sampled_from(["", "!!map ", "!!seq ", "!custom "])) * (draw(st.integers(0, 7)) == 0) + anchor + text


def key_text(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_<][A-Za-z0-9_<]*", key) else "'" + key.replace("'", "''") + "'"


@st.composite
def document(draw: Any) -> str:
    anchors: list[str] = []
    lines = []
    for section in draw(st.lists(st.sampled_from(SECTIONS) | KEYS, min_size=1, max_size=5)):
        lines.append(f"{key_text(section)}: {draw(node(anchors))}")
    if anchors and draw(st.integers(0, 3)) == 0:  # a small alias bomb on top of what is there
        width = draw(st.integers(2, 12))
        previous = draw(st.sampled_from(anchors))
        for level in range(draw(st.integers(1, 8))):
            lines.append(f"bomb{level}: &b{level} [" + ", ".join([f"*{previous}"] * width) + "]")
            previous = f"b{level}"
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.sampled_from([33, 500, 999]))
        lines.append("deep: " + "{a: " * depth + "1" + "}" * depth)
    return "\n".join(lines) + "\n"


@settings(FUZZ, max_examples=30)
@given(st.lists(document(), min_size=1, max_size=3))
def test_structured_documents_are_validated_cleanly(documents: list[str]) -> None:
    assert_clean(*validate({f"f{i}.yaml": text for i, text in enumerate(documents)}))


def test_the_example_inventory_still_passes() -> None:
    """The property holds trivially if everything fails: the real inventory must pass."""
    root = Path(__file__).resolve().parents[2] / "inventory"
    files = {p.name: p.read_text() for p in root.rglob("*.yaml")}
    code, out, err = validate(files)
    assert (code, out.startswith("ok: ")) == (0, True), err
