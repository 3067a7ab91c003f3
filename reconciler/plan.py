"""The plan: what apply will do to each token and consumer, and why.

The plan model (`Plan`, `TokenPlan`, `ConsumerPlan`, `Finding`, `Reason`, `Change`, their JSON
form and `SCHEMA_VERSION`) lives in `reconciler.plan_model`; the planner, the pure function
`plan(inventory, observed, ledger, now, ...)`, in `reconciler.planner`. Both are importable from
here.
"""

from __future__ import annotations

from reconciler.plan_model import (
    SCHEMA_VERSION,
    Change,
    ConsumerAction,
    ConsumerPlan,
    Finding,
    Plan,
    Reason,
    TokenAction,
    TokenPlan,
)
from reconciler.planner import plan

__all__ = ["SCHEMA_VERSION", "Change", "ConsumerAction", "ConsumerPlan", "Finding", "Plan", "Reason", "TokenAction",
           "TokenPlan", "plan"]
