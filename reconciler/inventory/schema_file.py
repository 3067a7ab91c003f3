"""The inventory JSON Schema file, generated from the base below (the sections, providers,
rotation, policy, tokens) and each source and consumer kind's fragment (`schema` of the kind,
defined in its module under reconciler/kinds/).

    python -m reconciler.inventory.schema_file            # print the schema
    python -m reconciler.inventory.schema_file --write    # rewrite reconciler/schemas/inventory.schema.json
                                                          # and the kind lists of reconciler/plan.schema.json

The file is checked in: validation loads it, and editors read it through the link
schemas/inventory.schema.json. A test checks that it equals `render()`, so the schema cannot
drift from the kinds. Each kind's definition is `$defs/source_KIND` or `$defs/consumer_KIND`;
`$defs/source` and `$defs/consumer` select one by `kind`, and `policy.allowed_scopes` takes the
source kinds whose fragment has `scopes`.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from reconciler.inventory.schema import SCHEMA_PATH
from reconciler.kinds import ConsumerKind, SourceKind, consumer_kinds, source_kinds


def generate() -> dict[str, Any]:
    """The whole schema: the base with every registered kind in it, in schema order."""
    sources, consumers = source_kinds(), consumer_kinds()
    schema = copy.deepcopy(BASE)
    allowed_scopes = schema["properties"]["policy"]["properties"]["allowed_scopes"]
    allowed_scopes["propertyNames"]["enum"] = [k.kind for k in sources if "scopes" in k.schema["properties"]]
    defs: dict[str, Any] = {}
    for name, definition in schema["$defs"].items():
        if name == "source":
            defs.update(_union("source", definition, sources))
        elif name == "consumer":
            defs.update(_union("consumer", definition, consumers))
        else:
            defs[name] = definition
    schema["$defs"] = defs
    return schema


def _union(union: str, definition: dict[str, Any], kinds: list[SourceKind] | list[ConsumerKind]) -> dict[str, Any]:
    """The definition of each kind (`source_KIND`), then the union that picks one by `kind`: an
    if/then per kind, which editors follow (the validator checks each kind's definition directly)."""
    defs = {f"{union}_{k.kind}": copy.deepcopy(k.schema) for k in kinds}
    definition["properties"]["kind"]["enum"] = [k.kind for k in kinds]
    definition["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": k.kind}}, "required": ["kind"]},
            "then": {"$ref": f"#/$defs/{union}_{k.kind}"},
        }
        for k in kinds
    ]
    return {**defs, union: definition}


def render() -> str:
    """The schema file's text."""
    return json.dumps(generate(), indent=2) + "\n"


def write(path: Path = SCHEMA_PATH) -> bool:
    """Write the generated schema to `path`; True when the file changed."""
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


PLAN_SCHEMA_PATH = SCHEMA_PATH.parents[1] / "plan.schema.json"


def plan_schema_text(text: str) -> str:
    """The plan schema's text (formatted by hand, so edited in place) with its two kind lists,
    a consumer's `kind` and a token's `source_kind`, set to the registered kinds."""
    for key, kinds in (("kind", consumer_kinds()), ("source_kind", source_kinds())):
        listed = json.dumps([k.kind for k in kinds])

        def with_kinds(m: re.Match[str], listed: str = listed) -> str:
            return m.group(1) + listed

        text, found = re.subn(rf'("{key}": {{"enum": )\[[^\]]*\]', with_kinds, text)
        if found != 1:
            raise SystemExit(f"{PLAN_SCHEMA_PATH}: expected the {key} enum once, found it {found} times")
    return text


