"""Passwords, TOTP and sealed secrets."""

import pytest

from broker.security import totp
from broker.security.passwords import hash_password, verify_password
from broker.security.secrets import SecretBox


def test_password_hash_verifies_only_the_right_password():
    stored = hash_password("s3cret pass")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pasS", stored)
    assert not verify_password("x", "garbage")


def test_totp_match_reports_the_step():
    secret = totp.new_secret()
    now = 1_700_000_000.0
    assert totp.matching_step(secret, totp.code_at(secret, now), now) == int(now // 30)
    assert totp.matching_step(secret, totp.code_at(secret, now - 30), now) == int(now // 30) - 1
    assert totp.matching_step(secret, totp.code_at(secret, now - 90), now) is None
    assert totp.matching_step(secret, "12345", now) is None


def test_sealed_secret_opens_only_with_the_same_key():
    sealed = SecretBox("one").seal(b"seed")
    assert SecretBox("one").open(sealed) == b"seed"
    with pytest.raises(RuntimeError):
        SecretBox("two").open(sealed)
