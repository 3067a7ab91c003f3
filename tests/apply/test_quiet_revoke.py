"""Revoke only what is quiet. Through the real CLI against the sandboxes.

- The old token of an overlap that its provider reports used after the new value reached its
  last consumer is kept ("still in use by something not in the inventory: kept until quiet"),
  recorded in the ledger; the next plan says so; an apply after the sandbox clock has passed the
  quiet period revokes it. `--force-revoke NAME` revokes it at once.
- GitLab records a use at most every 10 minutes: a use up to 10 minutes before the delivery
  cannot be told from one after it, so that token is kept too.
- A token declared `state: absent` used within `rotation.quiet_period` is kept; once the period
  has passed without a use, it is revoked.

The sandbox clock is the providers' clock. Apply runs at `--now`; where the sandbox clock is an
hour ahead, a use the sandbox records "now" is a use after apply's delivery.
"""

from __future__ import annotations

import json
from datetime import timedelta

import requests
from apply_world import NOW, SUB, ZD_HOST, Scenario

from reconciler import cli
from reconciler.kinds import LastUse
from reconciler.quiet import in_use

NOW_TEXT = "2026-11-22T12:00:00Z"
LATER_TEXT = "2026-11-24T13:00:00Z"  # two days and an hour on: past a quiet period of a day


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def start(live_world, monkeypatch, scenario: Scenario, inventory: str | None = None):
    live = live_world(scenario)
    if inventory is not None:
        (live.inventory / "inventory.yaml").write_text(inventory)
    for name, value in live.env.items():
        monkeypatch.setenv(name, value)
    return live


def zendesk_alive(live, value: str) -> bool:
    """The OAuth token exists (asked through the test hook: asking over HTTP would be a use)."""
    return live.zd.token_by_value(SUB, value) is not None


def use_oauth_token(live, value: str) -> None:
    """Something outside the inventory authenticates with the token."""
    answer = requests.get(f"http://127.0.0.1:{live.zendesk.port}/api/v2/oauth/tokens/current.json",
                          headers={"Authorization": f"Bearer {value}", "Host": ZD_HOST}, timeout=5)
    assert answer.status_code == 200


def ledger(live) -> dict:
    return json.loads((live.inventory.parent / ".reconcile" / "sandbox" / "ledger.json").read_text())


def test_a_token_used_after_delivery_is_kept_until_quiet_and_revoked_by_a_later_apply(live_world, monkeypatch,
                                                                                         capsys):
    live = start(live_world, monkeypatch, Scenario("oauth_token", ("zd_webhook",)))
    live.zd.clock.advance(timedelta(hours=1))  # the provider's clock: an hour after apply's --now
    use_oauth_token(live, live.old)
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW_TEXT)
    assert code == 0, out + err
    assert "still in use by something not in the inventory (last used 2026-11-22T13:00:00Z, after the new value " \
           "reached its last consumer (2026-11-22T12:00:" in out, out
    assert ": kept until quiet; a later apply revokes it once it is quiet (`--force-revoke subject` revokes it " \
           "now)" in out
    assert "Apply complete: 1 rotated, " in out and ", 0 revoked, 0 failed, 1 kept until quiet." in out, out
    assert zendesk_alive(live, live.old), "the old token was revoked although it is in use"
    assert live.works(live.old)  # (a use at the same sandbox time: nothing changes)
    assert live.held("zd_webhook") != live.old  # the consumer has the new value
    kept = ledger(live)["kept"]["subject"]
    assert [k["why"].startswith("still in use by something not in the inventory") for k in kept.values()] == [True]
    code, out, err = run(capsys, "state", "show", "--sandbox")
    assert code == 0 and "kept until quiet (the next apply revokes each once it is" in out, out + err
    assert "  subject: token id 1005, kept 2026-11-22T12:00:00Z: still in use by something not in the inventory" in out

    # the plan says so, and apply keeps it while it is still in use
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW_TEXT)
    assert "an earlier apply kept it (still in use by something not in the inventory" in out, out
    assert "apply keeps it (kept until quiet; `--force-revoke subject` revokes it)" in out

    # two days on, unused since: the next apply revokes it
    live.zd.clock.advance(timedelta(days=2))
    code, out, err = run(capsys, "plan", "--sandbox", "--now", LATER_TEXT)
    assert "an earlier apply kept it (" in out and "quiet now: apply revokes it" in out, out
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", LATER_TEXT)
    assert code == 0 and "1 revoked, 0 failed." in out, out + err
    assert not zendesk_alive(live, live.old)
    assert "kept" not in ledger(live)
    code, out, _ = run(capsys, "plan", "--sandbox", "--now", LATER_TEXT, "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out


def test_force_revoke_revokes_a_token_in_use_at_once(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("oauth_token", ("zd_webhook",)))
    live.zd.clock.advance(timedelta(hours=1))
    use_oauth_token(live, live.old)
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW_TEXT,
                         "--force-revoke", "subject")
    assert code == 0, out + err
    assert "(--force-revoke: its last use was not checked)" in out and "kept until quiet" not in out, out
    assert not zendesk_alive(live, live.old)
    code, _, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW_TEXT, "--force-revoke", "nope")
    assert code == 1 and "--force-revoke nope: the inventory has no token of that name" in err