def write_plan_schema(path: Path = PLAN_SCHEMA_PATH) -> bool:
    """Set the plan schema's kind lists to the registered kinds; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    new = plan_schema_text(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


# Everything in the schema but the source and consumer kinds; the empty lists are filled by
# `generate()`.
BASE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "reconcile inventory",
    "description": "One file of a reconcile inventory. Every *.yaml file under the inventory directory is read; sections merge across files, and the same key defined twice is an error.",
    "type": "object",
    "additionalProperties": False,
    "patternProperties": {
        "^x-": {
            "description": "Free for your own use, e.g. YAML anchors to reuse (`x-defaults: &d {...}`); ignored.",
        },
    },
    "properties": {
        "providers": {
            "type": "object",
            "description": "The GitLab instances and Zendesk accounts, by name.",
            "propertyNames": {"$ref": "#/$defs/name"},
            "additionalProperties": {"$ref": "#/$defs/provider"},
        },
        "defaults": {
            "type": "object",
            "description": "Defaults for every token.",
            "properties": {
                "rotation": {
                    "$ref": "#/$defs/rotation",
                    "description": "Rotation settings of tokens that do not set their own.",
                },
            },
            "additionalProperties": False,
        },
        "policy": {
            "type": "object",
            "description": "Rules every token must follow; violations fail validation, so a bad merge request cannot merge.",
            "properties": {
                "max_lifetime": {
                    "$ref": "#/$defs/duration",
                    "description": "Longest `lifetime` a token may have, e.g. `365d`.",
                },
                "allowed_scopes": {
                    "type": "object",
                    "description": "Per source kind, the only scopes a token of that kind may have.",
                    "propertyNames": {"enum": []},  # the source kinds with scopes
                    "additionalProperties": {"type": "array", "items": {"type": "string", "minLength": 1}},
                },
                "max_access_level": {
                    "$ref": "#/$defs/access_level",
                    "description": "Highest access level a project or group access token may have.",
                },
                "approved_scopes": {
                    "type": "object",
                    "description": "Per Zendesk provider, per OAuth client identifier, the scope sets an access request "
                                   "approved, each with `scopes` and `access_request` (its URL). When set, a Zendesk OAuth credential whose scopes are within none of its "
                                   "client's sets fails validation (the runbook: if the scopes are not approved in the "
                                   "access request, STOP); plans name the access request that covers each.",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "scopes": {"type": "array", "minItems": 1,
                                               "items": {"type": "string", "minLength": 1},
                                               "description": "The scopes approved."},
                                    "access_request": {"type": "string", "pattern": "^https://",
                                                       "description": "URL of the access request that approved them."},
                                },
                                "required": ["scopes", "access_request"],
                                "additionalProperties": False,
                            },
                        },
                    },
                },
            },
            "additionalProperties": False,
        },
        "state": {
            "type": "object",
            "description": "Where the ledger, the escrow and the lock live.",
            "properties": {
                "backend": {
                    "enum": ["local", "gitlab"],
                    "description": "`local` (a directory; default) or `gitlab` (a project's Terraform-state endpoint, versioned and locked).",
                },
                "path": {
                    "type": "string",
                    "description": "`local`: the directory; default `.reconcile`.",
                    "minLength": 1,
                },
                "provider": {
                    "type": "string",
                    "description": "`gitlab`: the GitLab provider hosting the state.",
                    "minLength": 1,
                },
                "project": {
                    "type": "string",
                    "description": "`gitlab`: full path (or id) of the project hosting the state.",
                    "minLength": 1,
                },
                "name": {
                    "type": "string",
                    "description": "`gitlab`: the Terraform-state name; default `reconcile`.",
                    "minLength": 1,
                },
                "escrow_key_env": {
                    "$ref": "#/$defs/env_name",
                    "description": "Environment variable holding the escrow key; default `RECONCILE_ESCROW_KEY`.",
                },
            },
            "additionalProperties": False,
            "allOf": [
                {
                    "if": {"properties": {"backend": {"const": "gitlab"}}, "required": ["backend"]},
                    "then": {"required": ["provider", "project"]},
                },
            ],
        },
        "discovery": {
            "type": "object",
            "description": "Where `reconcile discover` looks for live tokens and their uses.",
            "properties": {
                "gitlab": {
                    "type": "array",
                    "description": "GitLab scopes to search.",
                    "items": {
                        "type": "object",
                        "description": "One GitLab provider's scope.",
                        "properties": {
                            "provider": {"type": "string", "description": "The GitLab provider.", "minLength": 1},
                            "users": {
                                "type": "array",
                                "description": "Usernames whose personal access tokens to list.",
                                "items": {"type": "string", "minLength": 1},
                            },
                            "groups": {
                                "type": "array",
                                "description": "Groups (with their projects) whose access tokens, triggers, variables and hooks to list.",
                                "items": {"type": "string", "minLength": 1},
                            },
                            "projects": {
                                "type": "array",
                                "description": "Further projects to search.",
                                "items": {"type": "string", "minLength": 1},
                            },
                        },
                        "additionalProperties": False,
                        "required": ["provider"],
                    },
                },
                "zendesk": {
                    "type": "array",
                    "description": "Zendesk accounts to search.",
                    "items": {
                        "type": "object",
                        "description": "One Zendesk provider.",
                        "properties": {
                            "provider": {"type": "string", "description": "The Zendesk provider.", "minLength": 1},
                        },
                        "additionalProperties": False,
                        "required": ["provider"],
                    },
                },
            },
            "additionalProperties": False,
        },
        "check": {
            "type": "object",
            "description": "The weekly expiry report (`reconcile check`).",
            "properties": {
                "within": {
                    "$ref": "#/$defs/duration",
                    "description": "Report tokens expiring within this duration; default `21d`.",
                },
                "issue_title": {
                    "type": "string",
                    "description": "Title of the GitLab issue the report goes to.",
                    "minLength": 1,
                },
                "issue_label": {"type": "string", "description": "Label of that issue.", "minLength": 1},
            },
            "additionalProperties": False,
        },
        "tokens": {
            "type": "object",
            "description": "The credentials to keep alive, by name.",
            "propertyNames": {"$ref": "#/$defs/name"},
            "additionalProperties": {"$ref": "#/$defs/token"},
        },
    },
    "$defs": {
        "duration": {
            "type": "string",
            "pattern": "^[1-9][0-9]*[mhdw]$",
            "description": "A duration: a whole number and a unit, m (minutes), h (hours), d (days) or w (weeks): `30m`, `12h`, `21d`, `2w`.",
        },
        "date": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": "An ISO date: `2026-11-22`.",
        },
        "env_name": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "Name of an environment variable (never the value itself).",
        },
        "template": {
            "type": "string",
            "minLength": 1,
            "description": "A value template: `${token}` stands for the token value.",
        },
        "name": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "description": "A name: letters, digits, `_`, `.` and `-`.",
        },
        "access_level": {
            "type": "integer",
            "enum": [10, 15, 20, 30, 40, 50],
            "description": "GitLab access level: 10 guest, 15 planner, 20 reporter, 30 developer, 40 maintainer, 50 owner.",
        },
        "gitlab_scopes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
            "description": "GitLab token scopes, e.g. `[api]`, `[read_api, read_repository]`.",
        },
        "rotation": {
            "type": "object",
            "description": "When a token is due for rotation. Unset keys come from `defaults.rotation`.",
            "properties": {
                "rotate_before": {
                    "$ref": "#/$defs/duration",
                    "description": "Rotate when the token expires within this duration, e.g. `21d`.",
                },
                "lifetime": {
                    "$ref": "#/$defs/duration",
                    "description": "Lifetime given to a newly minted token (its expiry = mint time + lifetime), e.g. `365d`. At most `policy.max_lifetime`; longer than `rotate_before`.",
                },
                "max_age": {
                    "$ref": "#/$defs/duration",
                    "description": "Rotate when the token is older than this, whatever its expiry, e.g. `90d`.",
                },
                "not_before": {
                    "$ref": "#/$defs/date",
                    "description": "Rotate when the token was created before this date: the incident lever (set it to today and merge).",
                },
                "quiet_period": {
                    "$ref": "#/$defs/duration",
                    "description": "How long a live token must have gone unused (as its provider records use) before apply revokes it: an orphan, a token declared absent, or an old token kept because something used it after the new value was delivered. Default `1d`. `--force-revoke NAME` revokes at once.",
                },
                "on_unverifiable": {
                    "enum": ["warn", "rotate"],
                    "description": "What a consumer that cannot be verified (no ledger record, and its value cannot be identified) does to a token that is otherwise not due: `warn` (default: the plan warns and nothing changes) or `rotate` (every consumer gets a fresh value).",
                },
            },
            "additionalProperties": False,
        },
        "gitlab_provider": {
            "type": "object",
            "description": "A GitLab instance.",
            "properties": {
                "kind": {"const": "gitlab", "description": "`gitlab`."},
                "url": {
                    "type": "string",
                    "description": "Base URL of the instance, e.g. `https://gitlab.com`.",
                    "pattern": "^https?://[^\\s/]+",
                },
                "title": {
                    "type": "string",
                    "description": "The name people use for it, shown in plans and issues.",
                },
                "auth": {
                    "type": "object",
                    "description": "How reconcile authenticates to the GitLab API.",
                    "properties": {
                        "token_env": {
                            "$ref": "#/$defs/env_name",
                            "description": "Environment variable holding a personal (or group/project) access token with the `api` scope.",
                        },
                    },
                    "additionalProperties": False,
                    "required": ["token_env"],
                },
            },
            "additionalProperties": False,
            "required": ["kind", "url", "auth"],
        },
        "zendesk_provider": {
            "type": "object",
            "description": "A Zendesk Support account.",
            "properties": {
                "kind": {"const": "zendesk", "description": "`zendesk`."},
                "subdomain": {
                    "type": "string",
                    "description": "The account's subdomain: `gitlab` for https://gitlab.zendesk.com.",
                    "pattern": "^[a-z0-9][a-z0-9-]*$",
                },
                "domain": {
                    "type": "string",
                    "description": "The Zendesk domain: `zendesk.com` (the default), the only one the credential is sent to; a sandbox or test adds others with the environment variable `RECONCILE_ZENDESK_DOMAINS`.",
                    "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
                },
                "title": {
                    "type": "string",
                    "description": "The name people use for it, e.g. `Zendesk Global`; shown in plans and issues.",
                },
                "auth": {
                    "type": "object",
                    "description": "How reconcile authenticates to the Zendesk API: an OAuth access token (`oauth_token_env`), or an agent email with an API token (`email` and `api_token_env`; API tokens stop working on 2027-04-30).",
                    "properties": {
                        "oauth_token_env": {
                            "$ref": "#/$defs/env_name",
                            "description": "Environment variable holding an OAuth access token (sent as `Authorization: Bearer`).",
                        },
                        "email": {
                            "type": "string",
                            "description": "Agent email for API-token authentication.",
                            "pattern": "^[^@\\s]+@[^@\\s]+$",
                        },
                        "api_token_env": {
                            "$ref": "#/$defs/env_name",
                            "description": "Environment variable holding a Zendesk API token (deprecated: cut off on 2027-04-30).",
                        },
                    },
                    "additionalProperties": False,
                    "oneOf": [
                        {"title": "oauth_token_env", "required": ["oauth_token_env"]},
                        {"title": "email and api_token_env", "required": ["email", "api_token_env"]},
                    ],
                },
            },
            "additionalProperties": False,
            "required": ["kind", "subdomain", "auth"],
        },
        "provider": {
            "type": "object",
            "description": "A service reconcile talks to.",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["gitlab", "zendesk"], "description": "`gitlab` or `zendesk`."}},
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": "gitlab"}}, "required": ["kind"]},
                    "then": {"$ref": "#/$defs/gitlab_provider"},
                },
                {
                    "if": {"properties": {"kind": {"const": "zendesk"}}, "required": ["kind"]},
                    "then": {"$ref": "#/$defs/zendesk_provider"},
                },
            ],
        },
        "source": {
            "type": "object",
            "description": "Where the token comes from and how it is renewed; `kind` selects the fields.",
            "required": ["kind"],
            "properties": {"kind": {"enum": [], "description": "The source kind."}},  # every source kind
            "allOf": [],  # per kind: if kind is K then source_K
        },
        "consumer": {
            "type": "object",
            "description": "A place the token is delivered to; `kind` selects the fields.",
            "required": ["kind"],
            "properties": {"kind": {"enum": [], "description": "The consumer kind."}},  # every consumer kind
            "allOf": [],  # per kind: if kind is K then consumer_K
        },
        "token": {
            "type": "object",
            "description": "A credential reconcile keeps alive, and every place it is delivered to.",
            "properties": {
                "description": {"type": "string", "description": "What the token is for."},
                "owner": {
                    "type": "string",
                    "description": "Who to ask about it, e.g. `@support-ops`; mentioned in the weekly report.",
                },
                "state": {
                    "enum": ["present", "absent"],
                    "description": "`present` (default) keeps it alive; `absent` revokes it.",
                },
                "source": {
                    "$ref": "#/$defs/source",
                    "description": "Where the token comes from and how it is renewed.",
                },
                "rotation": {
                    "$ref": "#/$defs/rotation",
                    "description": "When it is due; unset keys come from `defaults.rotation`.",
                },
                "consumers": {
                    "type": "array",
                    "description": "Where the value is delivered; each consumer may set `value` (a template).",
                    "items": {"$ref": "#/$defs/consumer"},
                },
            },
            "additionalProperties": False,
            "required": ["source"],
        },
    },
}


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        for path, changed in ((SCHEMA_PATH, write()), (PLAN_SCHEMA_PATH, write_plan_schema())):
            print(f"{path}: {'updated' if changed else 'already up to date'}")
    else:
        sys.stdout.write(render())
