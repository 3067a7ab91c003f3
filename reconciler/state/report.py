"""What `reconcile state show` prints: the ledger, the escrow's pending tokens, the OAuth grants
whose refresh tokens it keeps, and the lock.
Never a value: the ledger has none, and the escrow is listed by its metadata only."""

from __future__ import annotations

from typing import Any

from reconciler.state.escrow import Escrow
from reconciler.state.local import LocalStore
from reconciler.state.store import LockInfo, StateStore

LEDGER_COLUMNS = ("consumer", "token", "token_id", "token_created_at", "fingerprint", "delivered_at", "verified",
                  "established", "established_by")


def state_summary(store: StateStore, escrow: Escrow, *, probe_lock: bool | None = None) -> dict[str, Any]:
    """The state as a JSON-able dict. The lock is read on a local store; on GitLab only when
    `probe_lock` (there it costs a lock and unlock request)."""
    probe = isinstance(store, LocalStore) if probe_lock is None else probe_lock
    holder: LockInfo | None = store.lock_holder() if probe else None
    ledger = store.load_ledger()
    return {
        "backend": store.where,
        "ledger": [r.to_json() for r in ledger.records()],
        "kept": [{"token": token, **k.for_storage()} for token, ids in sorted(ledger.kept.items())
                 for _, k in sorted(ids.items())],
        "escrow": [
            {"token": p.token, "token_id": p.token_id, "minted_at": p.minted_at} for p in escrow.pending()
        ],
        "grants": [{"token": token, "kept_at": kept} for token, kept in escrow.grants()],
        "escrow_key": "set" if escrow.available else "not set",
        "lock": None if not probe else (holder.to_json() if holder else "free"),
    }


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def render_summary(summary: dict[str, Any]) -> str:
    lines = [f"state: {summary['backend']}", ""]
    ledger = summary["ledger"]
    if ledger:
        rows = [
            [
                r["consumer"],
                r["token"],
                r["token_id"],
                r["token_created_at"],
                r["fingerprint"][:19] + "…" if r["fingerprint"] else "(not read)",  # enough to compare by eye
                r["delivered_at"],
                "yes" if r["verified"] else "no (write-only)",
                f"{r.get('established', 'delivered')} by {r.get('established_by', 'reconcile apply')}",
            ]
            for r in ledger
        ]
        lines += _table(rows, ["CONSUMER", "TOKEN", "TOKEN ID", "CREATED", "FINGERPRINT", "RECORDED", "VERIFIED",
                               "HOW"])
    else:
        lines.append("ledger: empty")
    lines.append("")
    if summary["kept"]:
        lines.append("kept until quiet (the next apply revokes each once it is; `apply --force-revoke TOKEN` now):")
        lines += [f"  {k['token']}: token id {k['token_id']}, kept {k['kept_at']}: {k['why']}" for k in summary["kept"]]
    if summary["escrow"]:
        lines.append(f"escrow ({summary['escrow_key']} key): values minted but not yet delivered everywhere:")
        lines += [f"  {e['token']}: token id {e['token_id']}, minted {e['minted_at']}" for e in summary["escrow"]]
    else:
        lines.append(f"escrow: empty (key {summary['escrow_key']})")
    if summary["grants"]:
        lines.append("refresh tokens of OAuth grants (sealed, kept for good):")
        lines += [f"  {g['token']}: kept {g['kept_at']}" for g in summary["grants"]]
    lock = summary["lock"]
    if lock is None:
        lines.append("lock: not probed on this backend (`reconcile state unlock` shows the holder)")
    elif lock == "free":
        lines.append("lock: free")
    else:
        lines.append(f"lock: held by {lock['owner']} since {lock['created']} (lock id {lock['id']})")
    return "\n".join(lines)
