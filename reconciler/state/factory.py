"""`open_store`: the configured state backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.inventory.model import GitLabProvider, Provider, StateConfig
from reconciler.state.errors import StateError
from reconciler.state.local import LocalStore
from reconciler.state.store import StateStore

GitLabFactory = Callable[[GitLabProvider, Mapping[str, str]], object]


def gitlab_state_client(provider: GitLabProvider, env: Mapping[str, str]):
    """A python-gitlab client for the state endpoint: the provider's token when set, else in CI
    the job token (when the job runs on that same GitLab)."""
    import gitlab  # lazily: commands that never touch GitLab start faster

    token = env.get(provider.token_env, "")
    if token:
        return gitlab.Gitlab(provider.url, private_token=token, timeout=30, retry_transient_errors=True)
    job_token = env.get("CI_JOB_TOKEN", "")
    same_server = env.get("CI_SERVER_URL", "").rstrip("/") == provider.url.rstrip("/")
    if job_token and same_server:
        return gitlab.Gitlab(provider.url, job_token=job_token, timeout=30, retry_transient_errors=True)
    raise StateError(
        f"state backend gitlab: provider {provider.name}: set {provider.token_env} "
        f"(or run in a CI job on {provider.url}, whose CI_JOB_TOKEN is used)"
    )


def open_store(
    config: StateConfig,
    providers: Mapping[str, Provider],
    env: Mapping[str, str] | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    make_gitlab: GitLabFactory = gitlab_state_client,
) -> StateStore:
    """The store `config` names. A relative local path is taken from `base_dir` (default: the
    current directory). Configuration errors name the inventory position of the key."""
    env = os.environ if env is None else env
    if config.backend == "local":
        path = Path(config.path)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return LocalStore(path)
    if config.backend == "gitlab":
        from reconciler.state.gitlab import GitLabStore

        provider = providers.get(config.provider or "")
        if not isinstance(provider, GitLabProvider):
            raise StateError(
                f"{config.at('provider')}: state.provider: the gitlab backend needs a GitLab provider "
                f"(got {config.provider!r})"
            )
        if not config.project:
            raise StateError(f"{config.at('project')}: state.project: the gitlab backend needs a project")
        return GitLabStore(make_gitlab(provider, env), config.project, config.name)
    raise StateError(f"{config.at('backend')}: state.backend: unknown backend {config.backend!r}")
