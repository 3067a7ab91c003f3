"""Plans say exactly what apply will do, through the real CLI on the example inventory and its demo
world (`plan --sandbox`, then `apply --sandbox --auto-approve`):

- a GitLab webhook in `mode: recreate` is a `recreate` in the text, markdown and JSON plans (what
  is copied, that its id changes) and in apply's report, which names the old and the new id;
- the plan's counts and apply's agree (a value a person supplies is a rotation on both sides);
- each consumer appears once in the plan: a finding about it is printed under it;
- the tool's own credential is never "unmanaged", in the plan as in `check`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from reconciler import cli
from reconciler.plan_model import Plan

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T12:00:00Z"
SCHEMA = json.loads((ROOT / "reconciler" / "plan.schema.json").read_text())
HOOK = "webhook 'https://deploy.support-ops.example.com/hooks/readiness'"


@pytest.fixture
def example(workdir):
    """The example inventory, with unverifiable consumers rotating their token
    (`on_unverifiable: rotate`), so that the demo world's plan has the webhook recreate and the
    external value these tests are about."""
    shutil.copytree(ROOT / "inventory", workdir / "inventory")
    policy = workdir / "inventory" / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_age: 180d}", "max_age: 180d, on_unverifiable: rotate}", 1))
    return workdir


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def plan_json(capsys) -> dict:
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    return data


def hook_plan(data: dict) -> dict:
    return next(c for t in data["tokens"] for c in t["consumers"] if c["label"].startswith(HOOK))


def test_a_recreate_is_named_in_every_plan_format_and_in_apply(example, capsys):
    code, text, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 0, err
    line = next(line for line in text.splitlines() if HOOK in line and "because" not in line)
    assert line.startswith("    -/+ ") and line.rsplit("   ", 1)[0].endswith(": recreate")
    assert "the hook is deleted and created again from a copy of its readable fields" in text
    assert "the declared custom header X-Source and the value in its custom header X-Deploy-Token" in text
    assert "its id #1 changes" in text
    assert "1 to recreate" in text.splitlines()[-1]

    code, markdown, _ = run(capsys, "plan", "--sandbox", "--now", NOW, "--format", "markdown")
    assert code == 0 and f"-/+ {HOOK}" in markdown and "its id #1 changes" in markdown

    data = plan_json(capsys)
    hook = hook_plan(data)
    assert (hook["action"], hook["live_id"], hook["value"]) == ("recreate", "1", "new")
    assert "deleted and created again" in hook["why"] and "its id #1 changes" in hook["why"]
    assert data["summary"]["consumer_recreate"] == 1
    assert Plan.from_json(data).summary() == data["summary"]  # a saved plan reads back as it was

    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0, err
    done = re.search(rf"{re.escape(HOOK)}[^\n]*: recreated with the new value: deleted #1, created #(\d+) "
                     r"\(its id changed\)", out)
    assert done is not None, out
    assert "(1 by recreate)" in out
    after = hook_plan(plan_json(capsys))
    assert after["live_id"] == done.group(1) != "1" and after["action"] == "none"


def test_a_plan_file_of_before_the_recreate_action_still_reads():
    """Adding the action is additive (schema_version stays 1): a plan saved by an earlier release,
    with no `consumer_recreate` count, is read back."""
    old = json.loads((ROOT / "tests" / "engine" / "golden" / "plan.json").read_text())
    del old["summary"]["consumer_recreate"]
    for token in old["tokens"]:
        for consumer in token["consumers"]:
            consumer["action"] = "update" if consumer["action"] == "recreate" else consumer["action"]
    jsonschema.validate(old, SCHEMA)
    plan = Plan.from_json(old)
    updates = sum(c["action"] == "update" for t in old["tokens"] for c in t["consumers"])
    assert updates > 0
    assert plan.summary()["consumer_recreate"] == 0 and plan.summary()["consumer_update"] == updates


def test_plan_and_apply_counts_agree(example, capsys):
    summary = plan_json(capsys)["summary"]
    assert (summary["create"], summary["rotate"]) == (0, 6)  # one of them external: a person supplies it
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0, err
    assert "statuspage-api-key: took the new value a person supplied" in out
    writes = summary["consumer_create"] + summary["consumer_update"] + summary["consumer_recreate"]
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"Apply complete: {summary['rotate']} rotated, {writes} delivered "
                           f"({summary['consumer_recreate']} by recreate), "), last


def test_each_consumer_appears_once_with_its_findings_under_it(example, capsys):
    code, text, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 0, err
    data = plan_json(capsys)
    unverifiable = [c for t in data["tokens"] for c in t["consumers"] if c["state"] == "unverifiable"]
    assert len(unverifiable) == 6
    lines = text.splitlines()
    for consumer in unverifiable:
        # named once: on its own line (a reason line may cite it as the cause of a rotation)
        naming = [n for n, line in enumerate(lines) if consumer["label"] in line and "    because " not in line]
        assert len(naming) == 1, (consumer["label"], [lines[n] for n in naming])
        # and its warning is kept, right under it
        block = lines[naming[0] + 1:naming[0] + 5]
        assert any(line.startswith("        ! warning: cannot be verified (no ledger record)") for line in block), block
    # the information is all there: every warning is still counted and still in the JSON
    warnings = [f for t in data["tokens"] for f in t["findings"] if f["code"] == "unverifiable"]
    assert len(warnings) == 6 and all(f["consumer"] for f in warnings)
    assert text.count("cannot be verified (no ledger record)") == 6


def test_the_tools_own_credential_is_never_unmanaged(example, capsys):
    code, text, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 0, err
    unmanaged = [line for line in text.splitlines() if "unmanaged:" in line]
    assert not [line for line in unmanaged if "reconcile sandbox credential" in line]
    # other tokens no source names still are, a project access token among them (a kind a
    # credential can be: the rule looks at the id, not the kind alone)
    assert any("'Legacy Migration' (#5)" in line for line in unmanaged)
    assert any("'Old export script' (#1006)" in line for line in unmanaged)
    code, report, err = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "json")
    assert code in (0, 2), err
    items = json.loads(report)["items"]
    assert not [i for i in items if i["category"] == "unmanaged" and i.get("name") == "reconcile sandbox credential"]
    assert [i for i in items if i["category"] == "unmanaged" and i.get("name") == "Legacy Migration"]
