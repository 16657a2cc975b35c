"""Password hashing with Argon2id (memory-hard), at OWASP's current parameters.

OWASP's Password Storage Cheat Sheet names Argon2id with m=19 MiB, t=2, p=1 first, and scrypt
with N=2^17, r=8, p=1 (128 MiB) as the alternative. Both come from the `cryptography` package we
already use; Argon2id costs an attacker as much per guess at a seventh of the server's memory,
so a cap on concurrent hashes holds far more logins in the same RAM. Hashes are PHC strings
(`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Hashes of older parameters (the scrypt strings of
earlier releases) still verify, and `needs_rehash` tells the login to store a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from functools import lru_cache

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1
_LENGTH = 32
CURRENT_PREFIX = f"$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={LANES}$"
# Stored hashes are ours, but a corrupted row must not make us allocate gigabytes.
_ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,2}),p=(\d{1,2})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
_SCRYPT_MAXMEM = 256 * 1024 * 1024


def _argon2(salt: bytes) -> Argon2id:
    return Argon2id(salt=salt, length=_LENGTH, iterations=ITERATIONS, lanes=LANES, memory_cost=MEMORY_KIB)


def hash_password(password: str) -> str:
    return _argon2(os.urandom(16)).derive_phc_encoded(password.encode())


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (current or older parameters); False for a malformed hash."""
    if stored.startswith("$argon2id$"):
        return _verify_argon2(password, stored)
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    return False


def needs_rehash(stored: str) -> bool:
    """Whether a hash that just verified should be replaced by one at the current parameters."""
    return not stored.startswith(CURRENT_PREFIX)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of no one's password at the current parameters: an unknown user is checked against it,
    so that a wrong name costs the same time as a wrong password."""
    return hash_password(base64.b64encode(os.urandom(24)).decode())


def _verify_argon2(password: str, stored: str) -> bool:
    match = _ARGON2.match(stored)
    if match is None or int(match[1]) > 1024 * 1024:  # at most 1 GiB
        return False
    try:
        Argon2id.verify_phc_encoded(password.encode(), stored)
    except (InvalidKey, ValueError):
        return False
    return True


def _verify_scrypt(password: str, stored: str) -> bool:
    """The format of releases before Argon2id: scrypt$N$r$p$salt$digest (N=2^15, r=8, p=1)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=_SCRYPT_MAXMEM)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
