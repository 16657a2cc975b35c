"""Passwords, TOTP and sealed secrets."""

import pytest

from broker.security import totp
from broker.security.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from broker.security.secrets import SecretBox


def test_password_hash_verifies_only_the_right_password():
    stored = hash_password("s3cret pass")
    assert "s3cret" not in stored
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pasS", stored)
    assert not verify_password("x", "garbage")


def test_password_hash_uses_owasp_argon2id_parameters():
    stored = hash_password("s3cret pass")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not needs_rehash(stored)


def scrypt_hash_of_earlier_releases(password: str) -> str:
    import base64
    import hashlib
    import os

    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**15, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    return f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_hash_of_earlier_releases_still_verifies_and_asks_for_a_rehash():
    stored = scrypt_hash_of_earlier_releases("old pass word")
    assert verify_password("old pass word", stored)
    assert not verify_password("old pass wore", stored)
    assert needs_rehash(stored)


@pytest.mark.parametrize("stored", [
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",  # no hash
    "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",  # a gigantic memory cost is not run
    "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
    "scrypt$x$8$1$c2FsdA==$aGFzaA==",
    "",
])
def test_malformed_stored_hashes_match_nothing(stored):
    assert not verify_password("anything", stored)


def test_dummy_hash_is_one_current_hash_that_matches_no_likely_password():
    assert dummy_hash() == dummy_hash()
    assert dummy_hash().startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not verify_password("", dummy_hash())


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
