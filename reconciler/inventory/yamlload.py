"""YAML with positions: every key and value of the inventory keeps its file, line and column.

The inventory is all `*.yaml` files under a directory, merged into one document. PyYAML's node
graph carries positions but the constructed values do not, so we construct plain values from the
nodes ourselves and record positions in a side table keyed by path (a tuple of mapping keys and
list indices, e.g. `("tokens", "sync", "consumers", 0, "key")`). That keeps the data plain JSON
for jsonschema while every diagnostic can still cite `inventory/tokens/sync.yaml:12:7`.

Rejected: duplicate keys (in one mapping, or the same provider/token/section key in two files),
custom tags (`!vault`, `!!python/...`), sets and binary; several documents in one file; empty
files. Allowed: anchors, aliases and `<<` merge keys. Timestamps stay strings (the schema checks
ISO dates; the builder parses them), so the loaded data is JSON all the way down.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.inventory.model import Diagnostic, Position

try:  # libyaml's parser is several times faster; positions are the same
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}
_MERGE_TAG = _YAML + "merge"
_STR, _TIMESTAMP = _YAML + "str", _YAML + "timestamp"

FILE_KEY = "<file>"  # diagnostics about a whole file (empty, unreadable)
SYNTAX_KEY = "<yaml>"  # YAML syntax errors
INVENTORY_KEY = "<inventory>"  # the directory as a whole (no YAML files)


def dotted(path: PathKey) -> str:
    """`("tokens", "sync", "consumers", 0, "key")` -> `tokens.sync.consumers[0].key`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "<root>"


