"""Test accounts on a broker: each with its own home, npmrc, token and (optionally) authenticator."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .npm import Npm
from .otp import Authenticator

PASSWORD = "correct horse battery"


@dataclass
class Account:
    name: str
    email: str
    token: str
    registry: str
    home: Path
    npm: Npm
    password: str = PASSWORD
    authenticator: Authenticator | None = None
    recovery_codes: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def otp(self) -> str:
        assert self.authenticator, f"{self.name} has no 2FA"
        return self.authenticator.code()

    def http(self, method: str, path: str, *, otp: bool = False, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        if otp:
            headers["npm-otp"] = self.otp()
        return httpx.request(method, self.registry + path.lstrip("/"), headers=headers, timeout=60, **kwargs)

    def use_token(self, token: str) -> None:
        """Point this account's npmrc at another token (a granular one, say)."""
        self.npm.userconfig.write_text(npmrc_line(self.registry, token))

    def enable_2fa(self, mode: str = "auth-and-writes") -> Authenticator:
        """Through the same routes `npm profile enable-2fa` uses (the interactive CLI is tested once)."""
        started = self.http("POST", "-/npm/v1/user", json={"tfa": {"mode": mode, "password": self.password}})
        assert started.status_code == 200, started.text
        self.authenticator = Authenticator.from_otpauth(started.json()["tfa"])
        confirmed = self.http("POST", "-/npm/v1/user", json={"tfa": [self.authenticator.code()]})
        assert confirmed.status_code == 200, confirmed.text
        self.recovery_codes = list(confirmed.json()["tfa"])
        return self.authenticator

    def recovery_code(self) -> str:
        """One of the recovery codes 2FA was enabled with, not handed out before: a second factor
        that does not wait for the next TOTP step when a test needs a fourth one within 30 s."""
        assert self.recovery_codes, f"{self.name} has no recovery codes left"
        return self.recovery_codes.pop()


def npmrc_line(registry: str, token: str) -> str:
    parts = urlsplit(registry)
    return f"//{parts.netloc}{parts.path}:_authToken={token}\n"


_counter = itertools.count()


@dataclass
class Accounts:
    registry: str
    root: Path
    cache: Path
    made: list[Account] = field(default_factory=list)

    def anonymous(self) -> Npm:
        home = self.root / f"anon-{next(_counter)}"
        home.mkdir(parents=True)
        (home / ".npmrc").write_text("")
        return Npm(self.registry, home / ".npmrc", home, self.cache)

    def create(self, prefix: str = "user") -> Account:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        email = f"{name}@example.test"
        response = httpx.put(f"{self.registry}-/user/org.couchdb.user:{name}", timeout=30,
                             json={"_id": f"org.couchdb.user:{name}", "name": name, "password": PASSWORD,
                                   "email": email, "type": "user", "roles": []})
        assert response.status_code == 201, response.text
        token = response.json()["token"]
        home = self.root / name
        home.mkdir(parents=True)
        (home / ".npmrc").write_text(npmrc_line(self.registry, token))
        account = Account(name, email, token, self.registry, home, Npm(self.registry, home / ".npmrc", home, self.cache))
        self.made.append(account)
        return account
