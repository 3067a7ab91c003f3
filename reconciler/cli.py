"""The `reconcile` command: parse, call, render, exit code. No logic of its own.

Exit codes: 0 success / nothing to do, 1 error, 2 changes pending or attention needed
(`plan --detailed-exitcode`, `check`), 130 / 143 apply interrupted by SIGINT / SIGTERM
(reconciler/interrupt.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.errors import EXIT_ERROR

EXIT_OK, EXIT_CHANGES = 0, 2

if TYPE_CHECKING:
    from reconciler.state import Escrow, StateStore


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
def cli() -> None:
    """Rotate GitLab and Zendesk credentials and deliver them to every place they are used."""



def inventory_option(command):
    """`--inventory DIR` (default `inventory`): every command takes it. The value reaches the
    command as `inventory: Path`."""
    return click.option(
        "--inventory",
        "inventory",
        type=click.Path(path_type=Path, file_okay=True, dir_okay=True),
        default=Path("inventory"),
        show_default=True,
        help="Inventory directory (every *.yaml under it), or one YAML file.",
    )(command)


@cli.command()
@inventory_option
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--codequality", "codequality", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the problems as a GitLab Code Quality report (JSON) to this file, even when failing.")
def validate(inventory: Path, strict: bool, codequality: Path | None) -> int:
    """Check the inventory: schema, references, templates and policy. No network."""
    from reconciler.inventory import diagnose  # lazy: keep start-up fast for every command

    model, found = diagnose(inventory)
    if codequality is not None:
        from reconciler.gitlab_ci import codequality_from_diagnostics, write_codequality

        try:
            write_codequality(codequality, codequality_from_diagnostics(found))
        except OSError as err:
            click.echo(f"error: {codequality}: {err.strerror or err}", err=True)
            return EXIT_ERROR
    for diagnostic in found:
        click.echo(str(diagnostic), err=True)
    failing = [d for d in found if d.severity == "error" or strict]
    if failing or model is None:
        n = len(failing)
        why = " (--strict: warnings count as errors)" if strict and model is not None else ""
        click.echo(f"{n} error{'' if n == 1 else 's'}{why}", err=True)
        return EXIT_ERROR
    warned = len(model.warnings)
    click.echo(
        f"ok: {len(model.tokens)} tokens, {len(model.consumers())} consumers, {len(model.providers)} providers"
        + (f" ({warned} warning{'' if warned == 1 else 's'})" if warned else "")
    )
    return EXIT_OK


@cli.command("env")
@inventory_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dotenv-template"]), default="text",
              show_default=True, help="dotenv-template: one commented NAME= line per variable, to fill in.")
@click.option("--job", "jobs", multiple=True, type=click.Choice(["plan", "apply", "check"]),
              help="Only the variables this CI job reads (repeatable; plan: the merge-request plan).")
def env_command(inventory: Path, fmt: str, jobs: tuple[str, ...]) -> int:
    """List every environment variable the inventory needs in CI: what it is for, which job reads
    it, whether to protect and mask it, and whether it is set here. Never shows a value. No network."""
    import os

    from reconciler.ci_env import RENDERERS, ci_variables, for_jobs
    from reconciler.inventory import load_inventory

    def run() -> int:
        variables = for_jobs(ci_variables(load_inventory(inventory), os.environ), jobs)
        click.echo(RENDERERS[fmt](variables), nl=False)
        return EXIT_OK

    return user_errors(run)


# --- reconcile state: inspect and repair the ledger, escrow and lock (reconciler/state/) ------


def _open_state(inventory: Path, state_dir: str | None, sandbox: bool = False) -> tuple[StateStore, Escrow]:
    """The store and escrow the inventory configures, or a local store at --state-dir, or the
    state `--sandbox` runs keep (.reconcile/sandbox/)."""
    import os

    from reconciler.inventory.model import StateConfig
    from reconciler.state import LocalStore, open_escrow, open_store

    if sandbox:
        from reconciler.engine import SessionError
        from reconciler_sandbox.world import STATE_DIR

        if state_dir:
            raise SessionError("--sandbox and --state-dir name two different states: pass one")
        state_dir = str(STATE_DIR)
    store: StateStore
    if state_dir:
        store, config = LocalStore(state_dir), StateConfig()
    else:
        from reconciler.inventory import load_inventory

        inv = load_inventory(inventory)
        store, config = open_store(inv.state, inv.providers, os.environ), inv.state
    return store, open_escrow(store, config, os.environ)


def _with_state_options(f):
    """`--inventory` (its `state:` names the backend), `--state-dir` (a local state directly) and
    `--sandbox` (the state of `--sandbox` runs)."""
    f = click.option("--sandbox", is_flag=True,
                     help="The state `--sandbox` runs keep (.reconcile/sandbox/) instead of the inventory's backend.")(f)
    f = click.option(
        "--state-dir", default=None, help="Use this local state directory instead of the inventory's backend."
    )(f)
    return inventory_option(f)


@cli.group()
def state() -> None:
    """Inspect and repair the ledger, the escrow and the apply lock (never shows a value)."""


@state.command("show")
@_with_state_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def state_show(inventory: Path, state_dir: str | None, sandbox: bool, fmt: str) -> int:
    """The ledger (what each consumer last received), pending escrow entries and the lock."""
    import json

    from reconciler.state.report import render_summary, state_summary

    def run() -> int:
        summary = state_summary(*_open_state(inventory, state_dir, sandbox))
        click.echo(json.dumps(summary, indent=2) if fmt == "json" else render_summary(summary))
        return EXIT_OK

    return user_errors(run)


@state.command("unlock")
@_with_state_options
@click.option("--force", is_flag=True, help="Remove the lock whoever holds it (after a crashed apply).")
def state_unlock(inventory: Path, state_dir: str | None, sandbox: bool, force: bool) -> int:
    """Show who holds the apply lock; with --force, remove it. The next apply takes over a lock
    whose holder is provably gone (same host, process gone) or whose lease ran out by itself."""

    def run() -> int:
        store, _ = _open_state(inventory, state_dir, sandbox)
        if force:
            holder = store.force_unlock()
            click.echo(f"{store.where}: removed the lock {holder.describe()}" if holder
                       else f"{store.where}: the state was not locked")
            return EXIT_OK
        holder = store.lock_holder()
        if holder is None:
            click.echo(f"{store.where}: the state is not locked")
            return EXIT_OK
        stale = holder.stale_reason()
        why = f"; {stale}: the next apply takes it over" if stale else "; if no apply is running, pass --force"
        click.echo(f"{store.where}: the state is locked: {holder.describe()}{why}", err=True)
        return EXIT_ERROR

    return user_errors(run)


@state.command("keygen")
def state_keygen() -> int:
    """Print a fresh escrow key: store it in a masked CI/CD variable named RECONCILE_ESCROW_KEY
    (or the inventory's state.escrow_key_env). Losing it loses escrowed values."""
    from reconciler.state import generate_key

    click.echo(generate_key())
    return EXIT_OK


# --- reconcile plan / sandbox and the shared --sandbox option (reconciler/engine.py) -----------


def sandbox_options(command):
    """`--sandbox` (run against the embedded GitLab and Zendesk sandboxes, state in
    .reconcile/sandbox/), `--sandbox-seed FILE` and `--sandbox-reset`: every engine command takes
    them; they reach the command as `sandbox`, `sandbox_seed`, `sandbox_reset`."""
    command = click.option("--sandbox-reset", is_flag=True,
                           help="With --sandbox: seed the sandbox world afresh instead of loading the saved one.")(command)
    command = click.option("--sandbox-seed", type=click.Path(path_type=Path), default=None, metavar="FILE|DIR",
                           help="With --sandbox: the world seed (default: the demo world matching inventory/), or an "
                                "inventory DIR to build the world from (every token and consumer it declares exists, "
                                "holding its current value).")(command)
    return click.option("--sandbox", is_flag=True,
                        help="Run against embedded GitLab and Zendesk sandboxes seeded with a demo world.")(command)


def user_errors(run: Callable[[], int]) -> int:
    """Run a command; a problem the user fixes (any ReconcileError) is its message on stderr and
    its exit code, a file that cannot be read or written one line and exit 1; never a traceback."""
    from reconciler.errors import ReconcileError

    try:
        return run()
    except ReconcileError as err:
        click.echo(err.user_message, err=True)
        return err.exit_code
    except OSError as err:  # an output file that cannot be written (--out, --codequality, --log)
        click.echo(f"error: {err.filename or ''}: {err.strerror or err}", err=True)
        return EXIT_ERROR


def record_option(command):
    """`--record DIR` (reconciler/record.py): every HTTP request and answer, secrets scrubbed, saved
    as a vcrpy cassette under DIR. The value reaches the command as `record_dir`."""
    return click.option("--record", "record_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                        metavar="DIR", help="Record every HTTP request and answer, every secret scrubbed, as a "
                                            "cassette in DIR (to attach to a bug report).")(command)


def _recorded(recording) -> None:
    click.echo(f"recorded {recording.requests} request(s), secrets scrubbed, to {recording.path}", err=True)


@cli.command("plan")
@inventory_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also save the plan as JSON (for `reconcile apply PLANFILE`).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (0: none, 1: error).")
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Only this token (repeatable).")
@click.option("--now", "now", envvar="RECONCILE_NOW", default=None,
              help="The current time (ISO date or timestamp; env RECONCILE_NOW). Default: the clock, or the sandbox clock.")
@record_option
@sandbox_options
def plan_command(inventory: Path, out: Path | None, fmt: str, detailed_exitcode: bool, targets: tuple[str, ...],
                 now: str | None, record_dir: Path | None, sandbox: bool, sandbox_seed: Path | None,
                 sandbox_reset: bool) -> int:
    """Show what must change: tokens to create, rotate or revoke, and the consumers each one reaches."""

    def run() -> int:
        from reconciler.engine import open_session
        from reconciler.pipeline import observe_and_plan
        from reconciler.record import record_to
        from reconciler.render import render

        with record_to(record_dir, "plan", _recorded, inventory=inventory), open_session(
                inventory, sandbox=sandbox, sandbox_seed=sandbox_seed, sandbox_reset=sandbox_reset, now=now,
                targets=targets) as session:
            _, result = observe_and_plan(session)
        render(result, fmt, sys.stdout)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(result.dumps())
        if result.errors:
            return EXIT_ERROR
        return EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK

    return user_errors(run)


@cli.command("apply")
@inventory_option
@click.argument("planfile", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (required in CI, CI=true).")
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Only this token (repeatable).")
@click.option("--lock-timeout", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="Wait this long for another apply to release the state lock.")
@click.option("--now", "now", envvar="RECONCILE_NOW", default=None,
              help="The current time (ISO date or timestamp; env RECONCILE_NOW). Default: the clock, or the sandbox clock.")
@click.option("--force-revoke", "force_revoke", multiple=True, metavar="NAME",
              help="Revoke this token's old, orphaned or absent live tokens without checking they are quiet "
                   "(repeatable).")
@record_option
@sandbox_options
def apply_command(inventory: Path, planfile: Path | None, auto_approve: bool, targets: tuple[str, ...],
                  lock_timeout: float, now: str | None, force_revoke: tuple[str, ...], record_dir: Path | None,
                  sandbox: bool, sandbox_seed: Path | None, sandbox_reset: bool) -> int:
    """Rotate what is due and deliver every value: the saved PLANFILE (refused when the inventory or
    the live state changed since), or a fresh plan. Exit 1 on any failure; 130 / 143 when SIGINT /
    SIGTERM stopped it at a safe point (the lock is released; the next apply finishes the work)."""
    import json
    import os

    from reconciler.interrupt import Interrupted, Interrupts, StopNow, signal_name

    interrupts = Interrupts()

    def run() -> int:
        from reconciler.apply import apply_plan
        from reconciler.engine import SessionError, open_session
        from reconciler.plan import Plan
        from reconciler.progress import reporter_for
        from reconciler.record import record_to
        from reconciler.render import render_text

        in_ci = os.environ.get("CI", "").lower() == "true"
        if in_ci and not auto_approve:
            raise SessionError("in CI (CI=true) apply needs --auto-approve: nobody can confirm")
        saved = None
        if planfile is not None:
            try:
                saved = Plan.from_json(json.loads(planfile.read_text()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # AttributeError: not an object
                raise SessionError(f"{planfile}: not a saved reconcile plan ({err})") from None
            if targets and tuple(sorted(targets)) != saved.targets:
                raise SessionError(f"--target cannot change the targets of the saved plan {planfile}")
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if not auto_approve and not interactive:
            raise SessionError("apply asks for confirmation on a terminal: pass --auto-approve to apply without one")

        def confirm(plan: Plan) -> bool:
            render_text(plan, sys.stdout)
            if auto_approve:
                return True
            return click.confirm("Apply these changes?", default=False)

        with record_to(record_dir, "apply", _recorded, inventory=inventory), open_session(
                inventory, sandbox=sandbox, sandbox_seed=sandbox_seed, sandbox_reset=sandbox_reset, now=now,
                targets=saved.targets if saved else targets) as session:
            if sandbox:  # the lock message names this very state
                session.store.unlock_command = "reconcile state unlock --force --sandbox"
            try:
                result = apply_plan(session, saved=saved, confirm=confirm, reporter=reporter_for(sys.stdout),
                                    lock_timeout=lock_timeout, interrupts=interrupts,
                                    notice=lambda note: click.echo(note, err=True), force_revoke=force_revoke)
            finally:
                if session.world is not None:
                    session.world.save()  # --sandbox: the next plan sees what apply did
        if result.interrupted:
            for line in result.interruption_lines():
                click.echo(line)
            for failure in result.failed:
                click.echo(f"error: {failure}", err=True)
            return interrupts.exit_code
        if result.nothing_to_do:
            click.echo("No changes. Nothing to apply.")
            return EXIT_OK
        for line in result.waiting_lines():
            click.echo(line)
        click.echo(result.summary_line())
        for failure in result.failed:
            click.echo(f"error: {failure}", err=True)
        return EXIT_OK if result.ok else EXIT_ERROR

    def interruptible() -> int:
        try:
            return run()
        except Interrupted as stop:  # before any token began: nothing to finish
            click.echo(f"Apply interrupted by {signal_name(stop.signum)}: stopped before changing any token; no "
                       "lock is held.", err=True)
            return stop.exit_code
        except StopNow as stop:  # a second signal before or after the token loop
            click.echo(f"Apply stopped at once by {stop}: no lock is held; `reconcile plan` shows what is left "
                       "and the next apply finishes it.", err=True)
            return interrupts.exit_code

    with interrupts.installed():
        return user_errors(interruptible)


@cli.command("adopt")
@inventory_option
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Only this token (repeatable).")
@click.option("--assert-write-only", "asserted", multiple=True, metavar="CONSUMER",
              help="Record that this consumer (its identity, as the plan's warning names it), which nothing can "
                   "read back, holds the current value (repeatable).")
@click.option("--now", "now", envvar="RECONCILE_NOW", default=None,
              help="The current time (ISO date or timestamp; env RECONCILE_NOW). Default: the clock, or the sandbox clock.")
@sandbox_options
def adopt_command(inventory: Path, targets: tuple[str, ...], asserted: tuple[str, ...], now: str | None,
                  sandbox: bool, sandbox_seed: Path | None, sandbox_reset: bool) -> int:
    """Take over a working estate without changing anything live: record in the ledger which
    consumers hold the current value (read back and identified, or asserted by you)."""

    def run() -> int:
        from reconciler.adopt import adopt
        from reconciler.engine import open_session

        with open_session(inventory, sandbox=sandbox, sandbox_seed=sandbox_seed, sandbox_reset=sandbox_reset,
                          now=now, targets=targets) as session:
            report = adopt(session, asserted)
        for line in report.lines():
            click.echo(line)
        return EXIT_OK

    return user_errors(run)


SANDBOX_STOP = None  # a threading.Event tests set to end `reconcile sandbox`


@cli.command("sandbox")
@inventory_option
@click.option("--reset", is_flag=True, help="Seed the world afresh instead of loading .reconcile/sandbox/.")
@click.option("--port", type=click.IntRange(0, 65534), default=0,
              help="GitLab on PORT and Zendesk on PORT+1 (default: free ports).")
@click.option("--sandbox-seed", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The world seed (default: the demo world matching inventory/).")
@click.option("--from-inventory", "from_inventory", type=click.Path(path_type=Path, file_okay=False, exists=True),
              default=None, metavar="DIR",
              help="Seed the world afresh from this inventory: every declared token and consumer exists, holding "
                   "its current value (instead of a seed).")
def sandbox_command(inventory: Path, reset: bool, port: int, sandbox_seed: Path | None,
                    from_inventory: Path | None) -> int:
    """Serve the GitLab and Zendesk sandboxes in the foreground; print the variables to export.
    The world is saved to .reconcile/sandbox/ within half a second of each change, and on Ctrl-C
    or SIGTERM when it stops."""
    import signal
    import threading

    from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, SessionError
    from reconciler_sandbox.world import STATE_DIR, WorldError, start_world

    def run() -> int:
        global SANDBOX_STOP
        from reconciler.inventory import load_inventory

        if from_inventory is not None and sandbox_seed is not None:
            raise SessionError("--from-inventory and --sandbox-seed name two different worlds: pass one")
        seed = from_inventory or sandbox_seed
        declared = from_inventory or (inventory if Path(inventory).exists() else None)
        escrow_env = load_inventory(declared).state.escrow_key_env if declared else "RECONCILE_ESCROW_KEY"
        try:
            world = start_world(seed, state_dir=STATE_DIR, reset=reset or from_inventory is not None, gitlab_port=port,
                                zendesk_port=port + 1 if port else 0, escrow_env=escrow_env)
        except (WorldError, OSError) as err:
            raise SessionError(str(err)) from None
        stop = SANDBOX_STOP = SANDBOX_STOP or threading.Event()
        exports = {**world.credentials, SANDBOX_ENV_GITLAB: world.gitlab.url,
                   SANDBOX_ENV_ZENDESK: world.endpoints.zendesk_netloc or ""}
        for name in sorted(exports):
            click.echo(f"export {name}={exports[name]}")
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        try:
            saved = world.changes()
            while not stop.wait(0.5):
                if world.changes() != saved:  # save after each change: a SIGKILL loses at most 0.5 s
                    saved = world.changes()
                    world.save()
        except KeyboardInterrupt:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            world.save()
            world.stop()
        return EXIT_OK

    return user_errors(run)


# --- reconcile check / discover: the Token Checker and where tokens are used (check.py, discover.py) ---


@cli.command("check")
@inventory_option
@click.option("--within", default=None, metavar="DURATION",
              help="Report tokens expiring within this (e.g. 21d, 3w). Default: the inventory's check.within (21d).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@click.option("--issue", "issue", default=None, metavar="[PROVIDER:]PROJECT",
              help="Also keep one GitLab issue in this project in step with the report (title and label from check:).")
@click.option("--now", "now", envvar="RECONCILE_NOW", default=None,
              help="The current time (ISO date or timestamp; env RECONCILE_NOW). Default: the clock, or the sandbox clock.")
@sandbox_options
def check_command(inventory: Path, within: str | None, fmt: str, issue: str | None, now: str | None, sandbox: bool,
                  sandbox_seed: Path | None, sandbox_reset: bool) -> int:
    """Report expiring, expired, unmanaged and Zendesk API tokens. Exit 2 when something needs attention."""

    def run() -> int:
        from reconciler.check import publish_issue, render, run_check
        from reconciler.engine import SessionError, open_session
        from reconciler.inventory.durations import parse_duration

        with open_session(inventory, sandbox=sandbox, sandbox_seed=sandbox_seed, sandbox_reset=sandbox_reset,
                          now=now) as session:
            try:
                window = parse_duration(within) if within else session.inventory.check.within
            except ValueError as err:
                raise SessionError(f"--within: {err}") from None
            report = run_check(session, window)
            render(report, fmt, sys.stdout)
            if issue:
                outcome = publish_issue(session, issue, report)
                click.echo(outcome.describe(), err=True)
                if session.world is not None:
                    session.world.save()  # --sandbox: the next run finds the issue again
        return EXIT_CHANGES if report.needs_attention else EXIT_OK

    return user_errors(run)


@cli.command("discover")
@inventory_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the inventory YAML to this new file (default: standard output).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@sandbox_options
def discover_command(inventory: Path, out: Path | None, force: bool, sandbox: bool, sandbox_seed: Path | None,
                     sandbox_reset: bool) -> int:
    """Find where live tokens are used (discovery scopes) and write them as inventory YAML. Never shows a value."""
    if out is not None and out.exists() and not force:
        click.echo(f"error: {out} exists; pass --force to overwrite it", err=True)
        return EXIT_ERROR

    def run() -> int:
        from reconciler.discover import render_yaml, run_discover
        from reconciler.engine import open_session

        with open_session(inventory, sandbox=sandbox, sandbox_seed=sandbox_seed, sandbox_reset=sandbox_reset) as session:
            result = run_discover(session)
            text = render_yaml(result, session.inventory, str(inventory), session.now)
        if out is None:
            click.echo(text, nl=False)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        click.echo(f"discover: {result.tried} candidate values tried, {result.identified} identified; "
                   f"{len(result.tokens)} tokens with {result.consumers} consumers"
                   f"{' written to ' + str(out) if out else ''}; {len(result.notes)} places not determined",
                   err=True)
        return EXIT_OK

    return user_errors(run)


# --- reconcile ci: what .gitlab-ci.yml runs besides plan/apply/check (reconciler/gitlab_ci.py) ---


def _ci_options(command):
    """Where to post: the pipeline's variables by default, or given explicitly outside CI."""
    command = click.option("--token-env", default=None, metavar="NAME",
                           help="Variable holding the GitLab token that writes the note (default: the token_env "
                                "of the inventory's GitLab provider whose url is CI_SERVER_URL).")(command)
    command = click.option("--gitlab-url", default=None, help="GitLab URL (default: CI_SERVER_URL).")(command)
    command = click.option("--project", default=None, help="Project id or path (default: CI_PROJECT_ID).")(command)
    return inventory_option(command)


def _ci_errors(run: Callable[[], int]) -> int:
    """Run a ci command as `user_errors` does; GitLab's own refusals (the note API) are one line
    and exit 1 too."""
    import gitlab.exceptions

    from reconciler.gitlab_ci import describe_gitlab_error

    def guarded() -> int:
        try:
            return run()
        except gitlab.exceptions.GitlabError as err:
            click.echo(f"error: GitLab answered {describe_gitlab_error(err)}", err=True)
            return EXIT_ERROR

    return user_errors(guarded)


def _ci_gitlab(ctx, inventory: Path, token_env: str | None):
    from reconciler.gitlab_ci import connect_gitlab, note_token_env

    ctx.need("server_url")
    return connect_gitlab(ctx.server_url, note_token_env(inventory, ctx.server_url, token_env))


@cli.group("ci")
def ci_group() -> None:
    """What the GitLab pipeline runs besides plan/apply/check: the merge request plan note, the
    apply note on the merged merge request. Reads CI_* variables; options override them."""


@ci_group.command("plan-note")
@_ci_options
@click.option("--plan", "plan_file", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The plan saved by `reconcile plan --out FILE`.")
@click.option("--mr", "mr_iid", type=int, default=None, help="Merge request IID (default: CI_MERGE_REQUEST_IID).")
@click.option("--codequality", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the plan's errors and warnings as a GitLab Code Quality report to this file.")
def ci_plan_note(inventory: Path, project: str | None, gitlab_url: str | None, token_env: str | None,
                 plan_file: Path, mr_iid: int | None, codequality: Path | None) -> int:
    """Post the plan on the merge request as one note, updated in place on every pipeline."""
    import json

    from reconciler import gitlab_ci as ci
    from reconciler.plan import Plan

    def run() -> int:
        ctx = ci.CIContext.from_env(project=project, mr_iid=mr_iid, server_url=gitlab_url)
        ctx.need("server_url", "project", "mr_iid")
        plan = None
        if plan_file.is_file():
            try:
                plan = Plan.from_json(json.loads(plan_file.read_text()))
            except (ValueError, KeyError, TypeError, AttributeError) as err:  # AttributeError: JSON not an object
                raise ci.CIError(f"{plan_file}: not a saved reconcile plan ({err})") from None
        if codequality is not None:
            ci.write_codequality(codequality, ci.codequality_from_plan(plan, inventory) if plan else [])
        body = ci.plan_note_body(plan, ctx) if plan else ci.missing_plan_body(ctx, f"the plan failed ({plan_file} was not written)")
        if plan is not None:
            body += _missing_variables_line(inventory, plan)
        gl = _ci_gitlab(ctx, inventory, token_env)
        outcome = ci.upsert_note(ci.merge_request(gl, ctx), body, ci.PLAN_MARKER, ci.current_user_id(gl))
        click.echo(f"plan note: {outcome.describe()}")
        return EXIT_OK

    return _ci_errors(run)


def _missing_variables_line(inventory: Path, plan) -> str:
    """The plan note's last line naming what an apply of `plan` needs and this pipeline lacks;
    empty when the inventory does not load (the plan job then says why)."""
    import os

    from reconciler.ci_env import ci_variables, missing_variables_note
    from reconciler.errors import ReconcileError
    from reconciler.inventory import load_inventory

    try:
        return missing_variables_note(ci_variables(load_inventory(inventory), os.environ), plan)
    except (ReconcileError, OSError):
        return ""


@ci_group.command("apply-note")
@_ci_options
@click.option("--log", "log_file", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The apply's output (e.g. `reconcile apply --auto-approve | tee apply.log`).")
@click.option("--exit-code", "exit_code", type=int, default=0, show_default=True,
              help="The apply's exit code, shown as the outcome.")
@click.option("--sha", default=None, help="The merged commit (default: CI_COMMIT_SHA).")
def ci_apply_note(inventory: Path, project: str | None, gitlab_url: str | None, token_env: str | None,
                  log_file: Path, exit_code: int, sha: str | None) -> int:
    """Post the apply summary on the merge request the commit was merged from (none: say so, exit 0)."""
    from reconciler import gitlab_ci as ci

    def run() -> int:
        ctx = ci.CIContext.from_env(project=project, commit_sha=sha, server_url=gitlab_url)
        ctx.need("server_url", "project", "commit_sha")
        output = log_file.read_text(errors="replace") if log_file.is_file() else ""
        gl = _ci_gitlab(ctx, inventory, token_env)
        mr = ci.find_merged_merge_request(gl, str(ctx.project), str(ctx.commit_sha))
        if mr is None:
            click.echo(f"apply note: commit {str(ctx.commit_sha)[:8]} came from no merged merge request; not posted")
            return EXIT_OK
        outcome = ci.upsert_note(mr, ci.apply_note_body(output, exit_code, ctx), ci.APPLY_MARKER,
                                 ci.current_user_id(gl))
        click.echo(f"apply note: {outcome.describe()}")
        return EXIT_OK

    return _ci_errors(run)


def main(argv: list[str] | None = None) -> int:
    """Entry point. Commands return their exit code; usage errors exit 1, not click's 2,
    because 2 means "changes pending" here."""
    try:
        code = cli.main(args=argv, prog_name="reconcile", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = EXIT_ERROR
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.ClickException as err:
        err.show()
        code = EXIT_ERROR
    if argv is None:
        sys.exit(code or 0)
    return code or 0