def test_a_gitlab_use_within_its_10_minute_granularity_before_delivery_cannot_be_excluded(live_world, monkeypatch,
                                                                                         capsys):
    live = start(live_world, monkeypatch, Scenario("group_token", ("hidden_variable",)))
    clock = live.gl.clock
    clock.set(NOW - timedelta(minutes=5))
    assert live.works(live.old)  # used 5 minutes before apply's time; GitLab records it
    clock.set(NOW)
    assert live.works(live.old)  # used again: within 10 minutes of the recorded use, so not recorded
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW_TEXT)
    assert code == 0, out + err
    assert "cannot be excluded: last used 2026-11-22T11:55:00Z, and its provider records a use at most every " \
           "10 minutes, so one until 2026-11-22T12:05:00Z would leave no trace: kept until quiet" in out, out
    assert [t["active"] for t in live.gl.tokens(name="Group bot")] == [True, True]
    assert live.works(live.old)  # within 10 minutes of the recorded use: not recorded
    # a day and more later, no use recorded since: revoked
    clock.advance(timedelta(days=2, hours=1))
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", LATER_TEXT)
    assert code == 0 and "1 revoked" in out, out + err
    assert [t["active"] for t in live.gl.tokens(name="Group bot")].count(True) == 1
    assert not live.works(live.old)


ABSENT = """\
providers:
  zd: {kind: zendesk, subdomain: acme, auth: {oauth_token_env: ZD_TOKEN}}
tokens:
  subject:
    state: absent
    source: {kind: zendesk_oauth_token, provider: zd, client: sync, scopes: [read]}
    rotation: {quiet_period: 12h}
"""


def test_an_absent_token_used_within_the_quiet_period_is_kept_then_revoked(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("oauth_token", ()), ABSENT)
    live.zd.clock.set(NOW - timedelta(hours=3))
    use_oauth_token(live, live.old)  # three hours before apply: within its quiet period of 12h
    live.zd.clock.set(NOW)
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW_TEXT)
    assert code == 0 and "still in use by something not in the inventory (last used 2026-11-22T09:00:00Z, after " \
                         "the start of the quiet period (12h: 2026-11-22T00:00:00Z))" in out, out
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW_TEXT)
    assert code == 0 and ": kept until quiet" in out and "0 revoked" in out, out + err
    assert zendesk_alive(live, live.old)
    live.zd.clock.advance(timedelta(hours=10))
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", "2026-11-22T22:00:00Z")
    assert code == 0 and "1 revoked" in out, out + err
    assert not zendesk_alive(live, live.old)


def test_the_rule_counts_a_use_until_the_end_of_its_recording_interval():
    since = NOW
    assert in_use(LastUse(None, timedelta(minutes=10)), since, "x") is None  # never used
    assert in_use(LastUse(NOW - timedelta(minutes=10), timedelta(minutes=10)), since, "x") is None  # exactly quiet
    assert "cannot be excluded" in in_use(LastUse(NOW - timedelta(minutes=9), timedelta(minutes=10)), since, "x")
    assert "still in use" in in_use(LastUse(NOW + timedelta(seconds=1)), since, "x")
    assert in_use(LastUse(NOW), since, "x") is None  # at the very moment, with no interval: not after
