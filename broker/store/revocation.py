"""Whether a token that authorised a request is still granted when the request commits."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from .tables import tokens, trust_relationships


def token_still_granted(conn: Connection, token_id: str) -> bool:
    """In the write transaction of a change the token authorised: the token, and every trust
    relationship it was minted from, still exist. The rows are share-locked (PostgreSQL; a SQLite
    writer is alone already), so a concurrent revoke either commits first and this answers False,
    or waits until this transaction has committed."""
    row = conn.execute(select(tokens.c.trust_relationships).where(tokens.c.id == token_id)
                       .with_for_update(read=True)).first()
    if row is None:
        return False
    minted_from = set(json.loads(row.trust_relationships))
    if not minted_from:
        return True
    found = conn.execute(select(trust_relationships.c.id).where(trust_relationships.c.id.in_(minted_from))
                         .with_for_update(read=True)).scalars().all()
    return set(found) == minted_from
