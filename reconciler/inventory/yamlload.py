"""YAML with positions: every key of the inventory (and list item) keeps its file, line and column.

The inventory is all `*.yaml` files under a directory, merged into one document. PyYAML's node
graph carries positions but the constructed values do not, so we construct plain values from the
nodes ourselves and record positions in a side table keyed by path (a tuple of mapping keys and
list indices, e.g. `("tokens", "sync", "consumers", 0, "key")`). That keeps the data plain JSON
for jsonschema while every diagnostic can still cite `inventory/tokens/sync.yaml:12:7` (every
diagnostic cites the key naming what is wrong, so values' own positions are not kept). A large
inventory has hundreds of thousands of keys, so the table holds each position as one packed int
(file, line, column: see `mark`) and makes a `Position` only when one is asked for; keys are
interned (every consumer repeats `kind`, `provider`, ...).

Rejected: duplicate keys (in one mapping, or the same provider/token/section key in two files),
custom tags (`!vault`, `!!python/...`), sets and binary; several documents in one file; empty
files. Allowed: anchors, aliases and `<<` merge keys. Timestamps stay strings (the schema checks
ISO dates; the builder parses them), so the loaded data is JSON all the way down.

The inventory is input from a change under review, so loading it is bounded: a file's size and the
directory's total are checked before reading, nesting deeper than `MAX_DEPTH` is refused before
the builder recurses into it, and values built through aliases are counted (a few hundred bytes of
nested aliases otherwise expand to gigabytes). A symbolic link that leads outside the inventory
directory is refused unread; one to a file inside it is read like that file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.inventory.model import Diagnostic, Position

try:  # libyaml's parser is several times faster; positions are the same
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}
_MERGE_TAG = _YAML + "merge"
_STR, _TIMESTAMP = _YAML + "str", _YAML + "timestamp"

# The first characters a YAML 1.1 implicit type (bool, int, float, null, timestamp, merge, value)
# may start with, as SafeLoader's resolver files them; "" is the empty scalar (null).
_IMPLICIT_FIRST = frozenset(_SafeLoader.yaml_implicit_resolvers)


class _Loader(_SafeLoader):
    """SafeLoader resolving plain scalars to exactly the same tags, sooner. The composer asks the
    resolver about every scalar, and its answer depends on the text alone: most inventory scalars
    start with a letter no implicit type starts with (`kind`, `gitlab-bench`), so they are text
    without trying a pattern; the rest (`true`, `30`, `owner`) repeat, so each is resolved once.
    This holds while SafeLoader has no pattern for any first character and no path resolvers
    (a test pins both, and the tags of tricky scalars)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            if value[:1] not in _IMPLICIT_FIRST:
                return _STR
            tag = self._plain_tags.get(value)
            if tag is None:
                tag = self._plain_tags[value] = self._resolve(kind, value, implicit)
            return tag
        return self._resolve(kind, value, implicit)

    def _resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]


FILE_KEY = "<file>"  # diagnostics about a whole file (empty, unreadable)
SYNTAX_KEY = "<yaml>"  # YAML syntax errors
INVENTORY_KEY = "<inventory>"  # the directory as a whole (no YAML files)

# An estate of 10,000 tokens and 50,000 consumers is about 10 MB of YAML, and a user may keep it in
# one file: one file may hold that with room to spare, and the directory twice that again.
# Loading costs about 15 times the YAML's size in memory, so the total bounds a hostile change
# under review to about half a gigabyte.
MAX_FILE_BYTES = 16 << 20
MAX_TOTAL_BYTES = 32 << 20
MAX_DEPTH = 32  # mappings and lists inside each other; an inventory needs about eight
MAX_ALIASED_VALUES = 100_000  # values built through aliases in one file, nested aliases included


class _TooLarge(Exception):
    """The aliases of a file expand past MAX_ALIASED_VALUES; raised at the alias being expanded."""

    def __init__(self, pos: Position, path: PathKey) -> None:
        super().__init__()
        self.pos, self.path = pos, path


