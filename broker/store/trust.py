"""Queries for trust relationships and the single use of OIDC JWT ids."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from pydantic import BaseModel

from ..domain.providers import PROVIDERS
from ..domain.constraints import Constraints
from ..domain.trust import TrustRelationship, claims_json, stored_config
from . import registry
from .tables import oidc_jtis, owners, packages, scope_trust_relationships, trust_relationships, users

log = logging.getLogger("stagegate")


@dataclass(frozen=True)
class PackageTrust:
    access: str  # "public" or "restricted"
    relationships: list[TrustRelationship]  # oldest first


def _relationship(row, package: str | None = None, created_by: str | None = None) -> TrustRelationship | None:
    """The stored configuration validated again into its provider's model (the JSON is only storage).
    A scope's row names its `package` ("@scope/*") and who made it."""
    provider = PROVIDERS.get(row.provider)
    if provider is None:
        log.warning("trust relationship %s has the unknown type %r: ignored", row.id, row.provider)
        return None
    config, constraints = stored_config(provider, row.claims)
    return TrustRelationship(id=row.id, package=package or row.package, provider=row.provider, config=config,
                             permissions=frozenset(json.loads(row.permissions)), bound=json.loads(row.bound),
                             issuer=row.issuer, constraints=constraints, created_by=created_by)


def package_trust(conn: Connection, package: str) -> PackageTrust | None:
    """The package's access and relationships, or None when there is no such package (one query)."""
    rows = conn.execute(_PACKAGE_RELATIONSHIPS, {"package": package}).all()
    if not rows:
        return None
    relationships = [_relationship(r) for r in rows if r.id is not None]
    return PackageTrust(rows[0].access, [r for r in relationships if r is not None])


def package_relationships(conn: Connection, package: str) -> list[TrustRelationship] | None:
    """The package's relationships, oldest first, or None when there is no such package."""
    found = package_trust(conn, package)
    return None if found is None else found.relationships


_PACKAGE_RELATIONSHIPS = (select(packages.c.name, packages.c.access, trust_relationships)
                          .select_from(packages.outerjoin(trust_relationships,
                                                          trust_relationships.c.package == packages.c.name))
                          .where(packages.c.name == bindparam("package"))
                          .order_by(trust_relationships.c.created_at, trust_relationships.c.id))


def _insert_new(conn: Connection, table, *, permissions: list[str], **values):
    """The new relationship row (not bound yet), as stored; None when the same issuer and configuration
    exist already (the unique key decides, in a savepoint)."""
    relationship_id = str(uuid.uuid4())
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(id=relationship_id, permissions=json.dumps(sorted(permissions)),
                                              bound="{}", created_at=time.time(), **values))
    except IntegrityError:
        return None
    return conn.execute(select(table).where(table.c.id == relationship_id)).one()


def add_relationship(conn: Connection, package: str, provider: str, config: BaseModel, permissions: list[str],
                     created_by: str, constraints: Constraints | None = None, *,
                     issuer: str) -> TrustRelationship | None:
    """The new relationship, or None when the package has one with the same issuer and configuration."""
    row = _insert_new(conn, trust_relationships, package=package, provider=provider, issuer=issuer,
                      claims=claims_json(config, constraints), permissions=permissions, created_by=created_by)
    return None if row is None else _relationship(row)


def issuers_in_use(conn: Connection, provider: str) -> frozenset[str]:
    """The issuers that relationships of `provider`, a package's or a scope's, trust (for CircleCI: one per
    organization)."""
    query = union(select(trust_relationships.c.issuer).where(trust_relationships.c.provider == provider),
                  select(scope_trust_relationships.c.issuer).where(scope_trust_relationships.c.provider == provider))
    return frozenset(conn.execute(query).scalars())


def relationship_count(conn: Connection, package: str) -> int:
    """How many relationships the package has, with its row locked (PostgreSQL: FOR UPDATE; SQLite
    writes are serialized anyway) so that two concurrent additions cannot both pass a limit."""
    conn.execute(select(packages.c.name).where(packages.c.name == package).with_for_update())
    return conn.execute(select(func.count()).select_from(trust_relationships)
                        .where(trust_relationships.c.package == package)).scalar_one()


def remove_relationship(conn: Connection, package: str, relationship_id: str) -> bool:
    return conn.execute(delete(trust_relationships).where(
        trust_relationships.c.package == package, trust_relationships.c.id == relationship_id)).rowcount == 1


def bind(conn: Connection, relationship_id: str, ids: dict[str, str], table=trust_relationships) -> bool:
    """Pin the repository ids on first use; False when someone else pinned different ids meanwhile."""
    bound = json.dumps(ids, sort_keys=True)
    done = conn.execute(update(table).where(table.c.id == relationship_id, table.c.bound == "{}").values(bound=bound))
    if done.rowcount == 1:
        return True
    current = conn.execute(select(table.c.bound).where(table.c.id == relationship_id)).scalar_one_or_none()
    return current is not None and json.loads(current) == ids


