"""A pipeline trigger created with a project access token's value (`created_with`), through the
real CLI against the sandboxes: the bot user owns it, the bot token's rotation does not orphan it,
the plan shows the chain, and without the bot token's current value apply waits instead of
falling back to the provider's credential."""

from __future__ import annotations

import json
import re

import pytest
from apply_world import NOW_TEXT, Live, Scenario

from reconciler import cli


def run(live: Live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        *args: str) -> tuple[int, str, str]:
    for name, value in live.env.items():
        monkeypatch.setenv(name, value)
    code = cli.main([*args, "--sandbox", "--inventory", str(live.inventory), "--now", NOW_TEXT])
    out, err = capsys.readouterr()
    return code, out, err


def trigger_posts(live: Live) -> list[str]:
    """Requests that created a trigger, by the username that sent them."""
    return [e.path for e in live.gitlab.log.snapshot() if e.method == "POST" and re.search(r"/triggers$", e.path)]


def test_the_bot_owned_trigger_survives_the_rotation_of_the_bot_token(live_world, capsys, monkeypatch):
    live = live_world(Scenario("project_token", ("variable",), chain="fresh"))
    code, out, err = run(live, capsys, monkeypatch, "plan", "--detailed-exitcode")
    assert code == 2, err
    assert "~ token subject (gitlab_project_access_token, rotate in place" in out
    assert "    creates bot-trigger (owned by its user, done after it: its rotation keeps that user)" in out
    assert "1 token(s) up to date: bot-trigger" in out
    # no ledger yet: the trigger's variable is verified only because the trigger list was read as
    # its owner (the bot) sees it, with the bot token's value read back from its variable
    code, out, err = run(live, capsys, monkeypatch, "plan", "--format", "json")
    bot_trigger = next(t for t in json.loads(out)["tokens"] if t["name"] == "bot-trigger")
    assert bot_trigger["creator_value"] == "minted"
    [variable] = bot_trigger["consumers"]
    assert variable["state"] == "verified", variable

    code, out, err = run(live, capsys, monkeypatch, "apply", "--auto-approve")
    assert code == 0, out + err
    assert "subject: rotated project access token" in out
    assert "bot-trigger:" not in out  # not due: untouched
    [trigger] = live.bot_triggers()
    assert trigger["owner_id"] == live.bot_id()  # the rotation kept the bot user
    assert live.trigger_works(live.trigger), "the trigger died with the rotation of its owner's token"
    assert not live.works(live.old) and live.works(live.held("variable") or "")

    code, out, err = run(live, capsys, monkeypatch, "plan", "--detailed-exitcode")
    assert code == 0, out + err
    assert "No changes." in out
    code, out, err = run(live, capsys, monkeypatch, "plan", "--format", "json")
    bot_trigger = next(t for t in json.loads(out)["tokens"] if t["name"] == "bot-trigger")
    assert bot_trigger["created_with"] == "subject"
    assert bot_trigger["creator_value"] == "consumer:gitlab_ci_variable:gl:project:acme/app:TOKEN:*"
    assert [c["state"] for c in bot_trigger["consumers"]] == ["verified"]


def test_a_trigger_created_with_the_bot_token_is_owned_by_the_bot(live_world, capsys, monkeypatch):
    live = live_world(Scenario("project_token", ("variable",), chain="aged"))
    live.gl.store.tables["triggers"].clear()  # the bot's trigger is gone: created anew
    code, out, err = run(live, capsys, monkeypatch, "apply", "--auto-approve")
    assert code == 0, out + err
    assert out.index("subject: rotated project access token") < out.index("bot-trigger: created pipeline trigger")
    [trigger] = live.bot_triggers()
    assert trigger["owner_id"] == live.bot_id()
    held = live.held_trigger()
    assert held == trigger["value"] and live.trigger_works(held)
    code, out, _ = run(live, capsys, monkeypatch, "plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_a_due_trigger_is_renewed_with_the_new_bot_value(live_world, capsys, monkeypatch):
    live = live_world(Scenario("project_token", ("variable",), chain="aged"))
    code, out, err = run(live, capsys, monkeypatch, "apply", "--auto-approve")
    assert code == 0, out + err
    assert "Apply complete: 2 rotated" in out
    [trigger] = live.bot_triggers()
    assert trigger["owner_id"] == live.bot_id() and trigger["value"] != live.trigger
    assert not live.trigger_works(live.trigger) and live.trigger_works(live.held_trigger())
    assert run(live, capsys, monkeypatch, "plan", "--detailed-exitcode")[0] == 0


def test_a_person_owned_trigger_is_taken_over_by_the_bot(live_world, capsys, monkeypatch):
    """Adopting `created_with` on a trigger a person made: it is created again with the bot's
    value, so the bot owns it, and the person's trigger is revoked."""
    live = live_world(Scenario("project_token", ("variable",), chain="person"))
    code, out, err = run(live, capsys, monkeypatch, "plan", "--target", "bot-trigger")
    assert code == 0, err
    assert re.search(r"because the trigger #\d+ belongs to user #\d+, not to the user of subject: created again "
                     r"with subject's value so that its user owns it", out), out
    assert "    created with subject (its current value read back from gitlab_ci_variable:" in out
    code, out, err = run(live, capsys, monkeypatch, "apply", "--auto-approve", "--target", "bot-trigger")
    assert code == 0, out + err
    [trigger] = live.bot_triggers()
    assert trigger["owner_id"] == live.bot_id()
    assert live.trigger_works(live.held_trigger()) and not live.trigger_works(live.trigger)
    assert run(live, capsys, monkeypatch, "plan", "--detailed-exitcode", "--target", "bot-trigger")[0] == 0


def test_without_the_bot_value_the_trigger_waits(live_world, capsys, monkeypatch):
    """The bot token's only consumer is hidden: its value cannot be read back, and the bot token is
    not rotated in this run (only the trigger is targeted): the trigger waits; nothing is created
    with the provider's credential."""
    live = live_world(Scenario("project_token", ("hidden_variable",), chain="aged"))
    code, out, err = run(live, capsys, monkeypatch, "plan", "--target", "bot-trigger")
    assert code == 0, err
    assert "    created with subject (its current value is not at hand)" in out
    assert "bot-trigger is created with subject, whose current value is not at hand" in out
    code, out, err = run(live, capsys, monkeypatch, "apply", "--auto-approve", "--target", "bot-trigger")
    assert code == 0, out + err
    assert "Waiting for a person: bot-trigger: it is created with subject, whose current value is not at hand" in out
    assert trigger_posts(live) == []
    [trigger] = live.bot_triggers()
    assert trigger["value"] == live.trigger  # left as it is
