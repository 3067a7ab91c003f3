"""A Zendesk OAuth token whose scopes do not let it read itself (403 on `GET /oauth/tokens/current`)
is a live token: identification must say "cannot tell", not "invalid" (which would make the plan
overwrite a consumer that holds a working value)."""

from __future__ import annotations

import secrets

from reconciler.clients import Endpoints, ZendeskApi
from reconciler.inventory.model import ZendeskProvider
from reconciler.secret import Secret
from reconciler_sandbox.zendesk import serve_zendesk


def test_403_is_unknown_and_401_is_invalid():
    admin, scoped = secrets.token_hex(32), secrets.token_hex(32)
    seed = {"instances": {"acme": {"oauth_clients": [{"identifier": "sync"}], "oauth_tokens": [
        {"client": "sync", "scopes": ["read", "write"], "value": admin},
        {"client": "sync", "scopes": ["tickets:read"], "value": scoped}]}}}
    with serve_zendesk(seed) as server:
        provider = ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN")
        api = ZendeskApi(provider, Secret(admin), endpoints=Endpoints(zendesk_netloc=f"127.0.0.1:{server.port}"))
        assert api.identify_oauth_token(Secret(admin)).token_id is not None
        assert api.identify_oauth_token(Secret(scoped)) is None
        dead = api.identify_oauth_token(Secret(secrets.token_hex(32)))
        assert dead is not None and dead.invalid
    assert [e.status for e in server.log.snapshot()] == [200, 403, 401]
