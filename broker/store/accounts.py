"""Queries for accounts: users, 2FA state, OTP use and failures, tokens."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ..domain.credentials import Credential, TfaMode, TokenKind
from .tables import otp_failures, otp_steps, password_failures, recovery_codes, tokens, users


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    password_hash: str
    tfa_mode: TfaMode | None
    tfa_pending: bool
    tfa_secret: str | None
    created_at: float
    updated_at: float
    # Not a column: how the request that loaded this user already proved presence with its npm-otp
    # (a Basic request checks its code once, and the route's own 2FA check must not check it again).
    request_otp: tuple[str, str] | None = None  # (the code, "otp" | "recovery-code")


def _user(row, prefix: str = "") -> User | None:
    """The User of a users row, or of its columns labelled `prefix` + name in a joined row (None
    when that row has no user)."""
    if row is None:
        return None
    if prefix:
        row = {name: row._mapping[prefix + name] for name in _USER_COLUMNS}
        if row["id"] is None:
            return None
    else:
        row = row._mapping
    tfa_mode = row["tfa_mode"]
    return User(row["id"], row["name"], row["email"], row["password_hash"], TfaMode(tfa_mode) if tfa_mode else None,
                bool(row["tfa_pending"]), row["tfa_secret"], row["created_at"], row["updated_at"])


_USER_COLUMNS = tuple(column.name for column in users.c)


def user_by_name(conn: Connection, name: str) -> User | None:
    return _user(conn.execute(_USER_BY_NAME, {"name": name}).first())


def user_by_id(conn: Connection, user_id: int) -> User | None:
    return _user(conn.execute(_USER_BY_ID, {"id": user_id}).first())


# Built once: every authenticated request reads its account.
_USER_BY_NAME = select(users).where(users.c.name == bindparam("name"))
_USER_BY_ID = select(users).where(users.c.id == bindparam("id"))


def create_user(conn: Connection, name: str, email: str, password_hash: str) -> User | None:
    """The new user, or None when the name is taken (a unique constraint, not a check)."""
    now = time.time()
    try:
        with conn.begin_nested():
            conn.execute(insert(users).values(name=name, email=email, password_hash=password_hash,
                                              tfa_pending=False, created_at=now, updated_at=now))
    except IntegrityError:
        return None
    return user_by_name(conn, name)


def set_tfa(conn: Connection, user_id: int, mode: TfaMode | None, pending: bool, sealed_secret: str | None) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(
        tfa_mode=mode.value if mode else None, tfa_pending=pending, tfa_secret=sealed_secret,
        updated_at=time.time()))


def replace_recovery_codes(conn: Connection, user_id: int, digests: list[str]) -> None:
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    if digests:
        conn.execute(insert(recovery_codes), [{"user_id": user_id, "code_digest": d} for d in digests])


def has_recovery_code(conn: Connection, user_id: int, digest: str) -> bool:
    return conn.execute(select(recovery_codes.c.user_id).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.code_digest == digest)).first() is not None


def consume_recovery_code(conn: Connection, user_id: int, digest: str) -> bool:
    result = conn.execute(delete(recovery_codes).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.code_digest == digest))
    return result.rowcount == 1


def claim_otp_step(conn: Connection, user_id: int, step: int) -> bool:
    """Record a TOTP step as used; False when it was used before (the primary key says so)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(otp_steps).values(user_id=user_id, step=step, used_at=time.time()))
    except IntegrityError:
        return False
    return True


def set_password_hash(conn: Connection, user_id: int, old: str, new: str) -> bool:
    """Replace the hash only if it is still `old` (a password change meanwhile wins)."""
    return conn.execute(update(users).where(users.c.id == user_id, users.c.password_hash == old)
                        .values(password_hash=new)).rowcount == 1


def lock_user(conn: Connection, user_id: int) -> None:
    """Until this write transaction ends, other transactions that lock this user wait: OTP checks of
    one account take turns, so concurrent guesses cannot all read the same failure count.
    (SQLite write transactions are exclusive already; FOR UPDATE is PostgreSQL's row lock.)"""
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())


