"""The planner and apply's ordering for tokens created with another token's value
(`created_with`). Pure: hand-built observations, no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from engine_helpers import NOW, inventory, live, observed, pos, rotation, token

from reconciler.apply import creators_first
from reconciler.kinds.gitlab_access_token import GitLabProjectAccessToken
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.plan import TokenPlan, plan

BOT = GitLabProjectAccessToken(provider="gl", project="g/p", name="bot", scopes=("api",), access_level=40)
TRIGGER = GitLabPipelineTrigger(provider="gl", project="g/p", description="sync", created_with="bot",
                                pos=pos(5), key_pos={"created_with": pos(6)})


def planned(bot_age: int, trigger_age: int, value_at: str | None) -> dict[str, TokenPlan]:
    bot = token("bot", BOT)
    trigger = token("trigger", TRIGGER)
    seen = observed([(bot, live("1", age=bot_age, scopes=("api",), access_level=40)), (trigger, live("9", age=trigger_age, expires_in=None))])
    seen.sources["bot"] = replace(seen.sources["bot"], value_at=value_at)
    rot = rotation(max_age=timedelta(days=90))
    inv = inventory(replace(bot, rotation=rot), replace(trigger, rotation=rot))
    return {tp.name: tp for tp in plan(inv, seen, None, NOW).tokens}


def test_the_chain_is_in_the_plan_both_ways():
    tps = planned(bot_age=100, trigger_age=10, value_at=None)
    assert tps["bot"].creates == ("trigger",) and tps["bot"].action == "rotate"
    assert tps["trigger"].created_with == "bot" and tps["trigger"].creator_value == "minted"


def test_a_creator_not_rotated_lends_the_value_observe_read_back():
    tps = planned(bot_age=10, trigger_age=100, value_at="consumer:c")
    assert tps["bot"].action == "none"
    assert tps["trigger"].action == "rotate" and tps["trigger"].creator_value == "consumer:c"
    assert not [f for f in tps["trigger"].findings if f.code == "creator_value"]


def test_without_the_creator_value_a_due_token_waits_and_says_so():
    tps = planned(bot_age=10, trigger_age=100, value_at=None)
    trigger = tps["trigger"]
    assert trigger.creator_value is None
    [waits] = [f for f in trigger.findings if f.code == "creator_value"]
    assert waits.severity == "warning" and waits.at == "inventory/tokens.yaml:6"
    assert "never falls back to the provider's credential" in waits.message


def test_a_token_with_nothing_to_do_needs_no_creator_value():
    tps = planned(bot_age=10, trigger_age=10, value_at=None)
    assert not tps["trigger"].changes and not tps["trigger"].findings


def tp(name: str, created_with: str | None = None) -> TokenPlan:
    return TokenPlan(name=name, source_kind="x", source_identity=name, provider="gl", at="", action="rotate",
                     strategy="overlap", created_with=created_with)


def test_apply_works_a_creator_before_what_it_creates_and_keeps_the_rest_in_order():
    work = [tp("a-trigger", "z-bot"), tp("m"), tp("z-bot", "root"), tp("root")]
    assert [t.name for t in creators_first(work)] == ["root", "z-bot", "a-trigger", "m"]
    # a creator outside the work (not due) orders nothing
    assert [t.name for t in creators_first([tp("b", "elsewhere"), tp("a")])] == ["b", "a"]