def dotted(path: PathKey) -> str:
    """`("tokens", "sync", "consumers", 0, "key")` -> `tokens.sync.consumers[0].key`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "<root>"


# A position packed into one int: file index, line and column side by side. A line or a column
# never exceeds the file's length, which `_read` bounds by MAX_FILE_BYTES, so each fits in
# _MARK_BITS; the file index takes the bits above (an int of 60 bits or fewer is 32 bytes, a
# `Position` object about 120 with its line number).
_MARK_BITS = MAX_FILE_BYTES.bit_length()
_MARK_MASK = (1 << _MARK_BITS) - 1


def mark(file_index: int, node: yaml.Node) -> int:
    """The packed position of where `node` starts in the file `file_index` (of `Document.files`)."""
    return _pack(file_index, node.start_mark.line + 1, node.start_mark.column + 1)


def _pack(file_index: int, line: int, column: int) -> int:
    return (((file_index << _MARK_BITS) | line) << _MARK_BITS) | column


def _position(files: list[str], packed: int) -> Position:
    file_line, column = packed >> _MARK_BITS, packed & _MARK_MASK
    return Position(files[file_line >> _MARK_BITS], file_line & _MARK_MASK, column)


class KeyPositions(Mapping[str, Position]):
    """A model object's `key_pos`: the marks of its keys, each made a `Position` when looked up.
    The model keeps every key's position for its diagnostics; as objects those were a third of a
    large inventory's model."""

    __slots__ = ("_files", "_marks")

    def __init__(self, files: list[str], marks: dict[str, int]) -> None:
        self._files, self._marks = files, marks

    def __getitem__(self, key: str) -> Position:
        return _position(self._files, self._marks[key])

    def __contains__(self, key: object) -> bool:
        return key in self._marks

    def __iter__(self) -> Iterator[str]:
        return iter(self._marks)

    def __len__(self) -> int:
        return len(self._marks)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass
class Document:
    """The merged inventory data with positions, and every problem found while loading it."""

    data: dict[str, Any] = field(default_factory=dict)
    keys: dict[PathKey, int] = field(default_factory=dict)  # the key naming a path / list item (a `mark`)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    poisoned: set[PathKey] = field(default_factory=set)  # paths whose value was rejected already
    files: list[str] = field(default_factory=list)  # display paths, in load order
    digest: str = ""

    def key_pos(self, path: PathKey) -> Position:
        """Position of the key that names `path`, or of its nearest ancestor that has one."""
        if not self.files:
            return Position("<inventory>", 1, 1)
        return self.position(self.key_mark(path))

    def key_mark(self, path: PathKey) -> int:
        """`key_pos` as a mark (the first file's start when no ancestor has a position)."""
        found = self.keys.get(path)
        if found is not None:  # nearly always: the model asks for keys the document has
            return found
        for cut in range(len(path) - 1, -1, -1):
            found = self.keys.get(path[:cut])
            if found is not None:
                return found
        return _pack(0, 1, 1)

    def position(self, packed: int) -> Position:
        """The `Position` of a `mark`."""
        return _position(self.files, packed)

    def key_positions(self, marks: dict[str, int]) -> KeyPositions:
        """Positions of an object's keys (`marks`: of `key_mark`), as the model keeps them."""
        return KeyPositions(self.files, marks)

    def is_poisoned(self, path: PathKey) -> bool:
        return any(path[: len(p)] == p for p in self.poisoned)


