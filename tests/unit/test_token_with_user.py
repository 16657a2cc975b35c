"""The one statement every Bearer request runs: a token and its account, on the backend under test."""

from __future__ import annotations

import uuid

from broker.domain.credentials import TfaMode, TokenKind
from broker.store import accounts
from tests.support.packages import unique_name


def test_an_account_token_comes_with_its_account_as_read_by_id(b):
    name, digest = unique_name("holder"), uuid.uuid4().hex
    with b.db.write() as conn:
        user = accounts.create_user(conn, name, f"{name}@example.com", "not a real hash")
        accounts.set_tfa(conn, user.id, TfaMode.AUTH_AND_WRITES, False, "sealed")
        made = accounts.insert_token(conn, digest=digest, display="sg_test", user_id=user.id, kind=TokenKind.SESSION,
                                     packages=["a"], scopes=["@s"], readonly=True)
    with b.db.read() as conn:
        row, found = accounts.token_with_user(conn, digest)
        assert found == accounts.user_by_id(conn, user.id) and found.tfa_mode is TfaMode.AUTH_AND_WRITES
    assert row == made


def test_a_trust_token_has_no_account_and_an_unknown_digest_has_neither(b):
    digest = uuid.uuid4().hex
    with b.db.write() as conn:
        made = accounts.insert_token(conn, digest=digest, display="sg_test", user_id=None, kind=TokenKind.TRUST,
                                     trust_package="p", trust_permissions=["createPackage"])
    with b.db.read() as conn:
        assert accounts.token_with_user(conn, digest) == (made, None)
        assert accounts.token_with_user(conn, uuid.uuid4().hex) == (None, None)
