"""`npm trust github|list|revoke`: a package's trust relationships, or a scope's (`@scope/*`).

A scope-wide relationship is made on the name `@scope/*`, so that the stock CLI's
`npm trust github '@scope/*' …`, `npm trust list '@scope/*'` and `npm trust revoke '@scope/*' --id …`
work as they are (npm escapes it as `@scope%2f*`, like any scoped name). Only an account that owns
every package of the scope may change or list them (with an OTP to change, as for a package); a
scope without packages is its namesake account's only (`@alice` is alice's, as on npmjs.com), since
nobody else has shown any claim to it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ..domain.credentials import Action, Credential, second_factor
from ..domain.names import parse_scope_wildcard
from ..domain.constraints import Constraints
from ..domain.trust import PERMISSIONS, InvalidConfig, TrustRelationship, claims_document, config_from_request
from ..errors import bad_request, conflict, forbidden, not_found
from ..oidc.issuers import UnknownIssuer
from ..services import outbox
from ..store import accounts, audit, registry
from ..store.accounts import User
from ..store import trust as trust_store
from .auth import enforce, require_account
from .context import Broker
from .http import Req, json_response
from .lookup import owned_package, package_name, writable_package

MAX_PER_REQUEST = 10
MAX_PER_PACKAGE = 10  # as npmjs.com: every relationship is a way in, and each exchange tries them all


def describe(relationship: TrustRelationship) -> dict[str, Any]:
    # `claims` is the npm CLI's name for the relationship's configuration.
    return {"id": relationship.id, "type": relationship.provider,
            "claims": claims_document(relationship.config, relationship.constraints),
            "permissions": sorted(relationship.permissions), "issuer": relationship.issuer}


def _parsed(b: Broker, raw: Any) -> list[tuple[str, BaseModel, Constraints | None, list[str], str]]:
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
            config, constraints = config_from_request(provider, item.get("claims"))
        except InvalidConfig as exc:
            raise bad_request(str(exc)) from None
        permissions = item.get("permissions")
        if not isinstance(permissions, list) or not permissions or \
                not all(p in PERMISSIONS for p in permissions) or len(set(permissions)) != len(permissions):
            raise bad_request("permissions must name at least one of: " +
                              ", ".join(f"{p} for {flag}" for p, flag in PERMISSIONS.items()))
        requested = item.get("issuer")
        if requested is not None and not isinstance(requested, str):
            raise bad_request("issuer must be the URL of an OIDC issuer this registry trusts")
        try:  # `npm trust <kind>` names none: the deployment's default issuer of the kind
            issuer = b.issuers.relationship_issuer(provider.type, config, requested)
        except UnknownIssuer as exc:
            raise bad_request(str(exc)) from None
        parsed.append((provider.type, config, constraints, permissions, issuer))
    return parsed


def create(b: Broker, req: Req) -> Response:
    if (scope := parse_scope_wildcard(req.params["pkg"])) is not None:
        return _create_for_scope(b, req, scope)
    name = package_name(req)
    configs = _parsed(b, req.json())
    cred, user, _ = writable_package(b, req, name, Action.TRUST_CHANGE)
    created = []
    with b.db.write() as conn:
        existing = trust_store.relationship_count(conn, name.name)
        if existing + len(configs) > MAX_PER_PACKAGE:
            raise conflict(f"{name} has {existing} trust relationships and may have at most {MAX_PER_PACKAGE}: "
                           "revoke one first (`npm trust list`, `npm trust revoke`)", code="trust.limit")
        for provider, config, constraints, permissions, issuer in configs:
            relationship = trust_store.add_relationship(conn, name.name, provider, config, permissions, user.name,
                                                        constraints=constraints, issuer=issuer)
            if relationship is None:
                raise conflict(f"{name} already has a {provider} trust relationship with these claims: "
                               "see `npm trust list`, revoke it first to change its permissions")
            created.append(relationship)
            audit.record(conn, "trust.created", actor=user.name, package=name.name, auth=cred.kind.value,
                         id=relationship.id, provider=provider, issuer=issuer,
                         claims=claims_document(config, constraints),
                         permissions=permissions)
            outbox.enqueue(conn, "trust.created", name.name, user.name, id=relationship.id, provider=provider)
    for relationship in created:
        b.issuers.note(relationship.provider, relationship.issuer)
    return json_response([describe(r) for r in created], status=201)


def list_relationships(b: Broker, req: Req) -> Response:
    if (scope := parse_scope_wildcard(req.params["pkg"])) is not None:
        _, user, owner = _scope_owner(b, req, scope, or_creator=True)
        with b.db.read() as conn:
            return json_response([describe(r) for r in trust_store.scope_relationships(conn, scope)
                                  if owner or r.created_by == user.name])
    name = package_name(req)
    cred, user = require_account(b, req)
    refusal = f"listing the trust relationships of {name} needs write access to it"
    with b.db.read() as conn:
        owned_package(conn, name, user.id, refusal)
        if not cred.may_write(name.name):
            raise forbidden(refusal)
        relationships = trust_store.package_relationships(conn, name.name) or []
    return json_response([describe(r) for r in relationships])


def revoke(b: Broker, req: Req) -> Response:
    if (scope := parse_scope_wildcard(req.params["pkg"])) is not None:
        return _revoke_for_scope(b, req, scope)
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


# --- a scope's relationships (`@scope/*`) ------------------------------------------------------------

def _scope_owner(b: Broker, req: Req, scope: str, *,
                 or_creator: bool = False) -> tuple[Credential, User, bool]:
    """The caller, if they own every package of the scope (or, for a scope without packages, are its
    namesake) and their token may write the scope; and whether they do (True) or only made some of
    its relationships (False). With `or_creator` (list, revoke), an account that made one of the
    scope's relationships also may: it can always see and end what it opened, and only that."""
    cred, user = require_account(b, req)
    with b.db.read() as conn:
        owner_ids = registry.scope_owner_ids(conn, scope)
        # The namesake's only while the scope has no packages: once it has some, only an account that owns
        # them all (if none does, nobody: the namesake has shown no claim to others' packages).
        has_packages = bool(owner_ids) or registry.scope_has_packages(conn, scope)
        owner = allowed = user.id in owner_ids if has_packages else user.name == scope[1:]
        if not allowed and or_creator:
            allowed = any(r.created_by == user.name for r in trust_store.scope_relationships(conn, scope))
    if not allowed:
        raise forbidden(f"the trust relationships of {scope}/* are for the accounts that own every package of "
                        f"{scope}" + ("" if has_packages else f" (it has none yet: only the account {scope[1:]})"),
                        code="trust.scope-denied")
    if not cred.may_write(f"{scope}/*"):
        raise forbidden(f"this token cannot write {scope}: its packages, scopes or read-only permission exclude it")
    return cred, user, owner


