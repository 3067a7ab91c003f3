"""Which providers this run may contact: the trusted provider set.

A provider is where reconcile sends a credential: its own (the variable its `*_env` key names) and
every value read from a consumer that is identified there. Both the provider's address and that
variable name are inventory text, so a change under review could otherwise choose where the
job's secrets go. Trust therefore comes from the job's environment, never from the inventory
being planned:

- `RECONCILE_TRUSTED_PROVIDERS` (a protected CI/CD variable, or a reviewer's shell profile):
  entries `ORIGIN=ENV_NAME`, separated by spaces, commas or newlines, e.g.
  `https://gitlab.com=RECONCILE_GITLAB_TOKEN https://gitlab.zendesk.com=RECONCILE_ZENDESK_GLOBAL_TOKEN`.
  A provider is trusted when its origin (a GitLab `url`, a Zendesk `https://SUBDOMAIN.DOMAIN`)
  and the credential variable it names are one entry. Any other provider is not contacted.
- `RECONCILE_TRUSTED_INVENTORY`: the path of another inventory, a checkout of the default
  branch outside the one under review (e.g. `git worktree add ../main main`); its providers'
  origins and credential variables are trusted entries (with the variable above: both).
- Without either, in a GitLab CI merge-request pipeline: no provider is trusted (the inventory there
  is the change under review).
- Without either anywhere else (the default branch's pipelines and schedules, a workstation): the
  inventory's providers, as checked out, are trusted.
- Sandbox mode (`--sandbox`): every provider is reached at the loopback sandbox whatever its
  address, so all are trusted.

Where a provider is reached may be overridden from the environment, never from the inventory:
`RECONCILE_SANDBOX_GITLAB_URL` (every GitLab provider) and `RECONCILE_SANDBOX_ZENDESK_NETLOC`
(every Zendesk instance, as `HOST:PORT`), the variables `reconcile sandbox` prints. The trusted
set above still decides which providers are contacted; the override only says where. An override
is refused unless it points at loopback (a sandbox on this machine) or its origin is an entry of
`RECONCILE_TRUSTED_PROVIDERS`, so a change that sets it cannot send the job's credentials to a
host nobody trusted. It does not yet check that the trusted entry is one of the redirected
providers' own: with two trusted origins, an override naming one sends the other's credentials
there too (only the job's environment can set either variable).

Zendesk instances live under `zendesk.com`; `RECONCILE_ZENDESK_DOMAINS` (the environment, for
sandboxes and tests) may add other domains.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.errors import ReconcileError
from reconciler.inventory.model import GitLabProvider, Provider

TRUSTED_PROVIDERS_ENV = "RECONCILE_TRUSTED_PROVIDERS"
TRUSTED_INVENTORY_ENV = "RECONCILE_TRUSTED_INVENTORY"
SANDBOX_ENV_GITLAB = "RECONCILE_SANDBOX_GITLAB_URL"  # set by `reconcile sandbox`: reach every GitLab there
SANDBOX_ENV_ZENDESK = "RECONCILE_SANDBOX_ZENDESK_NETLOC"  # HOST:PORT: reach every Zendesk instance there
ZENDESK_DOMAINS_ENV = "RECONCILE_ZENDESK_DOMAINS"
ZENDESK_DOMAIN = "zendesk.com"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TrustError(ReconcileError):
    """The trusted provider set cannot be read (one line naming the variable, exit 1)."""


def zendesk_domains(env: Mapping[str, str]) -> frozenset[str]:
    """The domains a Zendesk provider may name: zendesk.com, and those RECONCILE_ZENDESK_DOMAINS adds."""
    extra = re.split(r"[\s,]+", env.get(ZENDESK_DOMAINS_ENV, "").strip().lower())
    return frozenset({ZENDESK_DOMAIN, *(d for d in extra if d)})


def origin(url: str) -> str:
    """`scheme://host[:port][/path]`, lower-cased scheme and host, no trailing slash: how a
    provider's address and a trusted entry are compared."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def provider_origin(provider: Provider) -> str:
    if isinstance(provider, GitLabProvider):
        return origin(provider.url)
    return f"https://{provider.subdomain}.{provider.domain.lower()}"


def credential_env(provider: Provider) -> str:
    """The variable whose value is sent to the provider as its credential."""
    envs = provider.credential_envs
    return envs[0] if envs else ""


def parse_trusted(text: str) -> frozenset[tuple[str, str]]:
    """RECONCILE_TRUSTED_PROVIDERS as (origin, credential variable) pairs; a bad entry is a
    TrustError naming it (the variable holds addresses and names, no secret)."""
    found = set()
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry:
            continue
        address, sep, env_name = entry.rpartition("=")
        parts = urlsplit(address)
        if (not sep or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
                or parts.password or parts.query or parts.fragment or not _ENV_NAME.fullmatch(env_name)):
            raise TrustError(f"${TRUSTED_PROVIDERS_ENV}: {entry!r} is not ORIGIN=ENV_NAME "
                             "(e.g. https://gitlab.com=RECONCILE_GITLAB_TOKEN)")
        found.add((origin(address), env_name))
    return frozenset(found)


