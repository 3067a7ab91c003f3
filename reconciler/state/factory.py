"""`open_store`: the configured state backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.inventory.model import GitLabProvider, Provider, StateConfig
from reconciler.state.errors import StateError
from reconciler.state.local import LocalStore
from reconciler.state.store import StateStore

if TYPE_CHECKING:
    import gitlab

    from reconciler.clients import Clients

STATE_TIMEOUT = 30.0
JOB_TOKEN_USER = "gitlab-ci-token"  # a CI job token as basic auth: user name

GitLabFactory = Callable[[GitLabProvider, Mapping[str, str], "Clients"], "gitlab.Gitlab"]


def gitlab_state_client(provider: GitLabProvider, env: Mapping[str, str], clients: Clients) -> gitlab.Gitlab:
    """A python-gitlab client for the state endpoint, through the provider's throttle: the
    provider's token when set, else in CI the job token (when the job runs on that same GitLab),
    sent as basic auth, the only form GitLab takes on the Terraform-state routes."""
    token = env.get(provider.token_env, "")
    if token:
        return clients.gitlab(provider.name, timeout=STATE_TIMEOUT, private_token=token)
    job_token = env.get("CI_JOB_TOKEN", "")
    same_server = env.get("CI_SERVER_URL", "").rstrip("/") == provider.url.rstrip("/")
    if job_token and same_server:
        return clients.gitlab(provider.name, timeout=STATE_TIMEOUT, http_username=JOB_TOKEN_USER,
                              http_password=job_token)
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
    clients: Clients | None = None,
    make_gitlab: GitLabFactory = gitlab_state_client,
) -> StateStore:
    """The store `config` names. A relative local path is taken from `base_dir` (default: the
    current directory). The gitlab backend reaches its provider through `clients` (the session's:
    one throttle for the state and everything else; default: clients of `providers` and `env`).
    Configuration errors name the inventory position of the key."""
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
        if clients is None:
            from reconciler.clients import Clients, ProviderError
            from reconciler.trust import TrustError, trust_from_env

            try:
                clients = Clients.from_env(providers, env, trust=trust_from_env(env))
            except (ProviderError, TrustError) as err:  # a bad RECONCILE_MAX_RATE, ..., RECONCILE_TRUSTED_PROVIDERS
                raise StateError(str(err)) from None
        return GitLabStore(make_gitlab(provider, env, clients), config.project, config.name)
    raise StateError(f"{config.at('backend')}: state.backend: unknown backend {config.backend!r}")