def _create_for_scope(b: Broker, req: Req, scope: str) -> Response:
    configs = _parsed(b, req.json())
    cred, user, _ = _scope_owner(b, req, scope)
    enforce(b, user, second_factor(cred, user.tfa_mode, Action.TRUST_CHANGE), req.otp)
    created = []
    with b.db.write() as conn:
        existing = trust_store.scope_relationship_count(conn, scope)
        if existing + len(configs) > MAX_PER_PACKAGE:
            raise conflict(f"{scope}/* has {existing} trust relationships and may have at most {MAX_PER_PACKAGE}: "
                           "revoke one first", code="trust.limit")
        for provider, config, constraints, permissions, issuer in configs:
            relationship = trust_store.add_scope_relationship(conn, scope, provider, config, permissions, user.name,
                                                              constraints=constraints, issuer=issuer)
            if relationship is None:
                raise conflict(f"{scope}/* already has a {provider} trust relationship with these claims")
            created.append(relationship)
            audit.record(conn, "trust.created", actor=user.name, package=f"{scope}/*", auth=cred.kind.value,
                         id=relationship.id, provider=provider, issuer=issuer,
                         claims=claims_document(config, constraints), permissions=permissions)
            outbox.enqueue(conn, "trust.created", f"{scope}/*", user.name, id=relationship.id, provider=provider)
    for relationship in created:
        b.issuers.note(relationship.provider, relationship.issuer)
    return json_response([describe(r) for r in created], status=201)


def _revoke_for_scope(b: Broker, req: Req, scope: str) -> Response:
    cred, user, owner = _scope_owner(b, req, scope, or_creator=True)
    relationship_id = req.params["id"]
    created_by = None if owner else user.name  # one who no longer owns the scope ends only what they made
    with b.db.read() as conn:
        if not any(r.id == relationship_id and created_by in (None, r.created_by)
                   for r in trust_store.scope_relationships(conn, scope)):
            raise _no_scope_relationship(scope, relationship_id)  # before the OTP: it is not spent on this
    enforce(b, user, second_factor(cred, user.tfa_mode, Action.TRUST_CHANGE), req.otp)
    with b.db.write() as conn:
        if not trust_store.remove_scope_relationship(conn, scope, relationship_id, created_by=created_by):
            raise _no_scope_relationship(scope, relationship_id)
        ended = accounts.delete_tokens_minted_by(conn, relationship_id)
        audit.record(conn, "trust.revoked", actor=user.name, package=f"{scope}/*", auth=cred.kind.value,
                     id=relationship_id, tokens_ended=ended)
        outbox.enqueue(conn, "trust.revoked", f"{scope}/*", user.name, id=relationship_id)
    return json_response({"ok": True})


def _no_scope_relationship(scope: str, relationship_id: str):
    return not_found(f"{scope}/* has no trust relationship {relationship_id} that you may revoke: see "
                     f"`npm trust list '{scope}/*'`")
