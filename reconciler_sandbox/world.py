"""The embedded sandbox world of `--sandbox`: the GitLab and Zendesk sandboxes started in-process
with one shared `Clock`, seeded from a world seed (default `seeds/example.yaml`), with the
credentials the inventory's environment variables name.

A world seed has three keys: `gitlab` (docs/sandbox-gitlab.md), `zendesk` (docs/sandbox-zendesk.md)
and `credentials` (environment variable -> value). A directory in place of a seed file is an
inventory: the world is built from it (`from_inventory`). Values are written as `{{secret:PREFIX:NAME}}`
placeholders, replaced by a value derived from NAME (so the seed file holds no credential and the
same placeholder is the same value everywhere). The escrow key variable of the inventory gets a
fresh key.

Persistence: with a `state_dir` (the CLI uses `.reconcile/sandbox/`), the world is loaded from
`gitlab.sandbox.json`, `zendesk.sandbox.json` and `world.sandbox.json` there when they exist (so plan, apply, plan
converges) and saved back by `save()`; `reset=True` seeds it afresh, with an empty ledger and
escrow. Each file is written whole and renamed into place, so a process killed while saving leaves the previous world, never half of
one. `changes()` counts the applied changes, so a long-running server (`reconcile sandbox`) can
save after each.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from reconciler.clients import Endpoints
from reconciler_sandbox.core import Clock, SandboxServer

SEEDS_DIR = Path(__file__).parent / "seeds"
DEFAULT_SEED = SEEDS_DIR / "example.yaml"
STATE_DIR = Path(".reconcile") / "sandbox"
ESCROW_ENV = "RECONCILE_ESCROW_KEY"

_PLACEHOLDER = re.compile(r"\{\{secret:([A-Za-z0-9]*):([A-Za-z0-9_.-]+)\}\}")


class WorldError(Exception):
    """A world seed or saved world that cannot be used; the message names the file."""


def derive(prefix: str, name: str) -> str:
    """The demo value of a placeholder: stable, credential-shaped, not anyone's secret."""
    body = hashlib.sha256(f"reconcile-sandbox/{name}".encode()).hexdigest()[:32]
    return f"{prefix}-{body}" if prefix else body


def load_world_seed(path: str | Path, now: datetime | None = None) -> dict[str, Any]:
    """The world seed in the file `path`, or built from the inventory in the directory `path`
    (`from_inventory`: every declared token and consumer exists, holding its current value, at
    `now`)."""
    path = Path(path)
    if path.is_dir():
        from reconciler_sandbox.from_inventory import inventory_seed

        return inventory_seed(path, now)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorldError(f"{path}: cannot read the sandbox seed ({exc.strerror})") from None
    text = _PLACEHOLDER.sub(lambda m: derive(m.group(1), m.group(2)), text)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise WorldError(f"{path}: not valid YAML: {exc}") from None
    unknown = sorted(set(data) - {"gitlab", "zendesk", "credentials"}) if isinstance(data, dict) else ["(not a mapping)"]
    if unknown:
        raise WorldError(f"{path}: unknown key(s) {', '.join(unknown)} (expected gitlab, zendesk, credentials)")
    return data