@dataclass
class Document:
    """The merged inventory data with positions, and every problem found while loading it."""

    data: dict[str, Any] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)  # the key naming a path / list item
    values: dict[PathKey, Position] = field(default_factory=dict)  # where the value starts
    diagnostics: list[Diagnostic] = field(default_factory=list)
    poisoned: set[PathKey] = field(default_factory=set)  # paths whose value was rejected already
    files: list[str] = field(default_factory=list)  # display paths, in load order
    digest: str = ""

    def key_pos(self, path: PathKey) -> Position:
        """Position of the key that names `path`, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            pos = self.keys.get(path[:cut])
            if pos is not None:
                return pos
        return Position(self.files[0] if self.files else "<inventory>", 1, 1)

    def value_pos(self, path: PathKey) -> Position:
        return self.values.get(path) or self.key_pos(path)

    def is_poisoned(self, path: PathKey) -> bool:
        return any(path[: len(p)] == p for p in self.poisoned)


def _pos(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _FileBuilder:
    """Builds plain values from one file's node graph, recording positions and problems."""

    def __init__(self, file: str, loader: yaml.constructor.SafeConstructor, doc: Document) -> None:
        self.file, self.loader, self.doc = file, loader, doc
        self.keys: dict[PathKey, Position] = {}
        self.values: dict[PathKey, Position] = {}
        self.active: set[int] = set()  # node ids being built: guards against recursive aliases

    def error(self, node: yaml.Node, path: PathKey, message: str) -> None:
        # Cite the key that names the bad value (what the reader looks for), else the node.
        pos = self.keys.get(path) or _pos(self.file, node)
        self.doc.diagnostics.append(Diagnostic(pos=pos, key=dotted(path), message=message))
        self.doc.poisoned.add(path)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.values.setdefault(path, _pos(self.file, node))
        if id(node) in self.active:
            self.error(node, path, "an alias refers to itself (recursive anchor)")
            return None
        if isinstance(node, yaml.MappingNode):
            if node.tag != _YAML + "map":
                return self._reject_tag(node, path)
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _YAML + "seq":
                return self._reject_tag(node, path)
            self.active.add(id(node))
            try:
                out = []
                for index, item in enumerate(node.value):
                    self.keys.setdefault(path + (index,), _pos(self.file, item))
                    out.append(self.build(item, path + (index,)))
                return out
            finally:
                self.active.discard(id(node))
        if node.tag not in _PLAIN_TAGS:
            return self._reject_tag(node, path)
        if node.tag == _STR or node.tag == _TIMESTAMP:
            # text is the node's own value (what SafeConstructor returns, without its dispatch:
            # most of an inventory is text); an ISO date stays text, the schema and builder check it
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as err:
            self.error(node, path, f"cannot read this value: {err.problem}")
            return None

    def _reject_tag(self, node: yaml.Node, path: PathKey) -> None:
        tag = node.tag.replace(_YAML, "!!")
        self.error(node, path, f"the YAML tag {tag} is not allowed here: use plain values")
        return None

    def mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        """A plain mapping (its tag already checked); an alias inside it to itself is an error."""
        self.active.add(id(node))
        try:
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        merges: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append((key_node, value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.doc.diagnostics.append(
                    Diagnostic(
                        pos=_pos(self.file, key_node),
                        key=dotted(path + (key,)),
                        message=f"duplicate key {key!r} (first defined at line {first})",
                    )
                )
                continue
            seen[key] = key_node
            self.keys[path + (key,)] = _pos(self.file, key_node)
            out[key] = self.build(value_node, path + (key,))
        # `<<: *base` fills in what the mapping does not say itself (YAML merge-key semantics).
        for key_node, value_node in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.error(source, path, "`<<` merges mappings only (an alias of a mapping)")
                    continue
                merged = self.build(source, path + ("<<",))
                for key, value in (merged or {}).items():
                    if key not in out:
                        out[key] = value
                        self.keys.setdefault(path + (key,), self.keys.get(path + ("<<", key), _pos(self.file, key_node)))
            self._forget(path + ("<<",))
        return out

    def _forget(self, prefix: PathKey) -> None:
        """Re-home positions recorded under the synthetic `<<` path onto the real keys."""
        n = len(prefix)
        for table in (self.keys, self.values):
            for p in [p for p in table if p[:n] == prefix]:
                pos = table.pop(p)
                table.setdefault(prefix[:-1] + p[n:], pos)


def load_file(text: str, file: str, doc: Document) -> dict[str, Any] | None:
    """Parse one file's text into a top-level mapping; problems go to `doc.diagnostics`.
    Returns None when the file contributes nothing (syntax error, empty, not a mapping)."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            pos = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
            problem = err.problem or "invalid YAML"
            if "expected a single document" in f"{err.context} {problem}":
                problem = "one YAML document per file: remove the second `---` document or move it to its own file"
            else:
                context = err.context or ""
                if err.context_mark is not None and err.context_mark is not mark:
                    context += f" started at line {err.context_mark.line + 1}"
                problem = f"YAML syntax error: {problem}" + (f" ({context.strip()})" if context.strip() else "")
            doc.diagnostics.append(Diagnostic(pos=pos, key=SYNTAX_KEY, message=problem))
            return None
        except yaml.YAMLError as err:
            doc.diagnostics.append(Diagnostic(pos=Position(file, 1, 1), key=SYNTAX_KEY, message=f"YAML error: {err}"))
            return None
        if root is None:
            doc.diagnostics.append(
                Diagnostic(
                    pos=Position(file, 1, 1),
                    key=FILE_KEY,
                    message="the file is empty: each inventory file is a mapping of sections (providers, tokens, ...)",
                )
            )
            return None
        builder = _FileBuilder(file, loader, doc)
        if not isinstance(root, yaml.MappingNode) or root.tag != _YAML + "map":
            doc.diagnostics.append(
                Diagnostic(
                    pos=_pos(file, root),
                    key=FILE_KEY,
                    message="the top level must be a mapping of sections (providers, tokens, ...)",
                )
            )
            return None
        data = builder.mapping(root, ())
        _merge_file(doc, file, data, builder)
        return data
    finally:
        loader.dispose()


def _merge_file(doc: Document, file: str, data: dict[str, Any], builder: _FileBuilder) -> None:
    """Merge one file into the document: sections merge by key; a key defined twice is an error."""

    adopted: set[PathKey] = set()  # prefixes whose key and value positions this file supplies

    def adopt(prefix: PathKey) -> None:
        adopted.add(prefix)

    for section, value in data.items():
        if section not in doc.data:
            doc.data[section] = value
            adopt((section,))
            continue
        existing = doc.data[section]
        if isinstance(existing, dict) and isinstance(value, dict):
            for name, entry in value.items():
                path: PathKey = (section, name)
                if name in existing:
                    doc.diagnostics.append(
                        Diagnostic(
                            pos=builder.keys[path],
                            key=dotted(path),
                            message=f"{dotted(path)} is defined twice: also at {doc.keys[path]}",
                        )
                    )
                    continue
                existing[name] = entry
                adopt(path)
        else:
            path = (section,)
            doc.diagnostics.append(
                Diagnostic(
                    pos=builder.keys[path],
                    key=section,
                    message=f"section {section!r} is defined twice: also at {doc.keys[path]}",
                )
            )
    # one pass over the file's positions (a pass per adopted entry was quadratic: 1,000 tokens
    # took seconds); prefixes are a section (length 1) or a section entry (length 2)
    for src, dst in ((builder.keys, doc.keys), (builder.values, doc.values)):
        for p, pos in src.items():
            if p[:1] in adopted or p[:2] in adopted:
                dst.setdefault(p, pos)


def inventory_files(root: Path) -> list[Path]:
    """Every `*.yaml` under `root` (recursively, sorted, hidden directories skipped); or `root`
    itself when it is a file."""
    if root.is_file():
        return [root]
    found = []
    for path in root.rglob("*.yaml"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts[:-1]):
            continue
        if path.is_file() or (path.is_symlink() and not path.exists()):  # a dangling link: say so, never skip it
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_document(root: str | Path) -> Document:
    """Load and merge every inventory file under `root`. Never raises for bad input: every
    problem is a diagnostic in the returned document."""
    root = Path(root)
    doc = Document()
    if not root.exists():
        doc.diagnostics.append(
            Diagnostic(pos=Position(str(root), 1, 1), key=INVENTORY_KEY, message="no such inventory directory")
        )
        return doc
    files = inventory_files(root)
    # `.yml` is a common slip; only `.yaml` is read, so say so instead of silently ignoring it.
    ignored = sorted(root.rglob("*.yml")) if root.is_dir() else []
    for path in ignored:
        doc.diagnostics.append(
            Diagnostic(
                pos=Position(str(path), 1, 1),
                key=FILE_KEY,
                message="ignored: only *.yaml files are read (rename it to .yaml)",
                severity="warning",
            )
        )
    if not files:
        doc.diagnostics.append(
            Diagnostic(
                pos=Position(str(root), 1, 1),
                key=INVENTORY_KEY,
                message="no *.yaml files in the inventory directory",
            )
        )
        return doc
    digest = hashlib.sha256()
    for path in files:
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        display = str(path)
        doc.files.append(display)
        try:
            raw = path.read_bytes()
        except OSError as err:
            doc.diagnostics.append(
                Diagnostic(pos=Position(display, 1, 1), key=FILE_KEY, message=f"cannot read ({err.strerror or err})")
            )
            continue
        # Length-prefixed so that no two different inventories hash alike.
        digest.update(f"{len(rel)}:{rel}:{len(raw)}:".encode())
        digest.update(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            doc.diagnostics.append(
                Diagnostic(pos=Position(display, 1, 1), key=FILE_KEY, message=f"not UTF-8 text ({err.reason})")
            )
            continue
        load_file(text, display, doc)
    doc.digest = "sha256:" + digest.hexdigest()
    return doc
