"""`reconcile env`: every environment variable an inventory needs in CI, what each is for, which
job reads it and how to store it (protected, masked). Never a value from the environment: only
whether each variable is set there.

The variables come from the inventory: each provider's credential (its `*_env` keys; the gitlab
state backend uses its provider's), each value a person supplies through a variable (a `Supplied`
source kind's `supplied_env`, e.g. `external` with `value_env`), the escrow key
(`state.escrow_key_env`) and `RECONCILE_TRUSTED_PROVIDERS` (reconciler/trust.py), whose value is
not secret and is derived from the inventory, so it is the one value shown.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.inventory.model import Inventory
from reconciler.kinds import Supplied, source_kind
from reconciler.plan_model import Plan
from reconciler.trust import TRUSTED_PROVIDERS_ENV, provider_origin, trusted_value

# the pipeline's jobs (.gitlab-ci.yml): the merge-request plan, the applies (on merge and the
# daily schedule) and the weekly check
JOBS: dict[str, str] = {"plan": "MR plan", "apply": "apply", "check": "check"}
FORMATS = ("text", "json", "dotenv-template")


@dataclass
class Variable:
    name: str
    purposes: list[str] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)
    masked: bool = True  # holds a secret: masked and hidden
    protected: bool = True  # only pipelines of protected branches (the default one) receive it
    is_set: bool = False
    value: str | None = None  # only for a variable that holds no secret; derived from the inventory
    supplies: set[str] = field(default_factory=set)  # tokens whose new value a person supplies here
    optional: bool = False  # a job runs without it (e.g. a provider only the state backend uses)

    @property
    def purpose(self) -> str:
        return "; ".join(self.purposes)

    @property
    def job_names(self) -> list[str]:
        return [job for job in JOBS if job in self.jobs]

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"name": self.name, "purpose": self.purpose, "jobs": self.job_names,
                                    "protected": self.protected, "masked": self.masked, "optional": self.optional,
                                    "set": self.is_set}
        if self.value is not None:
            found["value"] = self.value
        return found


class _Listing:
    """Variables by name, in the order first met; one variable may serve several purposes."""

    def __init__(self) -> None:
        self.found: dict[str, Variable] = {}

    def add(self, name: str, purpose: str, jobs: Iterable[str], **flags: bool | str | None) -> None:
        variable = self.found.setdefault(name, Variable(name))
        variable.purposes.append(purpose)
        variable.jobs.update(jobs)
        for key, flag in flags.items():
            setattr(variable, key, flag)


def ci_variables(inventory: Inventory, env: Mapping[str, str]) -> list[Variable]:
    """Every variable `inventory` needs in CI, with whether `env` sets it (non-empty)."""
    from reconciler.clients import used_providers

    listing = _Listing()
    state, used = inventory.state, set(used_providers(inventory))
    for name, provider in sorted(inventory.providers.items()):
        backend = (f"; also the state backend's (the ledger on {state.project}; unset in a CI job on "
                   "that GitLab, CI_JOB_TOKEN reaches it)" if state.backend == "gitlab" and state.provider == name
                   else "")
        unused = "" if name in used else "; no token uses this provider: optional"
        for credential in provider.credential_envs:
            listing.add(credential, f"credential of provider {name} ({provider_origin(provider)}){backend}{unused}",
                        JOBS, optional=name not in used)
    for token in inventory.tokens.values():
        kind = source_kind(token.source.kind)
        supplied = kind.supplied_env(token.source) if isinstance(kind, Supplied) else None
        if supplied:
            listing.add(supplied, f"the new value of {kind.kind} token {token.name}, supplied by a person "
                                  "when the plan rotates it", ["apply"])
            listing.found[supplied].supplies.add(token.name)
        for name, purpose, optional in kind.job_env(token.source):
            listing.add(name, f"{purpose} (token {token.name})", ["apply"], optional=optional)
    listing.add(state.escrow_key_env, "escrow key: seals a value rotated in place until every consumer has it "
                                      "(`reconcile state keygen`)", ["plan", "apply"])
    listing.add(TRUSTED_PROVIDERS_ENV, "the providers a job may contact (ORIGIN=ENV_NAME each; not secret); "
                                       "without it a merge-request pipeline contacts none", JOBS,
                masked=False, value=trusted_value(inventory.providers))
    for variable in listing.found.values():
        variable.is_set = bool(env.get(variable.name, "").strip())
    return list(listing.found.values())


def for_jobs(variables: list[Variable], jobs: Iterable[str]) -> list[Variable]:
    wanted = set(jobs)
    return [v for v in variables if v.jobs & wanted] if wanted else variables


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _jobs(variable: Variable) -> str:
    return ", ".join(JOBS[j] for j in variable.job_names) + (" (optional)" if variable.optional else "")


def render_text(variables: list[Variable]) -> str:
    head = ("VARIABLE", "SET", "JOBS", "PROTECTED", "MASKED", "FOR")
    rows = [(v.name, _yes(v.is_set), _jobs(v), _yes(v.protected), _yes(v.masked), v.purpose) for v in variables]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
             for row in [head, *rows]]
    missing = [v.name for v in variables if not v.is_set and not v.optional]
    lines.append(f"\n{len(variables)} variable(s), {len(missing)} needed and not set here"
                 + (f": {', '.join(missing)}" if missing else ""))
    trusted = next((v for v in variables if v.value is not None), None)
    if trusted is not None:
        lines.append(f"{trusted.name} for this inventory: {trusted.value}")
    return "\n".join(lines) + "\n"


def render_json(variables: list[Variable]) -> str:
    return json.dumps({"variables": [v.as_dict() for v in variables]}, indent=2) + "\n"


def render_dotenv(variables: list[Variable]) -> str:
    """A template to fill in: one commented `NAME=` per variable (a value only where it is no secret)."""
    lines = []
    for v in variables:
        how = ", ".join(s for s in ("protected" if v.protected else "", "masked" if v.masked else "") if s)
        lines += [f"# {v.purpose}", f"# jobs: {_jobs(v)}; {how or 'plain'}",
                  f"{v.name}={shlex.quote(v.value) if v.value else ''}", ""]
    return "\n".join(lines)


RENDERERS = {"text": render_text, "json": render_json, "dotenv-template": render_dotenv}


def missing_for_apply(variables: list[Variable], rotated: Iterable[str]) -> list[str]:
    """The variables an apply of a plan needs and this environment lacks: every credential and
    the escrow key, and a supplied value only when the plan rotates its token (`rotated`: token
    names). The trusted provider set is left out: an apply on the default branch trusts the
    inventory without it."""
    rotating = set(rotated)
    return [v.name for v in variables
            if "apply" in v.jobs and not v.is_set and not v.optional and v.name != TRUSTED_PROVIDERS_ENV
            and (not v.supplies or v.supplies & rotating)]


def missing_variables_note(variables: list[Variable], plan: Plan) -> str:
    """A line for the merge request's plan note naming the variables an apply of `plan` needs
    that this pipeline lacks (an unset external value fails the apply after its other
    rotations); empty when none is missing."""
    missing = missing_for_apply(variables, [t.name for t in plan.tokens if t.action != "none"])
    if not missing:
        return ""
    names = ", ".join(f"`{name}`" for name in missing)
    return (f"\n**Not set in this pipeline, needed by the apply:** {names} "
            "(`reconcile env --job apply` says what each is for).\n")