def record_otp_failure(conn: Connection, user_id: int, at: float) -> None:
    conn.execute(insert(otp_failures).values(user_id=user_id, at=at))


def otp_failures_since(conn: Connection, user_id: int, since: float) -> tuple[int, float | None]:
    """How many OTP failures the account had since `since`, and when the last one was."""
    count, last = conn.execute(select(func.count(), func.max(otp_failures.c.at)).where(
        otp_failures.c.user_id == user_id, otp_failures.c.at > since)).one()
    return count, last


def lock_password_buckets(conn: Connection, account: str, address: str) -> None:
    """Password checks of the same account or from the same address take turns while they count
    and reserve (PostgreSQL advisory locks, in a fixed order; SQLite writers are exclusive)."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted({"account:" + account, "address:" + address}):
        number = int.from_bytes(hashlib.sha256(b"stagegate-password:" + key.encode()).digest()[:8], "big",
                                signed=True)
        conn.execute(_ADVISORY_XACT_LOCK, {"key": number})


_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def password_failures_since(conn: Connection, *, account: str | None = None, address: str | None = None,
                            since: float) -> tuple[int, float | None]:
    """Failed (or running) password checks of an account, or from an address, since `since`."""
    column, key = (password_failures.c.account, account) if account is not None else (
        password_failures.c.address, address)
    count, last = conn.execute(select(func.count(), func.max(password_failures.c.at)).where(
        column == key, password_failures.c.at > since)).one()
    return count, last


def reserve_password_check(conn: Connection, account: str, address: str, at: float) -> int:
    """Count a password check as failed before it runs; `release_password_check` takes it back."""
    result = conn.execute(insert(password_failures).values(account=account, address=address, at=at))
    return result.inserted_primary_key[0]


def release_password_check(conn: Connection, check_id: int) -> None:
    conn.execute(delete(password_failures).where(password_failures.c.id == check_id))


def forget_password_failures(conn: Connection, older_than: float) -> None:
    conn.execute(delete(password_failures).where(password_failures.c.at < older_than))


def forget_old_otp_records(conn: Connection, user_id: int, older_than: float) -> None:
    conn.execute(delete(otp_steps).where(otp_steps.c.user_id == user_id, otp_steps.c.used_at < older_than))
    conn.execute(delete(otp_failures).where(otp_failures.c.user_id == user_id, otp_failures.c.at < older_than))


@dataclass(frozen=True)
class TokenRow:
    id: str
    display: str
    user_id: int | None
    kind: TokenKind
    name: str | None
    readonly: bool
    bypass_2fa: bool
    packages: list[str]
    scopes: list[str]
    cidr_whitelist: list[str]
    trust_package: str | None
    trust_permissions: list[str]
    origin: dict
    created_at: float
    expires_at: float | None


def _token(row) -> TokenRow:
    return TokenRow(row.id, row.display, row.user_id, TokenKind(row.kind), row.name, bool(row.readonly),
                    bool(row.bypass_2fa), json.loads(row.packages), json.loads(row.scopes),
                    json.loads(row.cidr_whitelist), row.trust_package, json.loads(row.trust_permissions),
                    json.loads(row.origin), row.created_at, row.expires_at)


def insert_token(conn: Connection, *, digest: str, display: str, user_id: int | None, kind: TokenKind,
                 name: str | None = None, description: str | None = None, readonly: bool = False,
                 bypass_2fa: bool = False, packages: list[str] | None = None, scopes: list[str] | None = None,
                 cidr_whitelist: list[str] | None = None, trust_package: str | None = None,
                 trust_permissions: list[str] | None = None, trust_relationships: list[str] | None = None,
                 origin: dict | None = None, expires_at: float | None = None) -> TokenRow:
    token_id, now = str(uuid.uuid4()), time.time()
    row = TokenRow(id=token_id, display=display, user_id=user_id, kind=kind, name=name, readonly=readonly,
                   bypass_2fa=bypass_2fa, packages=list(packages or []), scopes=list(scopes or []),
                   cidr_whitelist=list(cidr_whitelist or []), trust_package=trust_package,
                   trust_permissions=sorted(trust_permissions or []), origin=dict(origin or {}), created_at=now,
                   expires_at=expires_at)
    conn.execute(_INSERT_TOKEN, dict(
        id=token_id, digest=digest, display=display, user_id=user_id, kind=kind.value, name=name,
        description=description, readonly=readonly, bypass_2fa=bypass_2fa, packages=json.dumps(row.packages),
        scopes=json.dumps(row.scopes), cidr_whitelist=json.dumps(row.cidr_whitelist), trust_package=trust_package,
        trust_permissions=json.dumps(row.trust_permissions), trust_relationships=json.dumps(trust_relationships or []),
        origin=json.dumps(row.origin), created_at=now, expires_at=expires_at))
    return row


# Built once: the exchange and every authenticated request run these, and building a statement
# (values(), its cache key) cost more CPU than executing it.
_INSERT_TOKEN = insert(tokens)
_TOKEN_BY_DIGEST = select(tokens).where(tokens.c.digest == bindparam("digest"))


def token_by_digest(conn: Connection, digest: str) -> TokenRow | None:
    row = conn.execute(_TOKEN_BY_DIGEST, {"digest": digest}).first()
    return _token(row) if row else None


def token_with_user(conn: Connection, digest: str) -> tuple[TokenRow | None, User | None]:
    """The token of `digest` and its account (None for a trust token's, or one since deleted), in one
    statement: every request with a Bearer token reads both."""
    row = conn.execute(_TOKEN_WITH_USER, {"digest": digest}).first()
    if row is None:
        return None, None
    return _token(row), _user(row, prefix="u_")


_TOKEN_WITH_USER = (select(tokens, *[column.label(f"u_{column.name}") for column in users.c])
                    .select_from(tokens.outerjoin(users, users.c.id == tokens.c.user_id))
                    .where(tokens.c.digest == bindparam("digest")))


def token_by_id(conn: Connection, token_id: str) -> TokenRow | None:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    return _token(row) if row else None


def tokens_of_user(conn: Connection, user_id: int, offset: int, limit: int) -> tuple[list[TokenRow], int]:
    now = time.time()
    live = (tokens.c.user_id == user_id) & (tokens.c.kind != TokenKind.TRUST.value) & (
        tokens.c.expires_at.is_(None) | (tokens.c.expires_at > now))
    total = conn.execute(select(func.count()).select_from(tokens).where(live)).scalar_one()
    rows = conn.execute(select(tokens).where(live).order_by(tokens.c.created_at, tokens.c.id)
                        .offset(offset).limit(limit)).all()
    return [_token(r) for r in rows], total


def delete_token(conn: Connection, token_id: str) -> bool:
    return conn.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount == 1


def delete_expired_tokens(conn: Connection, user_id: int, kind: TokenKind, now: float) -> int:
    """Drop an account's tokens of one kind that expired (review-page sessions, at each sign-in)."""
    return conn.execute(delete(tokens).where(tokens.c.user_id == user_id, tokens.c.kind == kind.value,
                                             tokens.c.expires_at < now)).rowcount


def delete_tokens_of_kind(conn: Connection, user_id: int, kind: TokenKind) -> int:
    return conn.execute(delete(tokens).where(tokens.c.user_id == user_id, tokens.c.kind == kind.value)).rowcount


def delete_tokens_minted_by(conn: Connection, relationship_id: str) -> int:
    """Revoking a trust relationship also ends the tokens it minted."""
    return conn.execute(delete(tokens).where(tokens.c.kind == TokenKind.TRUST.value,
                                             tokens.c.trust_relationships.contains(relationship_id))).rowcount


def credential_for(row: TokenRow, username: str | None) -> Credential:
    # A trust token belongs to no account: its name ("oidc:owner/repo") is what the audit log shows.
    return Credential(
        user_id=row.user_id, username=username if row.user_id is not None else row.name, kind=row.kind, token_id=row.id, bypass_2fa=row.bypass_2fa,
        read_only=row.readonly, packages=tuple(row.packages), scopes=tuple(row.scopes),
        cidr_whitelist=tuple(row.cidr_whitelist), trust_package=row.trust_package,
        trust_permissions=frozenset(row.trust_permissions), origin=row.origin)
