"""The refreshable OAuth grant (`zendesk_oauth_grant`) through the real CLI against the sandboxes
on one clock: 30-minute access tokens stay verified across simulated days with an hourly
scheduled apply, a consumer never holds an expired token for longer than one interval, the
refresh token is kept sealed in the state and never printed, a lost grant is a clear error
saying how to authorise again (or falls back to client_credentials where declared), and the
plan and check show both expiries to the minute."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from grant_world import GrantWorld

from reconciler import cli

INTERVAL = timedelta(hours=1)  # the CI schedule


@pytest.fixture
def world(workdir, monkeypatch):
    started: list[GrantWorld] = []

    def start(**kwargs) -> GrantWorld:
        w = GrantWorld.start(workdir, **kwargs)
        for name, value in w.env.items():
            monkeypatch.setenv(name, value)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def run(capsys, w: GrantWorld, *args: str) -> tuple[int, str]:
    code = cli.main([*args, "--sandbox", "--now", w.now])
    out, err = capsys.readouterr()
    text = out + err
    for secret in (w.refresh, w.env["SYNC_CLIENT_SECRET"]):
        assert secret not in text, "a secret was printed"
    return code, text


def apply(capsys, w: GrantWorld) -> str:
    code, out = run(capsys, w, "apply", "--auto-approve")
    assert code == 0, out
    return out


def test_30_minute_tokens_stay_verified_across_days_with_an_hourly_apply(world, capsys, workdir):
    w = world()
    expired_for = timedelta(0)
    for hour in range(50):  # two simulated days and a bit
        out = apply(capsys, w)
        held = w.held()
        assert held["variable"] == held["webhook"], f"hour {hour}: the consumers hold different values"
        assert w.works(held["variable"]), f"hour {hour}: a consumer holds a token that does not work"
        row = w.token_row(held["variable"])
        assert row is not None and row["refresh_token"] is not None
        code, plan = run(capsys, w, "plan", "--detailed-exitcode")
        assert code == 0 and "No changes." in plan, f"hour {hour}: {plan}"
        # until the next scheduled run, the consumers hold this token: expired for at most
        expires = datetime_of(row["expires_at"])
        w.clock.advance(INTERVAL)
        expired_for = max(expired_for, w.clock.now() - expires)
        if hour:
            assert "refreshed the OAuth grant" in out and "kept the new refresh token" in out, out
    assert timedelta(0) < expired_for < INTERVAL
    assert w.refreshes() == 49  # the first hour the authorised token still had 25 minutes
    state = (workdir / ".reconcile" / "sandbox" / "escrow.json").read_text()
    assert '"grants"' in state and '"version": 2' in state
    assert w.refresh not in state and w.token_row(w.access) is None  # the first pair was refreshed away
    code, shown = run_plain(capsys, "state", "show", "--sandbox")
    assert code == 0 and "refresh tokens of OAuth grants (sealed, kept for good):\n  sync-grant: kept " in shown, shown
    assert w.refresh not in shown


def test_a_short_interval_refreshes_before_expiry_so_no_consumer_ever_holds_an_expired_token(world, capsys):
    w = world(rotate_before="20m")
    for _ in range(12):  # every 15 minutes for three hours
        apply(capsys, w)
        row = w.token_row(w.held()["variable"])
        assert row is not None
        w.clock.advance(timedelta(minutes=15))
        assert datetime_of(row["expires_at"]) > w.clock.now(), "a consumer held an expired token"


def test_the_plan_shows_both_expiries_to_the_minute_in_text_markdown_and_json(world, capsys):
    w = world()
    w.clock.advance(timedelta(minutes=7))  # the seeded access token has 18 minutes left
    code, text = run(capsys, w, "plan")
    assert "expires in 18 min" in text and "refresh token expires in 29 days" in text, text
    assert "no expiry" not in text
    code, md = run(capsys, w, "plan", "--format", "markdown")
    assert "expires in 18 min" in md
    code, raw = run(capsys, w, "plan", "--format", "json")
    live = next(t for t in json.loads(raw)["tokens"] if t["name"] == "sync-grant")["live"]
    assert live["minutes_left"] == 18 and live["expires_at"].endswith("Z") and live["refresh_minutes_left"] > 29 * 1440
    w.clock.advance(timedelta(minutes=9))  # 9 minutes left: within rotate_before 10m
    code, text = run(capsys, w, "plan")
    assert "rotate" in text and "expires in 9 min" in text and "within rotate_before 10m" in text, text


def test_a_lost_refresh_token_is_a_clear_error_and_a_new_authorization_recovers(world, capsys, monkeypatch):
    w = world()
    apply(capsys, w)
    # someone revokes the grant's token: its refresh token dies with it
    inst = w.zendesk.service.instance("acme")
    held = w.held()["variable"]
    inst.oauth_tokens.remove(w.token_row(held))
    code, out = run(capsys, w, "apply", "--auto-approve")
    assert code == 1
    assert "authorise OAuth client 'sync-app' again" in out and "$SYNC_REFRESH" in out, out
    # a person authorises again (the consent page redirects with a code; the app exchanges it)
    code_value = w.zendesk.service.authorization_code("acme", "sync-app", scopes=["read"])
    answer = requests.post(f"http://127.0.0.1:{w.zendesk.port}/oauth/tokens", headers={"Host": "acme.zendesk.com"},
                           json={"grant_type": "authorization_code", "code": code_value, "client_id": "sync-app",
                                 "client_secret": w.env["SYNC_CLIENT_SECRET"]}, timeout=5)
    assert answer.status_code == 201
    monkeypatch.setenv("SYNC_REFRESH", answer.json()["refresh_token"])
    out = apply(capsys, w)
    assert "Apply complete" in out and ", 0 failed" in out
    held = w.held()
    assert held["variable"] == held["webhook"] and w.works(held["variable"])
    assert run(capsys, w, "plan", "--detailed-exitcode")[0] == 0


def test_a_refused_grant_falls_back_to_client_credentials_where_declared(world, capsys):
    w = world(fallback=True)
    apply(capsys, w)  # takes the supplied refresh token in
    w.zendesk.service.instance("acme").oauth_tokens.remove(w.token_row(w.held()["variable"]))
    w.clock.advance(timedelta(hours=1))
    out = apply(capsys, w)
    assert "fell back to the client_credentials grant" in out, out
    held = w.held()
    assert held["variable"] == held["webhook"] and w.works(held["variable"])


def test_a_refusal_that_does_not_spend_the_refresh_token_keeps_it_and_does_not_fall_back(world, capsys, monkeypatch):
    """Only `invalid_grant` says the refresh token is dead: another refusal keeps it (the
    fallback's grant has no refresh token, so falling back would forget one that still works)."""
    from reconciler_sandbox import zendesk_oauth

    w = world(fallback=True)
    apply(capsys, w)  # takes the supplied refresh token in
    before = w.held()["variable"]

    def refuse(inst, client, params):  # e.g. a parameter the server rejects: says nothing of the token
        raise zendesk_oauth.oauth_error(400, "invalid_request")

    with monkeypatch.context() as patched:
        patched.setitem(zendesk_oauth.GRANTS, "refresh_token", refuse)
        w.clock.advance(timedelta(hours=1))
        code, out = run(capsys, w, "apply", "--auto-approve")
    assert code != 0 and "fell back" not in out, out
    assert "400 invalid_request" in out and "so it is kept and nothing falls back" in out, out
    assert w.held()["variable"] == before
    out = apply(capsys, w)  # the kept refresh token still works
    assert "fell back" not in out and "refreshed the" in out, out
    held = w.held()
    assert held["variable"] != before and held["variable"] == held["webhook"] and w.works(held["variable"])


def test_check_warns_when_the_refresh_token_itself_nears_expiry(world, capsys):
    w = world()
    row = w.token_row(w.access)
    row["refresh_token_expires_at"] = (w.clock.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out = run(capsys, w, "check")
    assert "refresh token expires in 3 days" in out, out
    code, plan = run(capsys, w, "plan")
    assert "refresh_token_expiring" in plan or "refresh token of sync-grant expires in 3 days" in plan, plan


def datetime_of(text: str):
    from reconciler.observed import parse_time

    moment = parse_time(text)
    assert moment is not None
    return moment


def test_check_flags_local_clients_whose_tokens_never_expire_before_2027_04_01(world, capsys):
    w = world()  # reconcile's own credential is a token of the local client 'reconcile' without expiry
    code, out = run(capsys, w, "check")
    assert "Zendesk OAuth clients with tokens that never expire (expiring tokens required from 2027-04-01)" in out
    assert "! OAuth client 'reconcile'" in out and "OAuth client 'sync-app'" not in out  # its tokens expire
    assert "1 token(s) that never expire; expiring tokens required from 2027-04-01 (130 days left)" in out, out
    code, raw = run(capsys, w, "check", "--format", "json")
    flagged = [i for i in json.loads(raw)["items"] if i["category"] == "oauth_client"]
    assert [(i["name"], i["days_left"]) for i in flagged] == [("reconcile", 130)]
    w.clock.set(datetime_of("2027-04-01T00:00:00Z"))  # enforced from now on: nothing left to flag
    code, raw = run(capsys, w, "check", "--format", "json")
    assert not [i for i in json.loads(raw)["items"] if i["category"] == "oauth_client"]


def test_reconcile_env_lists_the_grant_variables_for_the_apply_job(world, capsys):
    world()  # writes the inventory and sets the environment
    code, out = run_plain(capsys, "env")
    assert code == 0
    refresh = next(line for line in out.splitlines() if line.startswith("SYNC_REFRESH "))
    secret = next(line for line in out.splitlines() if line.startswith("SYNC_CLIENT_SECRET "))
    assert "apply (optional)" in refresh and "needed once" in refresh
    assert "apply " in secret and "(optional)" not in secret


def run_plain(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out + err