@dataclass
class World:
    clock: Clock
    gitlab: SandboxServer
    zendesk: SandboxServer
    credentials: dict[str, str]
    state_dir: Path | None = None
    seed: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(gitlab_url=self.gitlab.url, zendesk_netloc=f"127.0.0.1:{self.zendesk.port}")

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (e.g. os.environ) with the world's credentials over it: a copy, the process
        environment is not changed."""
        return {**(base or {}), **self.credentials}

    def mutations(self) -> int:
        return len(self.gitlab.log.mutations()) + len(self.zendesk.log.mutations())

    def requests(self) -> int:
        return self.gitlab.log.count() + self.zendesk.log.count()

    def changes(self) -> int:
        """Changes applied so far (mutating requests that succeeded), on both servers."""
        return self.gitlab.faults.mutations + self.zendesk.faults.mutations

    def save(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # world.sandbox.json last: its presence means a complete world is saved
        for name, service in (("gitlab.sandbox.json", self.gitlab.service), ("zendesk.sandbox.json", self.zendesk.service)):
            with _replacing(self.state_dir / name) as tmp:
                service.save(tmp)
        with _replacing(self.state_dir / "world.sandbox.json") as tmp:
            tmp.write_text(json.dumps({"seed": self.seed, "credentials": self.credentials}, indent=1, sort_keys=True))

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.gitlab.stop()
            self.zendesk.stop()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _replacing:
    """A temporary file beside `path`, renamed over it when the block ends without an error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _forget_state(state: Path) -> None:
    """A world seeded afresh starts with an empty ledger and escrow: what an apply recorded about
    the old world's tokens (and values sealed with its escrow key, which is made anew) describes
    tokens this world does not have."""
    from reconciler.state.local import ESCROW_FILE, JOURNAL_FILE, LEDGER_FILE

    for name in (LEDGER_FILE, JOURNAL_FILE, ESCROW_FILE):
        (state / name).unlink(missing_ok=True)


def start_world(
    seed: str | Path | None = None,
    *,
    state_dir: str | Path | None = None,
    now: datetime | None = None,
    reset: bool = False,
    gitlab_port: int = 0,
    zendesk_port: int = 0,
    escrow_env: str = ESCROW_ENV,
) -> World:
    """Start both sandboxes on loopback. `now` pins the shared clock (else it follows real time)."""
    from reconciler.state import generate_key
    from reconciler_sandbox.gitlab import GitLabService
    from reconciler_sandbox.zendesk import DEFAULT_RATE_LIMIT, ZendeskService

    clock = Clock(now)
    seed_path = Path(seed) if seed is not None else DEFAULT_SEED
    state = Path(state_dir) if state_dir is not None else None
    saved = state is not None and (state / "world.sandbox.json").is_file() and not reset
    gitlab_service, zendesk_service = GitLabService(clock), ZendeskService(clock)
    if saved:
        assert state is not None
        try:
            meta = json.loads((state / "world.sandbox.json").read_text())
            gitlab_service.load(state / "gitlab.sandbox.json")
            zendesk_service.load(state / "zendesk.sandbox.json")
        except (OSError, ValueError, KeyError) as exc:
            raise WorldError(f"{state}: the saved sandbox world is unreadable ({exc}); run with --reset") from None
        credentials = dict(meta["credentials"])
        seed_name = str(meta.get("seed", ""))
        if seed is not None and Path(seed_name).resolve() != seed_path.resolve():
            # Planning the saved world while the user names another seed would test the wrong world.
            raise WorldError(f"{state} holds the world seeded from {seed_name}, not {seed_path}; "
                             "add --sandbox-reset to seed it afresh")
    else:
        if state is not None:
            _forget_state(state)
        data = load_world_seed(seed_path, clock.now())
        try:
            gitlab_service.seed(data.get("gitlab") or {})
            zendesk_service.seed(data.get("zendesk") or {"instances": {}})
        except ValueError as exc:
            raise WorldError(f"{seed_path}: {exc}") from None
        credentials = {str(k): str(v) for k, v in (data.get("credentials") or {}).items()}
        credentials.setdefault(escrow_env, generate_key())
        seed_name = str(seed_path)
    from reconciler_sandbox.core import RateLimiter

    gitlab = SandboxServer(gitlab_service, port=gitlab_port).start()
    zendesk = SandboxServer(zendesk_service, port=zendesk_port,
                            rate_limit=RateLimiter(limit=DEFAULT_RATE_LIMIT, window=60.0)).start()
    world = World(clock=clock, gitlab=gitlab, zendesk=zendesk, credentials=credentials, state_dir=state,
                  seed=seed_name)
    if not saved:
        world.save()
    return world
