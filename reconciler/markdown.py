"""Escaping for the markdown we post on GitLab (merge-request notes, the check issue).

Inventory strings and server answers (a consumer's setting, a webhook name, an error message) are
chosen by whoever writes the inventory or controls a provider. Posted unescaped, a newline and
three backticks end a code block, and a line such as `/approve` after it runs as a GitLab quick
action in the name of the bot that posts the note. Every producer of markdown puts such strings
through one of these, chosen by where the string lands:

- `inline`: running text, a table cell, a list item, a heading: one line, with the characters that
  open code spans, links, HTML or cells escaped. A quick action must start its line, so a string
  that can never start a line can never be one.
- `code`: an inline code span whose backtick run is longer than any run in the text.
- `html`: text inside an HTML element (`<summary>`), on one line.
- `fenced`: a fenced code block whose fence is longer than any backtick run in its content, so no
  content line can close it (and GitLab runs no quick action inside a code block).
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Iterable

# every character that ends a line for some markdown reader or browser, and the other control
# characters (a terminal escape has no business in a note either)
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# characters that open a code span, a link or image, an HTML tag or comment, an entity, a table
# cell, or escape the next one
_INLINE_SPECIAL = re.compile(r"([\\`<>\[\]|&])")
_BACKTICKS = re.compile(r"`+")
MIN_FENCE = 3


def one_line(text: object) -> str:
    """`text` on one line: every line break and control character becomes a space."""
    return _LINE_BREAKS.sub(" ", str(text))


def inline(text: object) -> str:
    """`text` for running markdown: one line, its markup characters escaped."""
    return _INLINE_SPECIAL.sub(r"\\\1", one_line(text))


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)


def code(text: object, *, cell: bool = False) -> str:
    """`text` as an inline code span: delimited by more backticks than any run inside it. In a
    table `cell`, `|` is escaped even there: GitLab splits cells before it reads code spans."""
    flat = one_line(text)
    ticks = "`" * (_longest_backticks(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    span = f"{ticks}{pad}{flat}{pad}{ticks}"
    return span.replace("|", "\\|") if cell else span


def html(text: object) -> str:
    """`text` inside an HTML element, on one line."""
    return _html.escape(one_line(text), quote=False)


def fence_for(lines: Iterable[str]) -> str:
    """A backtick fence longer than any backtick run in `lines` (at least three)."""
    return "`" * max(MIN_FENCE, max((_longest_backticks(line) for line in lines), default=0) + 1)


def fenced(lines: Iterable[str], info: str = "") -> list[str]:
    """A fenced code block holding `lines` (each flattened to one line) that no line can close."""
    body = [one_line(line) for line in lines]
    fence = fence_for(body)
    return [fence + info, *body, fence]


__all__ = ["code", "fence_for", "fenced", "html", "inline", "one_line"]
