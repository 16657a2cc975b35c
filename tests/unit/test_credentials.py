"""Token scopes and the 2FA decisions, as plain rules."""

import pytest

from broker.domain.credentials import (Action, Allowed, Credential, MfaPolicy, OtpRequired, Refused, TfaMode,
                                       TokenKind, second_factor)

SESSION = Credential(1, "u", TokenKind.SESSION)
GAT = Credential(1, "u", TokenKind.GRANULAR)
BYPASS = Credential(1, "u", TokenKind.GRANULAR, bypass_2fa=True)
TRUST = Credential(None, None, TokenKind.TRUST, trust_package="pkg")
AW = TfaMode.AUTH_AND_WRITES


def test_granular_token_covers_only_its_packages_and_scopes():
    token = Credential(1, "u", TokenKind.GRANULAR, packages=("a",), scopes=("@s",))
    assert token.covers("a") and token.covers("@s/x")
    assert not token.covers("b") and not token.covers("@other/x")


def test_read_only_token_may_not_write():
    assert not Credential(1, "u", TokenKind.GRANULAR, read_only=True).may_write("a")


def test_trust_token_covers_only_its_package():
    token = Credential(None, None, TokenKind.TRUST, trust_package="a")
    assert token.covers("a") and not token.covers("b")


def test_cidr_whitelist():
    token = Credential(1, "u", TokenKind.GRANULAR, cidr_whitelist=("10.0.0.0/8",))
    assert token.allowed_from("10.1.2.3")
    assert not token.allowed_from("127.0.0.1") and not token.allowed_from(None)


@pytest.mark.parametrize("cred,tfa,action,policy,expected", [
    (SESSION, None, Action.PUBLISH, MfaPolicy.NONE, Allowed),
    (SESSION, AW, Action.PUBLISH, MfaPolicy.NONE, OtpRequired),
    (SESSION, TfaMode.AUTH_ONLY, Action.PUBLISH, MfaPolicy.NONE, Allowed),
    (GAT, AW, Action.PUBLISH, MfaPolicy.NONE, OtpRequired),
    (BYPASS, AW, Action.PUBLISH, MfaPolicy.NONE, Allowed),
    (BYPASS, AW, Action.PUBLISH, MfaPolicy.PUBLISH, Refused),
    (GAT, AW, Action.PUBLISH, MfaPolicy.PUBLISH, Refused),
    (SESSION, AW, Action.PUBLISH, MfaPolicy.PUBLISH, OtpRequired),
    (SESSION, None, Action.PUBLISH, MfaPolicy.PUBLISH, Refused),
    (BYPASS, None, Action.PUBLISH, MfaPolicy.AUTOMATION, Allowed),
    (GAT, None, Action.PUBLISH, MfaPolicy.AUTOMATION, Refused),
    (SESSION, AW, Action.STAGE, MfaPolicy.PUBLISH, Allowed),
    (GAT, AW, Action.STAGE, MfaPolicy.NONE, Allowed),
    (SESSION, None, Action.STAGE_REVIEW, MfaPolicy.NONE, Refused),
    (BYPASS, AW, Action.STAGE_REVIEW, MfaPolicy.NONE, OtpRequired),
    (SESSION, TfaMode.AUTH_ONLY, Action.ACCOUNT, MfaPolicy.NONE, OtpRequired),
    (BYPASS, AW, Action.PACKAGE_WRITE, MfaPolicy.NONE, Allowed),
    # access, owners, publishing access, trust: a person's session with 2FA and an OTP, never a token
    (SESSION, AW, Action.PACKAGE_ADMIN, MfaPolicy.NONE, OtpRequired),
    (SESSION, TfaMode.AUTH_ONLY, Action.PACKAGE_ADMIN, MfaPolicy.NONE, OtpRequired),
    (SESSION, None, Action.PACKAGE_ADMIN, MfaPolicy.NONE, Refused),
    (BYPASS, AW, Action.PACKAGE_ADMIN, MfaPolicy.NONE, Refused),
    (GAT, AW, Action.PACKAGE_ADMIN, MfaPolicy.NONE, Refused),
    (TRUST, None, Action.PACKAGE_ADMIN, MfaPolicy.NONE, Refused),
    (SESSION, AW, Action.TRUST_CHANGE, MfaPolicy.NONE, OtpRequired),
    (GAT, AW, Action.TRUST_CHANGE, MfaPolicy.NONE, Refused),
    (SESSION, AW, Action.TRUST_VERIFY, MfaPolicy.NONE, OtpRequired),
    (SESSION, None, Action.TRUST_VERIFY, MfaPolicy.NONE, Refused),
    (BYPASS, AW, Action.TRUST_VERIFY, MfaPolicy.NONE, Refused),
])
def test_second_factor(cred, tfa, action, policy, expected):
    assert isinstance(second_factor(cred, tfa, action, policy, "pkg"), expected)
