"""`npm trust github|list|revoke`: a package's trust relationships."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ..domain.credentials import Action
from ..domain.trust import PERMISSIONS, InvalidConfig, TrustRelationship, config_document
from ..errors import bad_request, conflict, forbidden, not_found
from ..services import outbox
from ..store import accounts, audit, registry
from ..store import trust as trust_store
from .auth import require_account
from .context import Broker
from .http import Req, json_response
from .lookup import package_name, writable_package

MAX_PER_REQUEST = 10
MAX_PER_PACKAGE = 10  # as npmjs.com: every relationship is a way in, and each exchange tries them all


def describe(relationship: TrustRelationship) -> dict[str, Any]:
    # `claims` is the npm CLI's name for the relationship's configuration.
    return {"id": relationship.id, "type": relationship.provider, "claims": config_document(relationship.config),
            "permissions": sorted(relationship.permissions)}


def _parsed(b: Broker, raw: Any) -> list[tuple[str, BaseModel, list[str]]]:
    items = raw if isinstance(raw, list) else [raw]
    if not items or len(items) > MAX_PER_REQUEST or not all(isinstance(i, dict) for i in items):
        raise bad_request(f"send a list of 1 to {MAX_PER_REQUEST} trust configurations "
                          '{"type", "claims", "permissions"}')
    parsed = []
    for item in items:
        provider = b.providers.get(item["type"]) if isinstance(item.get("type"), str) else None
        if provider is None:
            raise bad_request(f"trust relationships of type {item.get('type')!r} are not supported by this "
                              f"registry; supported: {', '.join(sorted(b.providers))}")
        try:
            config = provider.config_from_request(item.get("claims"))
        except InvalidConfig as exc:
            raise bad_request(str(exc)) from None
        permissions = item.get("permissions")
        if not isinstance(permissions, list) or not permissions or \
                not all(p in PERMISSIONS for p in permissions) or len(set(permissions)) != len(permissions):
            raise bad_request("permissions must name at least one of: " +
                              ", ".join(f"{p} for {flag}" for p, flag in PERMISSIONS.items()))
        parsed.append((provider.type, config, permissions))
    return parsed


def create(b: Broker, req: Req) -> Response:
    name = package_name(req)
    configs = _parsed(b, req.json())
    cred, user, _ = writable_package(b, req, name, Action.TRUST_CHANGE)
    created = []
    with b.db.write() as conn:
        existing = trust_store.relationship_count(conn, name.name)
        if existing + len(configs) > MAX_PER_PACKAGE:
            raise conflict(f"{name} has {existing} trust relationships and may have at most {MAX_PER_PACKAGE}: "
                           "revoke one first (`npm trust list`, `npm trust revoke`)", code="trust.limit")
        for provider, config, permissions in configs:
            relationship = trust_store.add_relationship(conn, name.name, provider, config, permissions, user.name)
            if relationship is None:
                raise conflict(f"{name} already has a {provider} trust relationship with these claims: "
                               "see `npm trust list`, revoke it first to change its permissions")
            created.append(relationship)
            audit.record(conn, "trust.created", actor=user.name, package=name.name, auth=cred.kind.value,
                         id=relationship.id, provider=provider, claims=config_document(config),
                         permissions=permissions)
            outbox.enqueue(conn, "trust.created", name.name, user.name, id=relationship.id, provider=provider)
    return json_response([describe(r) for r in created], status=201)


def list_relationships(b: Broker, req: Req) -> Response:
    name = package_name(req)
    cred, user = require_account(b, req)
    with b.db.read() as conn:
        relationships = trust_store.package_relationships(conn, name.name)
        if relationships is None:
            raise not_found(f"package {name} not found")
        if not registry.is_owner(conn, name.name, user.id) or not cred.may_write(name.name):
            raise forbidden(f"listing the trust relationships of {name} needs write access to it")
    return json_response([describe(r) for r in relationships])


def revoke(b: Broker, req: Req) -> Response:
    name = package_name(req)
    cred, user, _ = writable_package(b, req, name, Action.TRUST_CHANGE)
    relationship_id = req.params["id"]
    with b.db.write() as conn:
        if not trust_store.remove_relationship(conn, name.name, relationship_id):
            raise not_found(f"{name} has no trust relationship {relationship_id}: see `npm trust list {name}`")
        ended = accounts.delete_tokens_minted_by(conn, relationship_id)
        audit.record(conn, "trust.revoked", actor=user.name, package=name.name, auth=cred.kind.value,
                     id=relationship_id, tokens_ended=ended)
        outbox.enqueue(conn, "trust.revoked", name.name, user.name, id=relationship_id)
    return json_response({"ok": True})
