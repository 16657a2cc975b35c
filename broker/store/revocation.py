"""Whether a token that authorised a request is still granted when the request commits."""

from __future__ import annotations

import json

from sqlalchemy import Connection, bindparam, select

from .trust import first_owner_names, scope_of
from .tables import owners, packages, scope_trust_relationships, tokens, trust_relationships, users


def token_still_granted(conn: Connection, token_id: str) -> bool:
    """In the write transaction of a change the token authorised: the token, and every trust
    relationship it was minted from, still exist. The rows are share-locked (PostgreSQL; a SQLite
    writer is alone already), so a concurrent revoke either commits first and this answers False,
    or waits until this transaction has committed. A scope's relationship must also still cover the
    package: a name the job was trusted with while free, taken by someone else since, is not its; and
    a free name's, that its creator still owns the scope."""
    row = conn.execute(_GRANTS_OF_TOKEN, {"id": token_id}).first()
    if row is None:
        return False
    minted_from = set(json.loads(row.trust_relationships))
    if not minted_from:
        return True
    found = set(conn.execute(select(trust_relationships.c.id).where(trust_relationships.c.id.in_(minted_from))
                             .with_for_update(read=True)).scalars().all())
    scoped = conn.execute(select(scope_trust_relationships.c.id, scope_trust_relationships.c.created_by)
                          .where(scope_trust_relationships.c.id.in_(minted_from))
                          .with_for_update(read=True)).all()
    if scoped:
        owned = _owner_names(conn, row.trust_package)
        if owned is None:  # the first stage makes it: the scope's owners will own it (store/trust.py)
            owned = set(first_owner_names(conn, scope_of(row.trust_package)))
        found.update(r.id for r in scoped if r.created_by in owned)
    return found == minted_from


# Built once: every write a token authorises runs it.
_GRANTS_OF_TOKEN = (select(tokens.c.trust_relationships, tokens.c.trust_package).where(tokens.c.id == bindparam("id"))
                    .with_for_update(read=True))


def _owner_names(conn: Connection, package: str) -> set[str] | None:
    """The owners' account names, or None when the package does not exist (yet)."""
    if conn.execute(select(packages.c.name).where(packages.c.name == package)).first() is None:
        return None
    return set(conn.execute(select(users.c.name).join(owners, owners.c.user_id == users.c.id)
                            .where(owners.c.package == package)).scalars().all())
