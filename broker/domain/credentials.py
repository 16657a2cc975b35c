"""Who is calling and what their credential may touch: token kinds, scopes, 2FA decisions.

Nothing here knows HTTP or SQL; the api layer builds a Credential and asks these rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum


class TokenKind(str, Enum):
    SESSION = "session"  # npm login / adduser, or username+password: the account's full powers
    GRANULAR = "granular"  # npm token create
    TRUST = "trust"  # minted by the OIDC exchange for one package
    # The review page's browser session (a cookie): only the /-/review/ pages accept it; as a Bearer
    # token on the npm API it is refused, so a session cookie that leaks cannot publish or change anything.
    WEB = "web"


class TfaMode(str, Enum):
    AUTH_ONLY = "auth-only"
    AUTH_AND_WRITES = "auth-and-writes"


class MfaPolicy(str, Enum):
    """A package's publishing access (`npm access set mfa=…`)."""

    NONE = "none"
    PUBLISH = "publish"  # require 2FA and disallow tokens
    AUTOMATION = "automation"  # require 2FA, but bypass tokens may publish


class Action(str, Enum):
    PUBLISH = "publish"  # a new version: the package's publishing access applies
    PACKAGE_WRITE = "package-write"  # dist-tags, deprecate, unpublish
    PACKAGE_ADMIN = "package-admin"  # access, owners, publishing access (mfa policy): a human with 2FA only
    ACCOUNT = "account"  # tokens, 2FA, profile
    STAGE = "stage"  # stage publish: never asks for 2FA
    STAGE_REVIEW = "stage-review"  # approve/reject: always needs 2FA
    TRUST_CHANGE = "trust-change"  # create/revoke trust relationships: always needs 2FA
    TRUST_VERIFY = "trust-verify"  # compare a CI job's token with the relationships: always needs 2FA


@dataclass(frozen=True)
class Credential:
    user_id: int | None
    username: str | None
    kind: TokenKind
    token_id: str | None = None
    bypass_2fa: bool = False
    read_only: bool = False
    packages: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    cidr_whitelist: tuple[str, ...] = ()
    trust_package: str | None = None
    trust_permissions: frozenset[str] = field(default_factory=frozenset)
    origin: dict = field(default_factory=dict, compare=False)  # trust tokens: where the CI job ran

    def covers(self, package: str) -> bool:
        """Whether the token's package/scope selection includes this package."""
        if self.kind is TokenKind.TRUST:
            return package == self.trust_package
        if self.kind is TokenKind.SESSION or not (self.packages or self.scopes):
            return True
        if package in self.packages:
            return True
        scope = package.split("/")[0] if package.startswith("@") else None
        return scope is not None and (scope in self.scopes or scope.lstrip("@") in self.scopes)

    def may_write(self, package: str) -> bool:
        return self.covers(package) and not self.read_only

    def allowed_from(self, address: str | None) -> bool:
        if not self.cidr_whitelist:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.cidr_whitelist)


@dataclass(frozen=True)
class Allowed:
    pass


@dataclass(frozen=True)
class OtpRequired:
    pass


@dataclass(frozen=True)
class Refused:
    reason: str
    code: str | None = None  # the error code the refusal carries, when it has a more precise one


Decision = Allowed | OtpRequired | Refused

# Actions that always need proof of presence: 2FA enabled and an OTP, whatever the token.
_PRESENCE = {Action.STAGE_REVIEW: "approving or rejecting a staged package",
             Action.TRUST_CHANGE: "changing a package's trust relationships",
             Action.TRUST_VERIFY: "comparing a CI job's token with a package's trust relationships",
             Action.PACKAGE_ADMIN: "changing a package's access, owners or publishing access"}
# Of those, the ones that change who may publish or read: never with a token made for automation
# (granular, trust), only from a logged-in session of a person, with an OTP.
_SESSION_ONLY = {Action.TRUST_CHANGE, Action.TRUST_VERIFY, Action.PACKAGE_ADMIN}


def second_factor(cred: Credential | None, tfa: TfaMode | None, action: Action,
                  policy: MfaPolicy = MfaPolicy.NONE, package: str = "") -> Decision:
    """Whether a request that is otherwise authorised needs an OTP, or may not happen at all."""
    if action is Action.STAGE:
        return Allowed()
    if action in _PRESENCE:
        # A review-page session is a person signed in with an OTP, like `npm login` (the npm API refuses it).
        if action in _SESSION_ONLY and cred is not None and cred.kind not in (TokenKind.SESSION, TokenKind.WEB):
            return Refused(f"{_PRESENCE[action]} is not possible with an access token: log in with "
                           "`npm login` and give a one-time password")
        if tfa is None:
            return Refused(f"{_PRESENCE[action]} needs two-factor authentication on your account: "
                           "run `npm profile enable-2fa auth-and-writes` first")
        return OtpRequired()
    if action is Action.ACCOUNT:
        return OtpRequired() if tfa is not None else Allowed()
    if action is Action.PUBLISH and policy is not MfaPolicy.NONE:
        return _publishing_access(cred, tfa, policy, package)
    if tfa is TfaMode.AUTH_AND_WRITES and not (cred and cred.bypass_2fa):
        return OtpRequired()
    return Allowed()


def _publishing_access(cred: Credential | None, tfa: TfaMode | None, policy: MfaPolicy, package: str) -> Decision:
    if cred is not None and cred.kind is TokenKind.GRANULAR:
        if policy is MfaPolicy.PUBLISH:
            return Refused(f"{package} requires two-factor authentication and disallows tokens for "
                           "publishing: publish from a logged-in session with --otp, or stage it "
                           "with `npm stage publish`")
        if cred.bypass_2fa:
            return Allowed()
    if tfa is None:
        return Refused(f"{package} requires two-factor authentication to publish: run "
                       "`npm profile enable-2fa auth-and-writes` first")
    return OtpRequired()
