"""The `reconcile` command: parse, call, render, exit code. No logic of its own.

Exit codes: 0 success / nothing to do, 1 error, 2 changes pending or attention needed
(`plan --detailed-exitcode`, `check`).
"""

from __future__ import annotations

import sys

import click

from reconciler import __version__

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
def cli() -> None:
    """Rotate GitLab and Zendesk credentials and deliver them to every place they are used."""


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
