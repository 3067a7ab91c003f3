"""Writing one app setting must leave the installation's other settings as they were. Whether
Zendesk's PUT merges or replaces `settings` is undocumented, so the client reads the installation
before and after and puts back anything else that changed. The sandbox merges by default; here it
replaces, to prove the guard works."""

from __future__ import annotations

import secrets

import pytest

from reconciler.clients import Endpoints, ZendeskApi
from reconciler.inventory.model import ZendeskProvider
from reconciler.kinds import consumer_kind
from reconciler.kinds.zendesk_app_setting import ZendeskAppSetting
from reconciler.observed import ConsumerObservation
from reconciler.secret import Secret
from reconciler_sandbox.zendesk import serve_zendesk


@pytest.mark.parametrize("put", ["merge", "replace"])
def test_other_settings_survive_a_setting_write_whatever_put_does(put):
    admin = secrets.token_hex(32)
    seed = {"instances": {"acme": {
        "oauth_clients": [{"identifier": "ops"}],
        "oauth_tokens": [{"client": "ops", "scopes": ["read", "write"], "value": admin}],
        "apps": [{"name": "Sync App", "parameters": [{"name": "api_token"}, {"name": "project_path"}]}],
        "installations": [{"app": "Sync App", "settings": {"name": "Sync", "api_token": "old-value-0001",
                                                           "project_path": "support/sync"}}],
    }}}
    with serve_zendesk(seed) as server:
        server.service.instance("acme").settings_put = put
        installation = server.service.instance("acme").installations[0]
        api = ZendeskApi(ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN"), Secret(admin),
                         endpoints=Endpoints(zendesk_netloc=f"127.0.0.1:{server.port}"))
        consumer = ZendeskAppSetting(provider="zd", app="Sync", setting="api_token")
        observed = ConsumerObservation(identity=consumer.identity, token="t", state="stale", readable=True,
                                       live_id=str(installation["id"]))
        new = Secret("new-value-" + secrets.token_hex(8))
        kind = consumer_kind("zendesk_app_setting")
        if put == "merge":
            kind.write(api, consumer, new, observed)
        else:
            with pytest.raises(ValueError, match="changed other settings"):
                kind.write(api, consumer, new, observed)
        settings = server.service.instance("acme").installations[0]["settings"]
        assert settings["api_token"] == new.reveal()
        assert settings["name"] == "Sync" and settings["project_path"] == "support/sync"  # put back if lost
