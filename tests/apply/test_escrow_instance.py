"""An escrowed value is delivered only while the live token is the instance it was minted as: the
same id AND creation time. A Zendesk OAuth client keeps its id when its secret is regenerated, so
after an interrupted rotation a person may regenerate the secret by hand and put it in the
consumer; the escrowed secret is then dead. The next apply must drop it without writing it
anywhere (the consumer keeps the person's secret), say so, and the plan after it must show the
consumer as needing a value (and the rotation that gives it one) instead of "No changes". The
same holds for an escrow restored with an older version of the state. Through the real CLI against the sandboxes."""

from __future__ import annotations

import shutil
from datetime import timedelta

import requests
from apply_world import SUB, ZD_HOST, Scenario
from test_apply_crash import crash_at, recover

from reconciler import cli
from reconciler.apply import apply_plan
from reconciler.engine import open_session
from reconciler.inventory.model import StateConfig
from reconciler.state import LocalStore, open_escrow
from reconciler_sandbox.world import STATE_DIR

NOW = "2026-11-22T12:00:00Z"
LATER = "2027-03-01T12:00:00Z"  # the secret minted at NOW is past max_age (90 days)


def run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def regenerate_by_hand(live) -> str:
    """What the person did: regenerate the client's secret (an hour after the interrupted apply)
    and put the new one in the CI/CD variable."""
    live.zendesk.service.clock.advance(timedelta(hours=1))
    client = live.zd.instance(SUB).client("portal")
    answer = requests.put(f"http://127.0.0.1:{live.zendesk.port}/api/v2/oauth/clients/{client['id']}/generate_secret.json",
                          headers={"Authorization": f"Bearer {live.env['ZD_TOKEN']}", "Host": ZD_HOST}, timeout=5)
    assert answer.status_code == 200
    secret = answer.json()["client"]["secret"]
    put = requests.put(f"{live.gitlab.url}/api/v4/projects/acme%2Fapp/variables/TOKEN",
                       headers={"PRIVATE-TOKEN": live.env["GL_TOKEN"]}, data={"value": secret}, timeout=5)
    assert put.status_code == 200
    return secret


def test_a_secret_regenerated_by_hand_is_not_overwritten_by_the_escrowed_one(live_world, workdir, capsys,
                                                                              monkeypatch):
    live = live_world(Scenario("client_secret", ("variable",)))
    for name, value in live.env.items():
        monkeypatch.setenv(name, value)
    crash_at(live, 2)  # the secret is regenerated and escrowed; the consumer write's answer is lost
    code, out = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 1 and "escrowed the value of" in out, out
    recover(live)
    store = LocalStore(workdir / STATE_DIR)
    assert open_escrow(store, StateConfig(), live.env).tokens() == ["subject"]

    by_hand = regenerate_by_hand(live)
    code, out = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert "the escrow holds a value of #" in out and "that value is not the live one" in out, out

    code, out = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 1, out
    assert "dropped the escrowed value of #" in out and "without writing it anywhere" in out, out
    assert "verified (read back)" not in out, out
    assert live.held("variable") == by_hand, "the dead escrowed secret was written over the one set by hand"
    assert live.works(by_hand)
    assert open_escrow(store, StateConfig(), live.env).tokens() == []

    code, out = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert code == 2 and "No changes" not in out, out
    # the ledger cannot vouch for the person's secret: the consumer gets a fresh one, rotated
    assert "1 to rotate" in out and "CI variable TOKEN" in out and "receives the new value" in out, out


def test_an_escrow_restored_from_an_older_state_version_is_never_written(live_world, workdir):
    """GitLab keeps every version of the Terraform state, and a person may restore an older one:
    its escrow then holds a value of an instance since replaced by a later rotation."""
    live = live_world(Scenario("client_secret", ("variable",)))
    crash_at(live, 2)
    assert not live.apply().ok
    recover(live)
    older = workdir / "older-state"
    shutil.copytree(workdir / STATE_DIR, older)
    assert live.apply().ok  # the escrowed secret delivered, the escrow emptied

    live.zendesk.service.clock.advance(timedelta(hours=1))
    with open_session(live.inventory, sandbox=True, now=LATER, env=live.env) as session:
        assert apply_plan(session).rotated == ["subject"]  # past max_age: a later rotation
    current = live.held("variable")
    assert current is not None and live.works(current)

    shutil.rmtree(workdir / STATE_DIR)
    shutil.copytree(older, workdir / STATE_DIR)  # the older version restored
    with open_session(live.inventory, sandbox=True, now=LATER, env=live.env) as session:
        result = apply_plan(session)
    assert any("that value is not the live one" in f for f in result.failed), result.failed
    assert result.delivered == 0 and result.rotated == []
    assert live.held("variable") == current and live.works(current)
    assert open_escrow(LocalStore(workdir / STATE_DIR), StateConfig(), live.env).tokens() == []
