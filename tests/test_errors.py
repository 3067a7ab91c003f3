"""One error tree: every error a user can fix is a ReconcileError with an exit code and the line
the command prints; the inventory's keeps its diagnostics as they are."""

from __future__ import annotations

import pytest

from reconciler.apply import ApplyFailure, ApplyRefused, StepFailed
from reconciler.check import CheckError
from reconciler.clients import CredentialsMissing, ProviderError
from reconciler.discover import DiscoverError
from reconciler.engine import SessionError
from reconciler.errors import ReconcileError
from reconciler.gitlab_ci import CIError
from reconciler.inventory import InventoryError
from reconciler.inventory.model import Diagnostic, Position
from reconciler.state import StateError


@pytest.mark.parametrize("cls", [ApplyRefused, StepFailed, CheckError, ProviderError, DiscoverError, SessionError,
                                 CIError, StateError])
def test_each_error_is_one_line_with_exit_code_1(cls):
    err = cls("ledger.json: corrupt ledger")
    assert isinstance(err, ReconcileError) and err.exit_code == 1
    assert err.user_message == "error: ledger.json: corrupt ledger"


def test_missing_credentials_name_the_variables():
    err = CredentialsMissing([("gl", "GL_TOKEN")])
    assert isinstance(err, ReconcileError)
    assert err.user_message == "error: missing credential environment variable(s): GL_TOKEN (provider gl)"


def test_the_inventory_error_prints_its_diagnostics_as_they_are():
    found = [Diagnostic(pos=Position("inventory/a.yaml", 3, 5), key="tokens.x.source", message="unknown kind"),
             Diagnostic(pos=Position("inventory/a.yaml", 9, 1), key="tokens.y", message="no consumer",
                        severity="warning")]
    err = InventoryError(found)
    assert isinstance(err, ReconcileError) and err.exit_code == 1
    assert err.user_message == ("inventory/a.yaml:3:5: tokens.x.source: unknown kind\n"
                                "inventory/a.yaml:9:1: tokens.y: warning: no consumer")


def test_a_step_failure_says_what_the_next_apply_does():
    err = StepFailed("revoking #12 failed: GitLab answered 500", next_apply="the next apply tries again")
    assert (err.message, err.next_apply) == ("revoking #12 failed: GitLab answered 500", "the next apply tries again")
    assert str(err) == "revoking #12 failed: GitLab answered 500; the next apply tries again"


def test_an_apply_failure_is_a_record_printed_as_one_line():
    failure = ApplyFailure("deploy", "revoking #12 failed: GitLab answered 500", "the next apply tries again")
    assert failure.line == str(failure) == "deploy: revoking #12 failed: GitLab answered 500; the next apply tries again"
    assert failure.text == "revoking #12 failed: GitLab answered 500; the next apply tries again"
    assert "answered 500" in failure and "answered 404" not in failure
    assert str(ApplyFailure("deploy", "not observed")) == "deploy: not observed"
