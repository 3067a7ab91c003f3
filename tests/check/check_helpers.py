"""Worlds for the check and discover tests: a sandbox seed and a matching inventory directory,
served as `reconcile sandbox` serves them (the --sandbox commands find it through the env)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import gitlab
import pytest
import yaml

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.world import World, derive, start_world

PINNED = datetime(2026, 11, 22, 12, tzinfo=UTC)
NOW = "2026-11-22T12:00:00Z"
GITLAB_ENV, ZENDESK_ENV = "RECONCILE_TEST_GITLAB", "RECONCILE_TEST_ZENDESK"

PROVIDERS = {
    "providers": {
        "gl": {"kind": "gitlab", "url": "https://gitlab.example", "title": "GitLab Example",
               "auth": {"token_env": GITLAB_ENV}},
        "zd": {"kind": "zendesk", "subdomain": "acme", "title": "Zendesk Acme", "auth": {"oauth_token_env": ZENDESK_ENV}},
    }
}


def write_inventory(root: Path, tokens: dict, *, discovery: dict | None = None, check: dict | None = None,
                    defaults: dict | None = None) -> Path:
    """An inventory directory: providers.yaml, settings.yaml (discovery, check, defaults) and tokens.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "providers.yaml").write_text(yaml.safe_dump(PROVIDERS, sort_keys=False))
    settings: dict = {"defaults": defaults or {"rotation": {"rotate_before": "21d", "lifetime": "300d"}}}
    if discovery:
        settings["discovery"] = discovery
    if check:
        settings["check"] = check
    (root / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    if tokens:
        (root / "tokens.yaml").write_text(yaml.safe_dump({"tokens": tokens}, sort_keys=False))
    elif (root / "tokens.yaml").exists():
        (root / "tokens.yaml").unlink()
    return root


@contextmanager
def served(seed: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """Start the world from `seed` (written under tmp_path/sandbox/, which the leak guard skips:
    it names placeholders only) and export what `reconcile sandbox` would."""
    seed_dir = tmp_path / "sandbox"
    seed_dir.mkdir(exist_ok=True)
    path = seed_dir / "seed.yaml"
    path.write_text(yaml.safe_dump(seed, sort_keys=False))
    world = start_world(path, now=PINNED)
    for name, value in world.credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, world.gitlab.url)
    monkeypatch.setenv(SANDBOX_ENV_ZENDESK, world.endpoints.zendesk_netloc)
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI",
                 "RECONCILE_NOW"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def gl_client(world: World) -> gitlab.Gitlab:
    """A python-gitlab client of the test actor (the world's GitLab credential user)."""
    return gitlab.Gitlab(world.gitlab.url, private_token=world.credentials[GITLAB_ENV], timeout=5, keep_base_url=True)


def secret(prefix: str, name: str) -> str:
    """The value a `{{secret:PREFIX:NAME}}` placeholder stands for (tests hold it, never print it)."""
    return derive(prefix, name)
