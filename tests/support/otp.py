"""A test authenticator: TOTP codes that were not used yet, so no test waits on the clock."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP


class Authenticator:
    """Hands out each time step's code once; the broker accepts the previous, current and next step."""

    def __init__(self, secret_b32: str) -> None:
        padded = secret_b32 + "=" * (-len(secret_b32) % 8)
        self._totp = TOTP(base64.b32decode(padded), 6, SHA1(), 30, enforce_key_length=False)
        self._used: set[int] = set()

    @classmethod
    def from_otpauth(cls, url: str) -> "Authenticator":
        return cls(parse_qs(urlsplit(url).query)["secret"][0])

    def code(self) -> str:
        while True:
            step, into = divmod(time.time(), 30)
            current = int(step)
            # The previous step is only safe while the broker's clock is still in this one.
            candidates = ([current - 1] if into < 25 else []) + [current, current + 1]
            for candidate in candidates:
                if candidate not in self._used:
                    self._used.add(candidate)
                    return self._totp.generate(candidate * 30).decode()
            time.sleep(1)

    def wrong_code(self) -> str:
        valid = {self._totp.generate((int(time.time() // 30) + d) * 30).decode() for d in (-1, 0, 1)}
        return next(c for c in ("000000", "111111", "123456", "654321") if c not in valid)