def inventory_entries(path: str) -> frozenset[tuple[str, str]]:
    """The (origin, credential variable) pairs of the providers of the inventory at `path` (the
    default branch's); none for no path. One that does not load is a TrustError."""
    if not path:
        return frozenset()
    from reconciler.errors import DiagnosticsError
    from reconciler.inventory import load_inventory

    try:
        providers = load_inventory(path).providers
    except (DiagnosticsError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrustError(f"${TRUSTED_INVENTORY_ENV}: {path} is not a valid inventory ({first})") from None
    return frozenset((provider_origin(p), credential_env(p)) for p in providers.values())


def merge_request_pipeline(env: Mapping[str, str]) -> bool:
    """A GitLab CI pipeline of a merge request: its inventory is the change under review."""
    return env.get("CI_PIPELINE_SOURCE") == "merge_request_event" or bool(env.get("CI_MERGE_REQUEST_IID"))


@dataclass(frozen=True)
class Trust:
    """The trusted provider set of one run. `entries` None: every provider of the inventory."""

    source: str  # where the trust comes from, or why a provider is outside it: for messages
    entries: frozenset[tuple[str, str]] | None = None
    zendesk_domains: frozenset[str] = frozenset({ZENDESK_DOMAIN})

    def refusal(self, name: str, provider: Provider) -> str | None:
        """Why `provider` must not be contacted in this run, or None when it is trusted."""
        where = provider_origin(provider)
        if not isinstance(provider, GitLabProvider) and provider.domain.lower() not in self.zendesk_domains:
            return (f"provider {name} ({where}) is not trusted: a Zendesk instance is under {ZENDESK_DOMAIN} "
                    f"(${ZENDESK_DOMAINS_ENV} adds others for a sandbox); not contacted")
        if self.entries is None or (where, credential_env(provider)) in self.entries:
            return None
        return (f"provider {name} ({where}, credential ${credential_env(provider)}) is not in the trusted "
                f"provider set: {self.source}; not contacted")


TRUST_ALL = Trust("the inventory")


def trust_from_env(env: Mapping[str, str], *, sandbox: bool = False) -> Trust:
    """The trusted provider set of a run in environment `env` (module docstring)."""
    domains = zendesk_domains(env)
    if sandbox:
        return Trust("sandbox: every provider is the loopback sandbox", None, domains)
    text, trusted_inventory = env.get(TRUSTED_PROVIDERS_ENV, "").strip(), env.get(TRUSTED_INVENTORY_ENV, "").strip()
    if text or trusted_inventory:
        entries = (parse_trusted(text) if text else frozenset()) | inventory_entries(trusted_inventory)
        names = " or ".join(f"${n}" for n, v in ((TRUSTED_PROVIDERS_ENV, text), (TRUSTED_INVENTORY_ENV, trusted_inventory))
                            if v)
        return Trust(f"{names} does not name it (a provider a change adds or alters is planned once the trusted "
                     "set names it)", entries, domains)
    if merge_request_pipeline(env):
        return Trust(f"a merge-request pipeline trusts no provider without ${TRUSTED_PROVIDERS_ENV} "
                     "(a protected CI/CD variable)", frozenset(), domains)
    return Trust("the inventory", None, domains)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_refusal(env_name: str, address: str, env: Mapping[str, str]) -> str | None:
    """Why the endpoint override `address` (the value of `env_name`) must not be used, or None:
    an http(s) address without user, query or fragment, on loopback or at an origin
    RECONCILE_TRUSTED_PROVIDERS names (module docstring). The message never repeats a malformed
    value (it could be anything)."""
    parts = urlsplit(address.strip())
    try:
        port_readable = parts.port is None or parts.port >= 0
    except ValueError:
        port_readable = False
    if (not port_readable or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.password or parts.query or parts.fragment):
        return f"${env_name}: not an http(s) address without user, query or fragment"
    if _loopback(parts.hostname.lower()):
        return None
    text = env.get(TRUSTED_PROVIDERS_ENV, "").strip()
    if text and origin(address) in {where for where, _ in parse_trusted(text)}:
        return None
    return (f"${env_name}: {origin(address)} is neither loopback nor named by ${TRUSTED_PROVIDERS_ENV}; refused, "
            "so that no credential is sent there")


def trusted_value(providers: Mapping[str, Provider]) -> str:
    """The RECONCILE_TRUSTED_PROVIDERS value that trusts exactly `providers` (run on the default
    branch's inventory)."""
    return " ".join(sorted(f"{provider_origin(p)}={credential_env(p)}" for p in providers.values()))
