"""Markdown we post on GitLab (the plan note, the apply note, the check issue) carries inventory
strings and server answers. None of them may end a code block or put a GitLab quick action
(`/approve`, `/merge`...) at the start of a line: GitLab would run it as the bot that posts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from reconciler import gitlab_ci as ci
from reconciler import markdown as md
from reconciler.check import ApiTokenRisk, CheckConfig, Item, Report, issue_body
from reconciler.check import render_markdown as check_markdown
from reconciler.plan import Change, ConsumerPlan, Finding, Plan, Reason, TokenPlan
from reconciler.render import render_markdown

QUICK_ACTIONS = ["/approve", "/label ~x", "/assign @x", "/close", "/merge"]
# a block-ending breakout followed by quick actions on their own lines, with every fence style
BREAKOUT = "x\n```\n" + "\n".join(QUICK_ACTIONS) + "\n````\n~~~\n" + "\r\n/approve\u2028/merge"
CTX = ci.CIContext(server_url="https://gitlab.example.com", project="100", mr_iid=4, commit_sha="ab" * 20)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def blocks(text: str) -> tuple[list[str], list[list[str]]]:
    """(lines outside fenced code blocks, the content of each block), as CommonMark reads them:
    a block closes only on a line of its fence character at least as long as its opening fence."""
    outside: list[str] = []
    found: list[list[str]] = []
    fence: str | None = None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                found.append([])
            else:
                outside.append(line)
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
            fence = None
        else:
            found[-1].append(line)
    assert fence is None, "a code block is left open"
    return outside, found


def assert_no_quick_action(text: str, expected_blocks: int) -> None:
    outside, found = blocks(text)
    starts = [line for line in outside if line.lstrip().startswith("/")]
    assert starts == [], f"quick actions outside a code block: {starts}"
    assert len(found) == expected_blocks, "content closed a code block early"
    for line in outside:
        assert "\r" not in line and "\u2028" not in line


def hostile_plan() -> Plan:
    consumer = ConsumerPlan(identity="c", kind="gitlab_ci_variable", label=f"CI variable {BREAKOUT}", provider="gl",
                            at="inventory/t.yaml:9", state="stale", action="update", why=BREAKOUT,
                            changes=(Change(attribute=BREAKOUT, old=BREAKOUT, new="b"),))
    token = TokenPlan(name="sync` | /approve", source_kind="gitlab_pipeline_trigger", source_identity="t",
                      provider="gl", at="inventory/t.yaml:3", action="rotate", strategy="overlap",
                      reasons=(Reason(code="consumers", message=BREAKOUT, at="inventory/t.yaml:9"),),
                      consumers=(consumer,),
                      findings=(Finding(severity="warning", code="w", message=BREAKOUT, detail=BREAKOUT),))
    quiet = TokenPlan(name="quiet\n/close", source_kind="external", source_identity="q", provider=None,
                      at="inventory/t.yaml:20", action="none", strategy=None)
    return Plan(generated_at=datetime(2026, 6, 1, tzinfo=UTC), inventory_digest="sha256:" + "1" * 64,
                observed_digest="sha256:" + "2" * 64, tokens=(token, quiet),
                findings=(Finding(severity="error", code="e", message=BREAKOUT, detail="```` ~~~\n/merge"),))


def test_the_plan_note_holds_no_quick_action_and_no_early_fence_end():
    body = ci.plan_note_body(hostile_plan(), CTX)
    assert_no_quick_action(body, expected_blocks=2)  # the token's diff, the other findings
    assert "/approve" in body  # still shown, where it cannot run


def test_labels_and_table_cells_stay_on_one_line():
    text = render_markdown(hostile_plan())
    row = next(line for line in text.split("\n") if line.startswith("| ") and "rotate" in line)
    assert row.count(" | ") == 3, row  # the reasons did not add a cell
    summary = next(line for line in text.split("\n") if line.startswith("<details><summary><code>"))
    assert summary.endswith("</summary>")


def test_the_apply_note_and_the_missing_plan_note_hold_no_quick_action():
    body = ci.apply_note_body(f"applying...\n{BREAKOUT}\nerror: {BREAKOUT}", 1, CTX)
    assert_no_quick_action(body, expected_blocks=1)
    assert_no_quick_action(ci.missing_plan_body(CTX, BREAKOUT), expected_blocks=0)


def hostile_report() -> Report:
    risk = ApiTokenRisk(days_to_cutoff=10, idle_days=None, deactivates_in=None,
                        replacement=f"tokens:\n  x: {BREAKOUT}\n", cutoff=date(2026, 7, 1))
    item = Item(key="live:x", category="api_token", provider=f"zd\n{BREAKOUT}", kind="zendesk_api_token",
                name=BREAKOUT, token="t`/close", where=BREAKOUT, owner="@ops\n/merge", next_apply=BREAKOUT,
                api_token=risk)
    return Report(generated_at=datetime(2026, 6, 1, tzinfo=UTC), within_days=30, items=(item,),
                  scan_errors=(BREAKOUT,), providers={f"zd\n{BREAKOUT}": BREAKOUT})


def test_the_check_report_and_issue_hold_no_quick_action():
    assert_no_quick_action(check_markdown(hostile_report()), expected_blocks=1)
    body, _, _ = issue_body(hostile_report(), None, CheckConfig())
    assert_no_quick_action(body, expected_blocks=1)


@pytest.mark.parametrize("text", ["```", "a ` b", "``x``", "`", "\n/approve", BREAKOUT])
def test_escapers_keep_one_line_and_outlast_every_backtick_run(text):
    span = md.code(text)
    ticks = len(span) - len(span.lstrip("`"))
    assert "\n" not in span and "`" * ticks not in span[ticks:-ticks]
    assert "\n" not in md.inline(text) and "\n" not in md.html(text)
    assert_no_quick_action("\n".join(md.fenced(text.split("\n"))), expected_blocks=1)