class _FileBuilder:
    """Builds plain values from one file's node graph, recording positions and problems. Most
    nodes are text under a key or in a list: those are taken in the loop over their parent, without
    a call of `build` each (the inventory's largest cost after parsing)."""

    def __init__(self, file: str, loader: yaml.constructor.SafeConstructor, doc: Document) -> None:
        self.file, self.loader, self.doc = file, loader, doc
        self.index = _file_index(doc, file)
        self.keys: dict[PathKey, int] = {}  # marks, as in `Document`
        self.active: set[int] = set()  # collection node ids being built: guards against recursive aliases
        self.built: set[int] = set()  # collection node ids built once: meeting one again is an alias
        self.aliased = 0  # values built through aliases so far
        self.alias: PathKey | None = None  # where the outermost alias being expanded is used

    def error(self, node: yaml.Node, path: PathKey, message: str) -> None:
        # Cite the key that names the bad value (what the reader looks for), else the node.
        pos = self.doc.position(self.keys.get(path) or mark(self.index, node))
        self.doc.diagnostics.append(Diagnostic(pos=pos, key=dotted(path), message=message))
        self.doc.poisoned.add(path)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        if isinstance(node, yaml.ScalarNode):  # a scalar met again is a value, not an expansion
            if self.alias is not None:
                self._count_aliased(node)
            return self._scalar(node, path)
        if self.alias is None and id(node) in self.built:
            self.alias = path
            try:
                return self.build(node, path)
            finally:
                self.alias = None
        self.built.add(id(node))
        if self.alias is not None:
            self._count_aliased(node)
        if id(node) in self.active:
            self.error(node, path, "an alias refers to itself (recursive anchor)")
            return None
        if len(path) > MAX_DEPTH:
            self.error(node, path, f"nested more than {MAX_DEPTH} levels deep: flatten it")
            return None
        if isinstance(node, yaml.MappingNode):
            if node.tag != _YAML + "map":
                return self._reject_tag(node, path)
            return self.mapping(node, path)
        if not isinstance(node, yaml.SequenceNode) or node.tag != _YAML + "seq":
            return self._reject_tag(node, path)
        self.active.add(id(node))
        try:
            return self._sequence(node, path)
        finally:
            self.active.discard(id(node))

    def _count_aliased(self, node: yaml.Node) -> None:
        assert self.alias is not None
        self.aliased += 1
        if self.aliased > MAX_ALIASED_VALUES:
            raise _TooLarge(self._alias_pos(self.alias, node), self.alias)

    def _sequence(self, node: yaml.SequenceNode, path: PathKey) -> list[Any]:
        out = []
        keys, expanding = self.keys, self.alias is not None
        for index, item in enumerate(node.value):
            item_path = path + (index,)
            if item_path not in keys:
                keys[item_path] = mark(self.index, item)
            if not expanding and item.__class__ is yaml.ScalarNode and item.tag == _STR:
                out.append(item.value)  # text, as `build` would take it
            else:
                out.append(self.build(item, item_path))
        return out

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
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

    def _alias_pos(self, path: PathKey, node: yaml.Node) -> Position:
        """Where an alias at `path` is used: the node graph keeps only the anchor's position, so
        the key naming the alias (or its list)."""
        named = [cut for cut in range(len(path), 0, -1) if isinstance(path[cut - 1], str)]
        found = next((self.keys[path[:cut]] for cut in named if path[:cut] in self.keys), mark(self.index, node))
        return self.doc.position(found)

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
        merges: list[tuple[yaml.Node, yaml.Node]] = []
        keys, expanding = self.keys, self.alias is not None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append((key_node, value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            key = sys.intern(key_node.value)
            if key in out:
                self._duplicate(node, key_node, path + (key,))
                continue
            key_path = path + (key,)
            keys[key_path] = mark(self.index, key_node)
            if not expanding and value_node.__class__ is yaml.ScalarNode and value_node.tag == _STR:
                out[key] = value_node.value  # text, as `build` would take it
            else:
                out[key] = self.build(value_node, key_path)
        # `<<: *base` fills in what the mapping does not say itself (YAML merge-key semantics).
        for key_node, value_node in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.error(source, path, "`<<` merges mappings only (an alias of a mapping)")
                    continue
                merged = self._merge_source(source, path)
                for key, value in (merged or {}).items():
                    if key not in out:
                        out[key] = value
                        self.keys.setdefault(path + (key,), mark(self.index, key_node))
        return out

    def _duplicate(self, node: yaml.MappingNode, key_node: yaml.ScalarNode, key_path: PathKey) -> None:
        key = key_node.value
        first = next(k for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE_TAG and k.value == key)
        self.doc.diagnostics.append(
            Diagnostic(
                pos=self.doc.position(mark(self.index, key_node)),
                key=dotted(key_path),
                message=f"duplicate key {key!r} (first defined at line {first.start_mark.line + 1})",
            )
        )

    def _merge_source(self, source: yaml.MappingNode, path: PathKey) -> Any:
        """Build a `<<` source under the synthetic path `path.<<` (so problems inside it say so),
        in a position table of its own, then re-home its positions onto the mapping's keys where
        the mapping does not say them itself: work in the source's size, not the file's."""
        own = self.keys
        self.keys = {}
        try:
            merged = self.build(source, path + ("<<",))
            apart = self.keys
        finally:
            self.keys = own
        n = len(path) + 1
        for p, found in apart.items():
            own.setdefault(path + p[n:], found)
        return merged


def load_file(text: str, file: str, doc: Document) -> dict[str, Any] | None:
    """Parse one file's text into a top-level mapping; problems go to `doc.diagnostics`.
    Returns None when the file contributes nothing (syntax error, empty, not a mapping)."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            where = err.problem_mark or err.context_mark
            pos = Position(file, where.line + 1, where.column + 1) if where else Position(file, 1, 1)
            problem = err.problem or "invalid YAML"
            if "expected a single document" in f"{err.context} {problem}":
                problem = "one YAML document per file: remove the second `---` document or move it to its own file"
            else:
                context = err.context or ""
                if err.context_mark is not None and err.context_mark is not where:
                    context += f" started at line {err.context_mark.line + 1}"
                problem = f"YAML syntax error: {problem}" + (f" ({context.strip()})" if context.strip() else "")
            doc.diagnostics.append(Diagnostic(pos=pos, key=SYNTAX_KEY, message=problem))
            return None
        except yaml.reader.ReaderError as err:  # a character YAML forbids, e.g. a control character
            before = text[: err.position]
            pos = Position(file, before.count("\n") + 1, len(before) - before.rfind("\n"))
            code = err.character if isinstance(err.character, int) else ord(err.character)
            doc.diagnostics.append(
                Diagnostic(pos=pos, key=SYNTAX_KEY, message=f"YAML syntax error: the character #x{code:04x} is not allowed")
            )
            return None
        except yaml.YAMLError as err:
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
            doc.diagnostics.append(Diagnostic(pos=Position(file, 1, 1), key=SYNTAX_KEY, message=f"YAML error: {problem}"))
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
                    pos=Position(file, root.start_mark.line + 1, root.start_mark.column + 1),
                    key=FILE_KEY,
                    message="the top level must be a mapping of sections (providers, tokens, ...)",
                )
            )
            return None
        try:
            data = builder.mapping(root, ())
        except _TooLarge as err:
            doc.diagnostics.append(
                Diagnostic(
                    pos=err.pos,
                    key=dotted(err.path),
                    message=f"aliases expand to more than {MAX_ALIASED_VALUES:,} values: the file is not read "
                    "(write the values out, or alias less)",
                )
            )
            return None
        _merge_file(doc, file, data, builder)
        return data
    finally:
        loader.dispose()


def _merge_file(doc: Document, file: str, data: dict[str, Any], builder: _FileBuilder) -> None:
    """Merge one file into the document: sections merge by key; a key defined twice is an error."""

    adopted: set[PathKey] = set()  # prefixes whose key positions this file supplies

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
                            pos=doc.position(builder.keys[path]),
                            key=dotted(path),
                            message=f"{dotted(path)} is defined twice: also at {doc.key_pos(path)}",
                        )
                    )
                    continue
                existing[name] = entry
                adopt(path)
        else:
            path = (section,)
            doc.diagnostics.append(
                Diagnostic(
                    pos=doc.position(builder.keys[path]),
                    key=section,
                    message=f"section {section!r} is defined twice: also at {doc.key_pos(path)}",
                )
            )
    # one pass over the file's positions (a pass per adopted entry was quadratic: 1,000 tokens
    # took seconds); prefixes are a section (length 1) or a section entry (length 2)
    for p, found in builder.keys.items():
        if p[:1] in adopted or p[:2] in adopted:
            doc.keys.setdefault(p, found)


def _file_index(doc: Document, file: str) -> int:
    """`file`'s index in `doc.files` (for its marks), listing it there when it is not yet."""
    if not doc.files or doc.files[-1] != file:
        doc.files.append(file)
    return len(doc.files) - 1


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


_OVER_BUDGET = "the inventory's files add up to more than"


def _read(path: Path, inside: Path | None, budget: int) -> bytes | str:
    """The bytes of an inventory file, or why it is not read. A symbolic link must stay `inside`
    the inventory directory (when one is given); the size is checked before reading and the read
    is bounded, so neither a link to a device nor a large file costs more than the limit. Nothing
    of a refused file's content is said."""
    if inside is not None and not path.resolve().is_relative_to(inside):
        return "a symbolic link to outside the inventory directory: not read (copy the file in instead)"
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file: not read"
            if info.st_size > MAX_FILE_BYTES:
                return f"{info.st_size:,} bytes: an inventory file may have {MAX_FILE_BYTES:,} at most (split it)"
            if info.st_size > budget:
                return f"{_OVER_BUDGET} {MAX_TOTAL_BYTES:,} bytes: this file and those after it are not read"
            raw = file.read(min(MAX_FILE_BYTES, budget) + 1)
    except OSError as err:
        return f"cannot read ({err.strerror or type(err).__name__})"
    if len(raw) > min(MAX_FILE_BYTES, budget):  # it grew while being read
        return f"more than {min(MAX_FILE_BYTES, budget):,} bytes: not read"
    return raw


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
    inside = None if root.is_file() else root.resolve()
    budget = MAX_TOTAL_BYTES
    for path in files:
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        display = str(path)
        doc.files.append(display)
        raw = _read(path, inside, budget)
        if isinstance(raw, str):
            doc.diagnostics.append(Diagnostic(pos=Position(display, 1, 1), key=FILE_KEY, message=raw))
            if raw.startswith(_OVER_BUDGET):
                break
            continue
        budget -= len(raw)
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