def claim_jti(conn: Connection, issuer: str, jti: str, expires_at: float) -> bool:
    """Record a JWT id as used; False when it was used before (ON CONFLICT: no savepoint needed)."""
    statement = _CLAIM_JTI["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    return conn.execute(statement, {"issuer": issuer, "jti": jti, "expires_at": expires_at}).first() is not None


def jti_spent(conn: Connection, issuer: str, jti: str) -> bool:
    return conn.execute(select(oidc_jtis.c.jti).where(oidc_jtis.c.issuer == issuer,
                                                      oidc_jtis.c.jti == jti)).first() is not None


def _claim_jti_statement(dialect):
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT here.
    return dialect.insert(oidc_jtis).on_conflict_do_nothing(index_elements=["issuer", "jti"]).returning(oidc_jtis.c.jti)


_CLAIM_JTI = {"postgresql": _claim_jti_statement(postgresql), "sqlite": _claim_jti_statement(sqlite)}  # built once


def forget_expired_jtis(conn: Connection, leeway: float) -> None:
    conn.execute(delete(oidc_jtis).where(oidc_jtis.c.expires_at < time.time() - leeway))


# --- scope-wide relationships (`@scope/*`) -----------------------------------------------------------

def _scope_relationship(row) -> TrustRelationship | None:
    return _relationship(row, f"{row.scope}/*", row.created_by)


def scope_of(package: str) -> str | None:
    return package.split("/", 1)[0] if package.startswith("@") and "/" in package else None


def scope_relationships(conn: Connection, scope: str) -> list[TrustRelationship]:
    """The scope's relationships, oldest first."""
    rows = conn.execute(select(scope_trust_relationships).where(scope_trust_relationships.c.scope == scope)
                        .order_by(scope_trust_relationships.c.created_at, scope_trust_relationships.c.id)).all()
    return [r for r in map(_scope_relationship, rows) if r is not None]


def _covering_scope_relationships(conn: Connection, package: str, exists: bool) -> list[TrustRelationship]:
    """The scope's relationships that cover `package`: for an existing package, those whose creator is
    one of its owners (a package someone else published in the scope is not theirs to open); for a
    name not taken yet, those whose creator is one of the accounts its first stage makes its owners
    (the scope's; see `first_owner_names`): a relationship made by an account that has since stopped
    owning the scope does not create packages for those who own it now."""
    scope = scope_of(package)
    if scope is None:
        return []
    query = select(scope_trust_relationships).where(scope_trust_relationships.c.scope == scope)
    if exists:
        query = query.where(scope_trust_relationships.c.created_by.in_(
            select(users.c.name).join(owners, owners.c.user_id == users.c.id).where(owners.c.package == package)))
    else:
        query = query.where(scope_trust_relationships.c.created_by.in_(first_owner_names(conn, scope)))
    rows = conn.execute(query.order_by(scope_trust_relationships.c.created_at, scope_trust_relationships.c.id)).all()
    return [r for r in map(_scope_relationship, rows) if r is not None]


def first_owner_names(conn: Connection, scope: str) -> list[str]:
    """Who owns a package of `scope` that a first stage creates: the accounts that own every package of
    the scope, or for a scope without packages its namesake; none when no one account owns them all
    (api/stage.py `_first_stage_owners`)."""
    owner_ids = registry.scope_owner_ids(conn, scope)
    if not owner_ids:  # no packages: its namesake; packages that no one account owns all of: nobody
        return [] if registry.scope_has_packages(conn, scope) else [scope[1:]]
    return list(conn.execute(select(users.c.name).where(users.c.id.in_(owner_ids))).scalars())


def trust_for(conn: Connection, package: str) -> PackageTrust | None:
    """What the exchange matches a token against: the package's own relationships, then its scope's.
    A name that does not exist has its scope's only, and answers strangers as restricted (a 404)."""
    own = package_trust(conn, package)
    scoped = _covering_scope_relationships(conn, package, exists=own is not None)
    if own is None:
        return PackageTrust("restricted", scoped) if scoped else None
    return PackageTrust(own.access, own.relationships + scoped) if scoped else own


def add_scope_relationship(conn: Connection, scope: str, provider: str, config: BaseModel, permissions: list[str],
                           created_by: str, constraints: Constraints | None = None, *,
                           issuer: str) -> TrustRelationship | None:
    """The new relationship, or None when the scope has one with the same issuer and configuration."""
    row = _insert_new(conn, scope_trust_relationships, scope=scope, provider=provider, issuer=issuer,
                      claims=claims_json(config, constraints), permissions=permissions, created_by=created_by)
    return None if row is None else _scope_relationship(row)


def scope_relationship_count(conn: Connection, scope: str) -> int:
    """How many relationships the scope has, its additions taking turns (PostgreSQL: a transaction-scoped
    advisory lock, as a scope has no row to lock; SQLite writes are serialized anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"scope-trust:{scope}"})
    return conn.execute(select(func.count()).select_from(scope_trust_relationships)
                        .where(scope_trust_relationships.c.scope == scope)).scalar_one()


def remove_scope_relationship(conn: Connection, scope: str, relationship_id: str,
                              created_by: str | None = None) -> bool:
    """Delete one of the scope's relationships (with `created_by`, only if that account made it)."""
    query = delete(scope_trust_relationships).where(scope_trust_relationships.c.scope == scope,
                                                    scope_trust_relationships.c.id == relationship_id)
    if created_by is not None:
        query = query.where(scope_trust_relationships.c.created_by == created_by)
    return conn.execute(query).rowcount == 1


def bind_relationship(conn: Connection, relationship: TrustRelationship, ids: dict[str, str]) -> bool:
    """`bind` for a package's or a scope's relationship."""
    scoped = relationship.package.endswith("/*")
    return bind(conn, relationship.id, ids, scope_trust_relationships if scoped else trust_relationships)
