"""Accounts over the couch-style user routes: adduser/login, whoami, logout."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from ..domain.accounts import new_account_problem
from ..domain.credentials import OtpRequired, TokenKind
from ..errors import bad_request, conflict, not_found, unauthorized
from ..security.tokens import new_token, token_digest, token_display_prefix
from ..store import accounts, audit
from ..store.accounts import User
from .auth import checked_password, enforce, new_password_hash, require_account, require_login, with_request_otp
from .bodies import body_as
from .context import Broker
from .http import Req, json_response


class CouchUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    password: str
    email: str | None = None


def whoami(b: Broker, req: Req) -> Response:
    _, user = require_account(b, req)
    return json_response({"username": user.name})


def session_token(b: Broker, user: User, how: str) -> str:
    token = new_token()
    with b.db.write() as conn:
        accounts.insert_token(conn, digest=token_digest(token), display=token_display_prefix(token),
                              user_id=user.id, kind=TokenKind.SESSION, name="session",
                              expires_at=time.time() + b.settings.session_token_days * 86400)
        audit.record(conn, how, actor=user.name)
    return token


def couch_put(b: Broker, req: Req) -> Response:
    """`npm adduser` and `npm login`: create the account (open signup) or log into it."""
    body = body_as(CouchUser, req.json_object(), "user document")
    if body.name != req.params["name"]:
        raise bad_request("the user document's name does not match the URL")
    with b.db.read() as conn:
        known = accounts.user_by_name(conn, body.name) is not None
    if not known and body.email is not None and b.settings.open_signup:
        user = _sign_up(b, body)
        how = "user.created"
    else:
        # An unknown name costs a password hash too (and counts against the address). With open
        # signup anyone can probe names by signing up, so npm's "There is no user …" tells nothing
        # new; on a closed registry an unknown name gets exactly a wrong password's answer.
        user = checked_password(b, req, body.name, body.password)
        if user is None and not known and b.settings.open_signup:
            raise bad_request(f'There is no user with the username "{body.name}".')
        if user is None:
            raise unauthorized(_BAD_LOGIN if b.settings.open_signup else _BAD_LOGIN + _CLOSED_SIGNUP, "Basic",
                               code="auth.bad-credentials")
        if user.tfa_mode and not user.tfa_pending:
            enforce(b, with_request_otp(req, user), OtpRequired(), req.otp)
        how = "user.login"
    token = session_token(b, user, how)
    return json_response({"ok": True, "id": f"org.couchdb.user:{user.name}", "rev": "1-session",
                          "token": token}, status=201)


_BAD_LOGIN = "incorrect username or password"
_CLOSED_SIGNUP = ("; accounts are not created with `npm adduser` on this registry: an administrator runs "
                  "`stagegate-broker user add <name> --email <email>`")


def _sign_up(b: Broker, body: CouchUser) -> User:
    problem = new_account_problem(body.name, body.email, body.password)
    if problem is not None:
        raise bad_request(problem)
    password_hash = new_password_hash(body.password)
    with b.db.write() as conn:
        user = accounts.create_user(conn, body.name, body.email, password_hash)
    if user is None:
        raise conflict(f"the username {body.name} was just taken")
    return user


def couch_get(b: Broker, req: Req) -> Response:
    require_login(b, req)
    with b.db.read() as conn:
        user = accounts.user_by_name(conn, req.params["name"])
    if user is None:
        raise not_found(f"no user named {req.params['name']}")
    return json_response({"_id": f"org.couchdb.user:{user.name}", "name": user.name, "email": user.email})


def logout(b: Broker, req: Req) -> Response:
    """`npm logout`: revoke the session token it names, which must be the caller's own."""
    cred, user = require_account(b, req)
    with b.db.write() as conn:
        row = accounts.token_by_digest(conn, token_digest(req.params["token"]))
        if row is None or row.user_id != user.id:
            raise not_found("no such token on your account")
        accounts.delete_token(conn, row.id)
        audit.record(conn, "token.revoked", actor=user.name, token_id=row.id, via="logout")
    return json_response({"ok": True})
