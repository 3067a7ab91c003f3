"""First contact with a working estate, and unattended runs with credentials a person supplies.
Through the real CLI against the sandboxes.

- A healthy estate with an empty ledger (tokens far from expiry, consumers holding the current
  value where nothing can read it back): the plan rotates nothing and warns; apply changes nothing.
- `rotation.on_unverifiable: rotate` rotates such a token, and every consumer gets a fresh value.
- A due `external` token whose value nobody supplied: apply completes the other tokens, leaves it
  "waiting for a person" on a line of its own and exits 0; the merge-request plan and the check
  report name the variable to set; once it is set, the next apply delivers it.
"""

from __future__ import annotations

from apply_world import Scenario

from reconciler import cli

NOW = "2026-11-22T12:00:00Z"
PROVIDERS = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
  zd: {kind: zendesk, subdomain: acme, auth: {oauth_token_env: ZD_TOKEN}}
"""
# the seeded PAT: created 100 days ago, 200 days left; nothing here makes it due
HEALTHY = """\
defaults:
  rotation: {{rotate_before: 21d, lifetime: 365d{extra}}}
tokens:
  subject:
    source: {{kind: gitlab_personal_access_token, provider: gl, name: Sync PAT, scopes: [api]}}
    consumers:
      - {{kind: gitlab_ci_variable, provider: gl, project: acme/app, key: HIDDEN, masked: true, hidden: true}}
      - {{kind: gitlab_webhook, provider: gl, project: acme/app, hook: 'https://hooks.example/deploy', mode: update}}
"""
# the PAT is due (older than max_age); the external credential is due (expires within 21 days)
WITH_EXTERNAL = PROVIDERS + """\
defaults:
  rotation: {rotate_before: 21d, lifetime: 365d, max_age: 90d}
tokens:
  subject:
    source: {kind: gitlab_personal_access_token, provider: gl, name: Sync PAT, scopes: [api]}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: TOKEN, masked: true}
  statuspage:
    source: {kind: external, value_env: STATUSPAGE_KEY, expires_at: 2026-12-01}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: STATUSPAGE, masked: true}
"""


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def start(live_world, monkeypatch, scenario: Scenario, inventory: str):
    live = live_world(scenario)
    (live.inventory / "inventory.yaml").write_text(inventory)
    for name, value in live.env.items():
        monkeypatch.setenv(name, value)
    return live


def test_a_healthy_estate_with_an_empty_ledger_is_not_rotated(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("pat", ("hidden_variable", "hook")), PROVIDERS + HEALTHY.format(extra=""))
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert code == 0, out + err  # no changes
    assert "0 to rotate" in out and "2 unverifiable" in out, out
    assert out.count("cannot be verified (no ledger record): left as it is") == 2, out
    assert "rotation.on_unverifiable: rotate" in out
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0 and "No changes. Nothing to apply." in out, out + err
    assert live.rotations() == 0 and live.mutations() == []
    assert live.held("hidden_variable") == live.old and live.works(live.old)


def test_on_unverifiable_rotate_gives_every_consumer_a_fresh_value(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("pat", ("hidden_variable", "hook")),
                 PROVIDERS + HEALTHY.format(extra=", on_unverifiable: rotate"))
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert code == 2, out + err
    assert "1 to rotate" in out and "rotation.on_unverifiable is rotate, so every consumer gets a fresh one" in out
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0 and "Apply complete: 1 rotated" in out, out + err
    assert live.rotations() == 1 and not live.works(live.old)
    for consumer in ("hidden_variable", "hook"):
        held = live.held(consumer)
        assert held is not None and held != live.old and live.works(held), consumer
    code, out, _ = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out


def test_a_due_external_token_without_its_value_waits_and_the_rest_is_applied(live_world, monkeypatch, capsys):
    live = start(live_world, monkeypatch, Scenario("pat", ("variable",)), WITH_EXTERNAL)
    monkeypatch.delenv("STATUSPAGE_KEY", raising=False)
    hint = "set STATUSPAGE_KEY as a masked, protected CI/CD variable (Settings > CI/CD > Variables), then run the pipeline"

    to_set = "set STATUSPAGE_KEY as a masked, protected CI/CD variable"  # markdown escapes the rest
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--format", "markdown")
    assert code == 0 and to_set in out and "then run the pipeline" in out, out + err  # the merge-request note
    code, out, err = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "markdown")
    item = next(line for line in out.splitlines() if "`statuspage`" in line)  # as the check issue lists it
    assert code == 2 and to_set in item and "then run the pipeline" in item and "leaves it waiting" in item, out

    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0, out + err
    lines = out.splitlines()
    waiting = [line for line in lines if line.startswith("Waiting for a person: statuspage: ")]
    assert waiting == [f"Waiting for a person: statuspage: $STATUSPAGE_KEY is not set: a person supplies the new "
                       f"value of this external credential at apply time; {hint}."], out
    assert lines[-1].startswith("Apply complete: 1 rotated, ") and lines[-1].endswith(
        ", 0 failed, 1 waiting for a person."), lines[-1]
    assert "FAILED" not in out and "error" not in err
    assert live.rotations() == 1 and live.works(live.held("variable") or "")  # the PAT: done
    assert live.gl.variable_value("project", "acme/app", "STATUSPAGE") is None  # left for the person

    supplied = "sp-" + "7" * 24
    monkeypatch.setenv("STATUSPAGE_KEY", supplied)
    code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
    assert code == 0 and "Waiting for a person" not in out and "waiting for a person" not in out, out + err
    assert "statuspage: took the new value a person supplied" in out
    assert live.gl.variable_value("project", "acme/app", "STATUSPAGE") == supplied
    assert live.rotations() == 1  # the PAT was not rotated again
