"""Synthetic worlds for the benchmarks: an inventory directory, the matching sandbox world seed and
the ledger a previous apply would have left, all deterministic from a seed number.

    python benchmarks/generate.py OUT_DIR --tokens 1000 --consumers 5000 --projects 200 --zendesk 2

writes

    OUT_DIR/inventory/{providers,policy}.yaml, OUT_DIR/inventory/tokens/*.yaml
    OUT_DIR/world.yaml      a world seed for `reconciler_sandbox.world.start_world` (values are
                            `{{secret:PREFIX:NAME}}` placeholders: the files hold no credential)
    OUT_DIR/state/ledger.json   what reconcile delivered before (fingerprints only)
    OUT_DIR/manifest.json   the parameters and what was generated (counts per kind, drift)

The world has every source kind and every consumer kind, GitLab projects in groups (consumers
spread over them with a Zipf skew, so that a few projects need several pages), and a realistic
share of trouble: tokens expiring within `rotate_before`, tokens missing, consumers holding a
stale value, consumers the ledger has never seen, missing CI variables, drifted attributes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reconciler.secret import Secret  # noqa: E402
from reconciler.state import LocalStore  # noqa: E402
from reconciler.state.ledger import Ledger, LedgerRecord  # noqa: E402
from reconciler_sandbox.world import derive  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # the pinned sandbox clock of every benchmark
GITLAB = "gitlab-bench"
GITLAB_ENV = "BENCH_GITLAB_TOKEN"
BOT = "bench-bot"  # the credential's user (an admin: it lists instance variables)
OTHER = "bench-other"  # owns a share of the triggers (their tokens are not shown to the bot)

SOURCE_MIX = {  # share of N
    "gitlab_project_access_token": 0.25,
    "gitlab_pipeline_trigger": 0.25,
    "gitlab_group_access_token": 0.05,
    "gitlab_personal_access_token": 0.10,
    "zendesk_oauth_token": 0.15,
    "zendesk_oauth_client_secret": 0.05,
    "zendesk_api_token": 0.05,
    "external": 0.10,
}
CONSUMER_MIX = {  # share of M
    "gitlab_ci_variable": 0.50,
    "gitlab_webhook": 0.15,
    "zendesk_app_setting": 0.15,
    "zendesk_webhook": 0.20,
}
SETTINGS_PER_INSTALLATION = 5


@dataclass
class Params:
    tokens: int = 1000
    consumers: int = 5000
    projects: int = 200
    zendesk: int = 2
    seed: int = 1
    expiring: float = 0.08  # tokens expiring within rotate_before (21d)
    missing_tokens: float = 0.03  # of the kinds that can be created beside nothing
    stale: float = 0.04  # consumers holding an older value than the one the ledger records
    unrecorded: float = 0.03  # consumers the ledger has no record of (holding the current value)
    missing_variables: float = 0.02  # CI variables not there at all
    attribute_drift: float = 0.03  # CI variables whose `masked` differs from the inventory
    not_before: str | None = None  # every token's rotation.not_before (the incident lever: rotate all)
    not_before_every: int = 1  # ... of every n-th token only (10: a tenth of the world is due)
    source_mix: dict[str, float] = field(default_factory=lambda: dict(SOURCE_MIX))


def counts(total: int, mix: dict[str, float]) -> dict[str, int]:
    """`total` split by `mix` (largest remainder), so the parts add up exactly."""
    weights = sum(mix.values())
    raw = {k: total * v / weights for k, v in mix.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (out[k] - raw[k], k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


class Generator:
    def __init__(self, p: Params) -> None:
        self.p = p
        self.rng = random.Random(p.seed)
        ngroups = max(1, p.projects // 10)
        self.groups = [f"bench/g{g:02d}" for g in range(ngroups)]
        self.projects = [f"{self.groups[i % ngroups]}/p{i:04d}" for i in range(p.projects)]
        self.zendesks = [f"zendesk-{k + 1}" for k in range(p.zendesk)]
        self.inventory: dict[str, dict[str, Any]] = {}
        self.gitlab: dict[str, list[Any]] = {k: [] for k in ("users", "projects", "access_tokens", "triggers",
                                                             "variables", "hooks")}
        self.zd: dict[str, dict[str, list[Any]]] = {
            z: {k: [] for k in ("oauth_clients", "oauth_tokens", "api_tokens", "apps", "installations", "webhooks")}
            for z in self.zendesks}
        self.pending: list[tuple[str, int, dict[str, Any], str]] = []  # ledger records to write
        self.inventory_consumers: dict[str, list[dict[str, Any]]] = {}
        self.stats: Counter[str] = Counter()
        self.ids = {"gitlab_tokens": 1000, "triggers": 1000, "zendesk": 100000}
        self.live: dict[str, dict[str, Any]] = {}  # token name -> {id, created_at, value_name, prefix}
        self.installations: dict[str, list[tuple[str, str, bool]]] = {z: [] for z in self.zendesks}

    # --- helpers ---------------------------------------------------------------------------

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def when(self, days: int) -> str:
        return f"now{days:+d}d" if days else "now"

    @staticmethod
    def placeholder(prefix: str, name: str) -> str:
        return "{{secret:" + prefix + ":" + name + "}}"

    # --- sources ---------------------------------------------------------------------------

    def source(self, i: int, kind: str) -> dict[str, Any]:
        """The inventory `source:` of token i, and its live counterpart in the seed."""
        p = self.p
        name = f"bench-{i:04d}"
        age = self.rng.randint(5, 150)
        expiring = self.chance(p.expiring)
        expires = self.rng.randint(2, 20) if expiring else self.rng.randint(40, 330)
        self.stats["expiring"] += expiring
        can_be_missing = kind in ("gitlab_pipeline_trigger", "gitlab_project_access_token", "zendesk_oauth_token")
        missing = can_be_missing and self.chance(p.missing_tokens)
        self.stats["missing_tokens"] += missing
        # the ledger names an instance by its id and its creation time (`now-{age}d` on the pinned clock)
        created = (NOW - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
        live: dict[str, Any] = {"value": f"{name}-v1", "missing": missing, "created_at": created}
        gl_prefix = "glptt" if kind == "gitlab_pipeline_trigger" else "glpat"
        common = {"created_at": self.when(-age), "expires_at": self.when(expires)}
        if kind == "gitlab_personal_access_token":
            src = {"kind": kind, "provider": GITLAB, "name": f"Bench PAT {i}", "scopes": ["api"]}
            live.update(prefix=gl_prefix, id=self.next_id("gitlab_tokens"))
            self.bot_tokens.append({"id": live["id"], "name": src["name"], "scopes": ["api"], **common,
                                    "value": self.placeholder(gl_prefix, live["value"])})
        elif kind in ("gitlab_project_access_token", "gitlab_group_access_token"):
            where = "project" if kind == "gitlab_project_access_token" else "group"
            scope = self.rng.choice(self.projects if where == "project" else self.groups)
            src = {"kind": kind, "provider": GITLAB, where: scope, "name": f"Bench {where} token {i}",
                   "scopes": ["api"], "access_level": 30}
            if self.chance(0.5):
                src["strategy"] = "overlap"
            live.update(prefix=gl_prefix, id=self.next_id("gitlab_tokens"))
            if not missing:
                self.gitlab["access_tokens"].append({
                    where: scope, "id": live["id"], "name": src["name"], "scopes": ["api"], "access_level": 30,
                    **common, "value": self.placeholder(gl_prefix, live["value"])})
        elif kind == "gitlab_pipeline_trigger":
            project = self.rng.choice(self.projects)
            src = {"kind": kind, "provider": GITLAB, "project": project, "description": f"Bench trigger {i}"}
            live.update(prefix=gl_prefix, id=self.next_id("triggers"))
            if not missing:
                self.gitlab["triggers"].append({
                    "project": project, "id": live["id"], "owner": OTHER if self.chance(0.1) else BOT,
                    "description": src["description"], "created_at": self.when(-age),
                    "expires_at": self.when(expires), "value": self.placeholder(gl_prefix, live["value"])})
        elif kind.startswith("zendesk_"):
            z = self.rng.choice(self.zendesks)
            seed = self.zd[z]
            live.update(prefix="")
            if kind == "zendesk_oauth_token":
                client = f"bench_client_{i}"
                seed["oauth_clients"].append({"id": self.next_id("zendesk"), "identifier": client, "name": client})
                src = {"kind": kind, "provider": z, "client": client, "scopes": ["tickets:read", "tickets:write"]}
                live["id"] = self.next_id("zendesk")
                if not missing:
                    seed["oauth_tokens"].append({
                        "id": live["id"], "client": client, "scopes": src["scopes"], "created_at": self.when(-age),
                        "expires_at": self.when(expires), "used_at": "now-1d",
                        "value": self.placeholder("", live["value"])})
            elif kind == "zendesk_oauth_client_secret":
                client = f"bench_secret_client_{i}"
                live["id"] = self.next_id("zendesk")
                seed["oauth_clients"].append({"id": live["id"], "identifier": client, "name": client,
                                              "created_at": self.when(-age),
                                              "secret": self.placeholder("", live["value"])})
                src = {"kind": kind, "provider": z, "client": client}
            else:  # zendesk_api_token: observed only
                live["id"] = self.next_id("zendesk")
                src = {"kind": kind, "provider": z, "description": f"Bench API token {i}"}
                seed["api_tokens"].append({"id": live["id"], "description": src["description"],
                                           "created_at": self.when(-age), "last_used": "now-2d",
                                           "value": self.placeholder("", live["value"])})
        else:  # external: a person supplies the value
            src = {"kind": "external", "value_env": f"BENCH_EXTERNAL_{i:04d}", "expires_at": "2027-09-30"}
            live.update(prefix="ext", id=None)
        self.live[name] = live
        return src

    # --- consumers -------------------------------------------------------------------------

    def consumer(self, token: str, kind: str, k: int) -> dict[str, Any]:
        """The inventory entry of consumer k of `token`, and the place it names in the seed."""
        live = self.live[token]
        p = self.p
        stale = self.chance(p.stale)
        unrecorded = not stale and self.chance(p.unrecorded)
        held = f"{token}-old" if stale or live["missing"] else live["value"]
        value = self.placeholder(live["prefix"], held)
        missing = False
        if kind == "gitlab_ci_variable":
            roll = self.rng.random()
            scope: dict[str, Any] = ({"project": self.rng.choices(self.projects, self.project_weights)[0]}
                                     if roll < 0.80 else {"group": self.rng.choice(self.groups)} if roll < 0.95
                                     else {"instance": True})
            c = {"kind": kind, "provider": GITLAB, **scope, "key": f"BENCH_TOKEN_{k:05d}", "masked": True}
            hidden = "instance" not in scope and self.chance(0.10)
            if hidden:
                c["hidden"] = True
            missing = self.chance(p.missing_variables)
            if not missing:
                masked = not self.chance(p.attribute_drift)
                self.stats["attribute_drift"] += not masked
                self.gitlab["variables"].append({**scope, "key": c["key"], "value": value, "masked": masked,
                                                 "hidden": hidden})
            self.stats["missing_variables"] += missing
            rendered = self.placeholder(live["prefix"], live["value"])
        elif kind == "gitlab_webhook":
            scope = ({"project": self.rng.choices(self.projects, self.project_weights)[0]} if self.chance(0.85)
                     else {"group": self.rng.choice(self.groups)})
            hook = f"Bench hook {k:05d}"
            c = {"kind": kind, "provider": GITLAB, **scope, "hook": hook}
            roll = self.rng.random()
            entry: dict[str, Any] = {**scope, "name": hook, "url": f"https://hooks.example.com/bench/{k}"}
            if roll < 0.60:
                entry["token"] = value
            elif roll < 0.85:
                c["secret"] = {"custom_header": "X-Bench-Token"}
                entry["custom_headers"] = {"X-Bench-Token": value}
            else:
                c["secret"] = {"url_variable": "secret"}
                entry["url"] += "/{secret}"
                entry["url_variables"] = {"secret": value}
            if self.chance(0.2):
                c["mode"] = "recreate"
            self.gitlab["hooks"].append(entry)
            rendered = self.placeholder(live["prefix"], live["value"])
        elif kind == "zendesk_app_setting":
            z = self.rng.choice(self.zendesks)
            app, setting = self.app_slot(z, value)
            c = {"kind": kind, "provider": z, "app": app, "setting": setting}
            rendered = self.placeholder(live["prefix"], live["value"])
        else:  # zendesk_webhook
            z = self.rng.choice(self.zendesks)
            name = f"Bench Zendesk hook {k:05d}"
            c = {"kind": kind, "provider": z, "webhook": name}
            entry = {"name": name, "http_method": "POST", "request_format": "json",
                     "endpoint": f"https://ci.example.com/bench/{k}"}
            roll = self.rng.random()
            if roll < 0.4:
                template = f"https://ci.example.com/bench/{k}/trigger?token=${{token}}"
                c["endpoint"] = template
                entry["endpoint"] = template.replace("${token}", value)
                rendered = template.replace("${token}", self.placeholder(live["prefix"], live["value"]))
            elif roll < 0.8:
                c["authentication"] = {"type": "bearer_token"}
                entry["authentication"] = {"type": "bearer_token", "data": {"token": value}, "add_position": "header"}
                rendered = self.placeholder(live["prefix"], live["value"])
            else:
                c["authentication"] = {"type": "basic_auth", "username": "bench"}
                entry["authentication"] = {"type": "basic_auth", "data": {"username": "bench", "password": value},
                                           "add_position": "header"}
                rendered = self.placeholder(live["prefix"], live["value"])
            self.zd[z]["webhooks"].append(entry)
        self.stats["stale"] += stale
        self.stats["unrecorded"] += unrecorded or missing
        if live["missing"]:  # deleted out of band: the ledger still records the old value
            rendered = rendered.replace(live["value"], f"{token}-old")
        if not unrecorded and not missing:
            self.pending.append((token, len(self.inventory_consumers[token]), live, rendered))
        self.inventory_consumers[token].append(c)
        return c

    def app_slot(self, z: str, value: str) -> tuple[str, str]:
        """The next free setting of an installation of instance z, seeded with `value`."""
        seed = self.zd[z]
        slots = self.installations[z]
        if not slots:
            n = len(seed["installations"])
            app = f"Bench App {z} {n:04d}"
            params = [{"name": f"setting_{s}", "secure": self.chance(0.4)} for s in range(SETTINGS_PER_INSTALLATION)]
            seed["apps"].append({"id": self.next_id("zendesk"), "name": app, "parameters": params})
            seed["installations"].append({"id": self.next_id("zendesk"), "app": app, "settings": {"name": app}})
            slots.extend((app, prm["name"], prm["secure"]) for prm in reversed(params))
        app, setting, _ = slots.pop()
        seed["installations"][-1]["settings"][setting] = value
        return app, setting

    def ledger(self, inventory_dir: Path) -> Ledger:
        """What a previous apply delivered: identities come from the inventory as loaded."""
        from reconciler.inventory import load_inventory

        inv = load_inventory(inventory_dir)
        records = []
        for token, index, live, rendered in self.pending:
            value = rendered
            for prefix, name in _placeholders(rendered):
                value = value.replace(self.placeholder(prefix, name), derive(prefix, name))
            records.append(LedgerRecord(
                consumer=inv.tokens[token].consumers[index].identity, token=token,
                token_id=str(live["id"]) if live["id"] is not None else "external",
                token_created_at=live.get("created_at", "2026-06-01T00:00:00Z"), fingerprint=Secret(value).fingerprint(),
                delivered_at="2026-06-01T00:00:00Z", verified=True))
        return Ledger(records)

    # --- the whole world -------------------------------------------------------------------

    def build(self) -> None:
        p = self.p
        self.project_weights = zipf_weights(len(self.projects))
        self.rng.shuffle(self.project_weights)
        self.bot_tokens: list[dict[str, Any]] = [{
            "id": self.next_id("gitlab_tokens"), "name": "bench credential", "scopes": ["api"],
            "created_at": "now-10d", "expires_at": "now+300d", "value": self.placeholder("glpat", "bench-credential")}]
        kinds = [k for k, n in counts(p.tokens, p.source_mix).items() for _ in range(n)]
        self.rng.shuffle(kinds)
        tokens: dict[str, dict[str, Any]] = {}
        for i, kind in enumerate(kinds):
            name = f"bench-{i:04d}"
            tokens[name] = {"description": f"Synthetic token {i} ({kind})", "owner": "@bench",
                            "source": self.source(i, kind)}
            if p.not_before and i % max(1, p.not_before_every) == 0:
                tokens[name]["rotation"] = {"not_before": p.not_before}
            self.inventory_consumers[name] = []
        # every token gets one consumer, the rest go to tokens at random (some get many)
        names = list(tokens)
        owners = (names * (p.consumers // max(1, len(names)) + 1))[: min(p.consumers, len(names))]
        owners += self.rng.choices(names, k=max(0, p.consumers - len(owners)))
        ckinds = [k for k, n in counts(p.consumers, CONSUMER_MIX).items() for _ in range(n)]
        self.rng.shuffle(ckinds)
        for k, (owner, ckind) in enumerate(zip(owners, ckinds, strict=True)):
            self.consumer(owner, ckind, k)
        for name, tok in tokens.items():
            tok["consumers"] = self.inventory_consumers[name]
        self.inventory = tokens
        self.gitlab["users"] = [{"username": BOT, "admin": True, "tokens": self.bot_tokens},
                                {"username": OTHER}]
        self.gitlab["projects"] = [{"path_with_namespace": path} for path in self.projects]
        for k, z in enumerate(self.zendesks):
            # explicit ids out of the generated range: the sandbox does not check given ids against
            # the ones it picks itself, and a clash made a revoke delete the tool's own credential
            self.zd[z]["oauth_clients"].insert(0, {"id": 900001 + 2 * k, "identifier": "reconcile_bench",
                                                   "name": "Reconcile"})
            self.zd[z]["oauth_tokens"].insert(0, {"id": 900002 + 2 * k, "client": "reconcile_bench",
                                                  "scopes": ["read", "write"],
                                                  "value": self.placeholder("", f"{z}-credential")})

    def write(self, out: Path) -> dict[str, Any]:
        import shutil

        for stale in ("inventory", "state"):  # a world written over an older one keeps nothing of it
            shutil.rmtree(out / stale, ignore_errors=True)
        inv = out / "inventory"
        (inv / "tokens").mkdir(parents=True, exist_ok=True)
        providers = {GITLAB: {"kind": "gitlab", "url": "https://gitlab.bench.example", "auth": {"token_env": GITLAB_ENV}}}
        for z in self.zendesks:
            providers[z] = {"kind": "zendesk", "subdomain": f"bench-{z}", "title": f"Zendesk {z}",
                            "auth": {"oauth_token_env": env_name(z)}}
        _dump(inv / "providers.yaml", {"providers": providers})
        # the runner reads the ledger from OUT_DIR/state itself (a path here would make the files
        # depend on where they were written)
        _dump(inv / "policy.yaml", {"defaults": {"rotation": {"rotate_before": "21d", "lifetime": "365d"}}})
        names = list(self.inventory)
        for start in range(0, len(names), 100):
            chunk = {n: self.inventory[n] for n in names[start:start + 100]}
            _dump(inv / "tokens" / f"tokens-{start // 100:03d}.yaml", {"tokens": chunk})
        credentials = {GITLAB_ENV: self.placeholder("glpat", "bench-credential")}
        for z in self.zendesks:
            credentials[env_name(z)] = self.placeholder("", f"{z}-credential")
        for name, tok in self.inventory.items():
            if tok["source"]["kind"] == "external":
                credentials[tok["source"]["value_env"]] = self.placeholder("ext", f"{name}-v2")
        world = {"credentials": credentials, "gitlab": self.gitlab,
                 "zendesk": {"instances": {f"bench-{z}": self.zd[z] for z in self.zendesks}}}
        _dump(out / "world.yaml", world)
        ledger = self.ledger(inv)
        LocalStore(out / "state").save_ledger(ledger)
        manifest = {
            "params": asdict(self.p), "now": NOW.isoformat(),
            "sources": dict(sorted(Counter(t["source"]["kind"] for t in self.inventory.values()).items())),
            "consumers": dict(sorted(Counter(c["kind"] for t in self.inventory.values()
                                             for c in t["consumers"]).items())),
            "drift": dict(sorted(self.stats.items())), "ledger_records": len(ledger),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return manifest


def env_name(zendesk: str) -> str:
    return f"BENCH_{zendesk.upper().replace('-', '_')}_TOKEN"


def _placeholders(text: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r"\{\{secret:([A-Za-z0-9]*):([A-Za-z0-9_.-]+)\}\}", text)


def _dump(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=140))


def generate(out: str | Path, params: Params | None = None, **kw: Any) -> dict[str, Any]:
    """Write a world to `out` (see the module docstring); returns its manifest."""
    p = params or Params(**kw)
    g = Generator(p)
    g.build()
    return g.write(Path(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    for name, default in asdict(Params()).items():
        if isinstance(default, int | float) and not isinstance(default, bool):
            ap.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = vars(ap.parse_args(argv))
    out = args.pop("out")
    print(json.dumps(generate(out, Params(**args)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
