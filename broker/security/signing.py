"""Registry signatures: the ECDSA P-256 keyring that signs `<name>@<version>:<integrity>` as npm does.

The keyring is one PEM file, given to every instance (STAGEGATE_SIGNING_KEY_FILE, by default
DATA_DIR/signing-key.pem, generated on first start): its PRIVATE KEY block is the key that signs,
and each PUBLIC KEY block after it is a retired key, preceded by a line `expires: <ISO time>`.
Retired keys stay served at /-/npm/v1/keys so that documents signed before a rotation keep
verifying; npm accepts a key's signature only on versions published before its `expires`.
Signatures are deterministic (RFC 6979), so every instance serves the same bytes for one revision.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

_ALGORITHM = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_BLOCK = re.compile(r"(?:^expires: *(?P<expires>\S+)\s*\n)?"
                    r"(?P<pem>-----BEGIN (?P<kind>PRIVATE KEY|PUBLIC KEY)-----\n.*?\n-----END (?P=kind)-----)",
                    re.S | re.M)


class KeyringError(Exception):
    """The keyring file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class PublicKey:
    key: ec.EllipticCurvePublicKey
    expires: dt.datetime | None  # signatures on versions published from then on are not accepted

    @functools.cached_property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @functools.cached_property
    def keyid(self) -> str:
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.der).digest()).decode()

    def document(self) -> dict[str, str | None]:
        """One entry of GET /-/npm/v1/keys."""
        return {"expires": _iso(self.expires) if self.expires else None, "keyid": self.keyid,
                "keytype": "ecdsa-sha2-nistp256", "scheme": "ecdsa-sha2-nistp256",
                "key": base64.b64encode(self.der).decode()}

    def verifies(self, message: bytes, sig: str) -> bool:
        try:
            self.key.verify(base64.b64decode(sig), message, _ALGORITHM)
        except (InvalidSignature, ValueError):
            return False
        return True


class Keyring:
    """The signing key and the retired public keys, as read from one keyring file."""

    def __init__(self, signing: ec.EllipticCurvePrivateKey, retired: list[PublicKey]) -> None:
        self._signing = signing
        self.active = PublicKey(signing.public_key(), None)
        self.retired = retired

    def public_keys(self) -> list[PublicKey]:
        return [self.active, *self.retired]

    def signatures(self, name: str, version: str, integrity: str) -> list[dict[str, str]]:
        """dist.signatures of one version: what `npm audit signatures` checks."""
        return [{"keyid": self.active.keyid, "sig": self._sign(f"{name}@{version}:{integrity}")}]

    # Memoized: a new revision of a packument signs only its new versions. The keyring lives as long
    # as the process, so the cache holding `self` costs nothing.
    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def _sign(self, message: str) -> str:
        return base64.b64encode(self._signing.sign(message.encode(), _ALGORITHM)).decode()

    def to_pem(self) -> str:
        text = self._signing.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
        for old in self.retired:
            pem = old.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            text += f"expires: {_iso(old.expires)}\n{pem.decode()}"
        return text

    def rotated(self, expires: dt.datetime) -> Keyring:
        """A keyring with a new signing key; the current one is retired with `expires`."""
        return Keyring(ec.generate_private_key(ec.SECP256R1()), [PublicKey(self.active.key, expires), *self.retired])


def new_keyring() -> Keyring:
    return Keyring(ec.generate_private_key(ec.SECP256R1()), [])


def parse_keyring(text: str) -> Keyring:
    signing: ec.EllipticCurvePrivateKey | None = None
    retired: list[PublicKey] = []
    for block in _BLOCK.finditer(text):
        if block["kind"] == "PRIVATE KEY":
            if signing is not None:
                raise KeyringError("the keyring has two PRIVATE KEY blocks; it must have exactly one, the signing key")
            key = serialization.load_pem_private_key(block["pem"].encode(), password=None)
            signing = _p256(key, "the signing key")
        else:
            if not block["expires"]:
                raise KeyringError("a retired PUBLIC KEY block must follow a line `expires: <ISO time>`")
            key = serialization.load_pem_public_key(block["pem"].encode())
            retired.append(PublicKey(_p256(key, "a retired key"), _parse_time(block["expires"])))
    if signing is None:
        raise KeyringError("the keyring has no PRIVATE KEY block (an unencrypted PKCS#8 ECDSA P-256 key)")
    return Keyring(signing, retired)


def _p256(key: object, what: str):
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or \
            not isinstance(key.curve, ec.SECP256R1):
        raise KeyringError(f"{what} is not an ECDSA P-256 key, the only kind npm verifies")
    return key


def _parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KeyringError(f"expires {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise KeyringError(f"expires {text!r} needs a time zone (e.g. a trailing Z)")
    return when


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_keyring(path: Path) -> Keyring:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyringError(f"cannot read the signing keyring {path}: {exc.strerror}") from None
    try:
        return parse_keyring(text)
    except ValueError as exc:  # cryptography's complaint about a malformed PEM block
        raise KeyringError(f"the signing keyring {path} holds a key that cannot be read: {exc}") from None


def load_or_create_keyring(path: Path) -> Keyring:
    """The keyring at `path`; created (mode 0600) on first start when absent.

    The new file is written aside and linked into place, so an instance starting at the same time
    sees either no file or the whole of it, and the first link wins."""
    if path.exists():
        return load_keyring(path)
    keyring = new_keyring()
    aside = path.with_name(f".{path.name}.{os.getpid()}.new")
    _write(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), keyring)
    try:
        os.link(aside, path)
    except FileExistsError:  # another process won the race: use its key
        return load_keyring(path)
    finally:
        aside.unlink()
    return keyring


def save_keyring(path: Path, keyring: Keyring) -> None:
    """Replace the keyring file atomically, keeping it private."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    _write(fd, keyring)
    os.replace(tmp, path)


def _write(fd: int, keyring: Keyring) -> None:
    with os.fdopen(fd, "w") as handle:
        handle.write(keyring.to_pem())
        handle.flush()
        os.fsync(handle.fileno())
