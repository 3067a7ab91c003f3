"""Render a Plan: text in the style of Terraform (`+ ~ - !`, one block per token with its
consumers under it: the blast radius of each rotation, a summary line), markdown for a
merge-request note (summary on top, a collapsible block per token), and JSON (schema
`reconciler/plan.schema.json`). Colour only on a terminal (rich), plain lines otherwise and when
`CI=true`. No value ever: consumers show fingerprints (`sha256:ab12…`), shortened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import TextIO

from rich.console import Console
from rich.text import Text

from reconciler import markdown as md
from reconciler.inventory.durations import expires_words
from reconciler.plan import Change, ConsumerPlan, Finding, Plan, TokenPlan

TOKEN_SYMBOL = {"create": "+", "rotate": "~", "revoke": "-", "none": " "}
CONSUMER_SYMBOL = {"create": "+", "update": "~", "recreate": "-/+", "none": " "}
STYLE = {"+": "green", "~": "yellow", "-/+": "yellow", "-": "red", "!": "bold red", " ": "", "warning": "yellow",
         "error": "bold red"}

# A line of text output and the key in STYLE that colours it.
StyledLine = tuple[str, str]


def short_fingerprint(value: object) -> object:
    if isinstance(value, str) and value.startswith("sha256:") and len(value) > 19:
        return value[:19] + "…"
    return value


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    asserted = f"{s['asserted']} asserted, " if s["asserted"] else ""  # only once a person asserted one
    line = (f"Plan: {s['create']} to create, {s['rotate']} to rotate, {s['revoke']} to revoke; "
            f"consumers: {s['consumer_create']} to create, {s['consumer_update']} to update, "
            f"{s['consumer_recreate']} to recreate, "
            f"{s['verified']} verified, {asserted}{s['unverifiable']} unverifiable; "
            f"{s['warnings']} warning(s), {s['errors']} error(s).")
    if not plan.has_changes and not s["errors"]:
        line = "No changes. " + line
    return line


def _strategy_words(t: TokenPlan) -> str:
    if t.action == "none":
        return ""
    if t.action == "revoke":
        return "revoke"
    return {"overlap": "by overlap: new beside old, deliver, verify, revoke old",
            "in_place": "in place: the old value dies at once",
            "external": "(a person supplies the new value)"}.get(str(t.strategy), str(t.strategy))


def _live_words(t: TokenPlan) -> str:
    if not t.live:
        return "live: none"
    parts = [f"live: #{t.live['id']}"]
    if "created_at" in t.live:
        parts.append(f"created {t.live['created_at'][:10]} ({t.live['age_days']}d ago)")
    if "minutes_left" in t.live:  # an expiry to the minute: in the unit that fits
        parts.append(expires_words(timedelta(minutes=t.live["minutes_left"])))
    elif "expires_at" in t.live:
        parts.append(f"expires {t.live['expires_at']} ({t.live['days_left']}d left)")
    else:
        parts.append("no expiry")
    if "refresh_minutes_left" in t.live:
        parts.append("refresh token " + expires_words(timedelta(minutes=t.live["refresh_minutes_left"])))
    if "last_used_at" in t.live:
        parts.append(f"last used {t.live['last_used_at'][:10]}")
    return ", ".join(parts)


def _change_words(ch: Change) -> str:
    return f"{ch.attribute}: {short_fingerprint(ch.old)!s} -> {short_fingerprint(ch.new)!s}"


def _token_lines(t: TokenPlan) -> list[StyledLine]:
    """(symbol, line) pairs of one token block; the symbol picks the colour."""
    symbol = "!" if t.blocked else TOKEN_SYMBOL[t.action]
    head = f"{symbol} token {t.name} ({t.source_kind}"
    head += f", {t.action} {_strategy_words(t)})" if t.action not in ("none", "revoke") else f", {t.action})"
    lines = [(symbol, f"{head}   {t.at}")]
    lines.append((" ", f"    {_live_words(t)}"))
    lines += _chain_lines(t)
    for r in t.reasons:
        lines.append((symbol, f"    because {r.message}   {r.at}"))
    if t.escrow:
        lines.append((" ", f"    escrow: {'the escrow key' if t.escrow == 'key' else t.escrow.split(':', 1)[1]}"))
    if t.recover_from:
        lines.append((" ", f"    current value recovered from {t.recover_from}"))
    if t.migration:
        lines.append(("-" if t.retire else " ", f"    migration: {t.migration}"))
    if t.approval:
        lines.append((" ", f"    approved: {t.approval}"))
    # a finding about one consumer is printed under it, so that each consumer appears once
    for c in t.consumers:
        lines.extend(_consumer_lines(c, [f for f in t.findings if f.consumer == c.identity]))
    shown = {c.identity for c in t.consumers}
    for f in t.findings:
        if f.consumer not in shown:
            lines.extend(_finding_lines(f, "    "))
    return lines


def _chain_lines(t: TokenPlan) -> list[StyledLine]:
    """The token it is created with, and the tokens created with it (`created_with`)."""
    lines: list[StyledLine] = []
    if t.created_with:
        lines.append((" ", f"    created with {t.created_with} ({_creator_words(t.creator_value)})"))
    if t.creates:
        kept = ": its rotation keeps that user" if t.action == "rotate" else ""
        lines.append((" ", f"    creates {', '.join(t.creates)} (owned by its user, done after it{kept})"))
    return lines


def _creator_words(where: str | None) -> str:
    """Where apply takes the value of the token another is created with."""
    if where is None:
        return "its current value is not at hand"
    if where == "minted":
        return "rotated first; its new value creates this one"
    if where.startswith("consumer:"):
        return f"its current value read back from {where.split(':', 1)[1]}"
    return f"its current value from the {where}"


def _consumer_lines(c: ConsumerPlan, findings: list[Finding]) -> list[StyledLine]:
    symbol = CONSUMER_SYMBOL[c.action]
    if c.state in ("stale", "unverifiable", "missing", "error") and c.action == "none":
        symbol = "!"
    action = c.action if c.action != "none" else c.state
    held = f" [{short_fingerprint(c.fingerprint)}]" if c.fingerprint else ""
    lines = [(symbol, f"    {symbol} {c.label}: {action}{held}   {c.at}"),
             (" ", f"        {c.state}: {c.why}")]
    for ch in c.changes:
        lines.append((symbol, f"        {_change_words(ch)}"))
    for f in findings:
        # the consumer's label and position are on its line above: not repeated
        message = f.message.removeprefix(c.label).lstrip(": ")
        lines.extend(_finding_lines(replace(f, message=message, at="" if f.at == c.at else f.at), "        "))
    return lines


def _finding_lines(f: Finding, indent: str) -> list[StyledLine]:
    at = f"   {f.at}" if f.at else ""
    lines: list[StyledLine] = [(f.severity, f"{indent}! {f.severity}: {f.message}{at}")]
    if f.detail:
        lines.extend((" ", f"{indent}    {line}") for line in f.detail.rstrip().splitlines())
    return lines


def text_lines(plan: Plan) -> Iterator[StyledLine]:
    """The lines of the text, made one token block at a time."""
    quiet = [t for t in plan.tokens if not (t.changes or t.findings)]
    for t in plan.tokens:
        if t.changes or t.findings:
            yield from _token_lines(t)
            yield " ", ""
    if quiet:
        yield " ", f"  {len(quiet)} token(s) up to date: {', '.join(t.name for t in quiet)}"
        yield from ((" ", f"    {t.name}: {t.approval}") for t in quiet if t.approval)
        yield " ", ""
    for f in plan.findings:
        yield from _finding_lines(f, "")
    if plan.findings:
        yield " ", ""
    yield " ", summary_line(plan)


def render_text(plan: Plan, stream: TextIO | None = None, colour: bool | None = None) -> str:
    """The plan as text: written to `stream` (coloured when it is a terminal) as each token's
    block is made, or returned plain when there is no stream. A large plan's text is megabytes
    (two bytes a character once one line has a character outside Latin-1): a stream gets it
    without the whole text, or all its lines, ever being held at once."""
    lines = text_lines(plan)
    if stream is None:
        return "\n".join([line for _, line in lines] + [""])
    if colour if colour is not None else use_colour(stream):
        console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=True)
        for symbol, line in lines:
            console.print(Text(line, style=STYLE.get(symbol, "")))
    else:
        stream.writelines(f"{line}\n" for _, line in lines)
    return ""


def render_markdown(plan: Plan) -> str:
    """The plan as a merge-request note. Every inventory or server string goes through
    `reconciler.markdown`, so none can end a block or start a line (a GitLab quick action)."""
    s = plan.summary()
    shown = [t for t in plan.tokens if t.changes or t.findings]
    lines = ["### reconcile plan", "", summary_line(plan), "",
             "| token | action | reasons | consumers |", "|---|---|---|---|"]
    lines += [_markdown_row(t) for t in shown]
    if s["errors"] or s["warnings"]:
        lines += ["", f"{s['errors']} error(s), {s['warnings']} warning(s)."]
    lines.append("")
    for t in shown:
        symbol = TOKEN_SYMBOL[t.action] if not t.blocked else "!"
        lines += _markdown_details(f"<code>{md.html(f'{symbol} {t.name}')}</code>: {md.html(f'{t.action} ({t.source_kind})')}",
                                   [line for _, line in _token_lines(t)], "diff")
    if plan.findings:
        lines += _markdown_details("other findings", [line for f in plan.findings for _, line in _finding_lines(f, "")])
    quiet = [t.name for t in plan.tokens if not (t.changes or t.findings)]
    if quiet:
        lines.append(f"Up to date: {', '.join(md.code(n) for n in quiet)}")
        lines.append("")
    approved = [t for t in plan.tokens if t.approval and not (t.changes or t.findings)]
    if approved:
        lines += _markdown_details("scope approvals", [f"{t.name}: {t.approval}" for t in approved])
    lines.append(f"<sub>inventory {md.html(plan.inventory_digest[:19])}… · live state {md.html(plan.observed_digest[:19])}… · "
                 f"{plan.generated_at.isoformat().replace('+00:00', 'Z')}</sub>")
    return "\n".join(lines) + "\n"


def _markdown_row(t: TokenPlan) -> str:
    action = ("**blocked** " if t.blocked else "") + t.action + (f" ({t.strategy})" if t.action in ("create", "rotate") else "")
    reasons = "; ".join(r.message for r in t.reasons) or "-"
    touched = sum(1 for c in t.consumers if c.action != "none")
    return f"| {md.code(t.name, cell=True)} | {md.inline(action)} | {md.inline(reasons)} | {touched} of {len(t.consumers)} |"


def _markdown_details(summary: str, content: list[str], info: str = "") -> list[str]:
    """A collapsible block: `summary` (HTML, already escaped) over `content` in a code block."""
    return [f"<details><summary>{summary}</summary>", "", *md.fenced(content, info), "", "</details>", ""]


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2) + "\n"


def render(plan: Plan, fmt: str, stream: TextIO | None = None) -> str:
    """Render in `fmt` (text, markdown, json); write to `stream` when given (then the text
    format returns nothing: `render_text`)."""
    if fmt == "text":
        return render_text(plan, stream)
    text = render_markdown(plan) if fmt == "markdown" else render_json(plan)
    if stream is not None:
        stream.write(text)
    return text


def plain_text(plan: Plan) -> str:
    return render_text(plan)


__all__ = ["render", "render_text", "render_markdown", "render_json", "summary_line", "plain_text"]
