"""The signing keyring: its file format, its signatures, rotation."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.domain.packument import PackageView, PublishedVersion, abbreviated_packument, full_packument
from broker.security.signing import KeyringError, load_or_create_keyring, new_keyring, parse_keyring

def _public_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


WHEN = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone.utc)


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_a_signature_covers_name_version_and_integrity():
    keyring = new_keyring()
    (signature,) = keyring.signatures("widget", "1.0.0", "sha512-abc")
    assert signature["keyid"] == keyring.active.keyid
    keyring.active.key.verify(base64.b64decode(signature["sig"]), b"widget@1.0.0:sha512-abc",
                              ec.ECDSA(hashes.SHA256()))
    assert not keyring.active.verifies(b"widget@1.0.1:sha512-abc", signature["sig"])


def test_signatures_are_deterministic_so_instances_serve_the_same_bytes():
    text = new_keyring().to_pem()
    assert parse_keyring(text).signatures("a", "1.0.0", "sha512-x") == \
        parse_keyring(text).signatures("a", "1.0.0", "sha512-x")


def test_rotation_retires_the_old_key_with_its_expiry_and_survives_the_file():
    first = new_keyring()
    rotated = parse_keyring(first.rotated(WHEN).to_pem())
    assert rotated.active.keyid != first.active.keyid
    assert [(k.keyid, k.expires) for k in rotated.retired] == [(first.active.keyid, WHEN)]
    documents = [k.document() for k in rotated.public_keys()]
    assert [d["expires"] for d in documents] == [None, "2026-01-31T12:00:00.000Z"]
    twice = parse_keyring(rotated.rotated(WHEN).to_pem())
    assert [k.keyid for k in twice.retired] == [rotated.active.keyid, first.active.keyid]


@pytest.mark.parametrize("text, complaint", [
    ("", "no PRIVATE KEY block"),
    (_pem(ec.generate_private_key(ec.SECP256R1())) * 2, "two PRIVATE KEY blocks"),
    (_pem(ec.generate_private_key(ec.SECP384R1())), "not an ECDSA P-256 key"),
    (_pem(rsa.generate_private_key(65537, 2048)), "not an ECDSA P-256 key"),
    (_pem(ec.generate_private_key(ec.SECP256R1())) + _public_pem(), "must follow a line `expires"),
    (new_keyring().rotated(WHEN).to_pem().replace("2026-01-31T12:00:00.000Z", "2026-01-31T12:00:00"),
     "needs a time zone"),
])
def test_an_unusable_keyring_is_refused_with_the_reason(text, complaint):
    with pytest.raises(KeyringError, match=complaint):
        parse_keyring(text)


def test_served_signatures_replace_what_the_stored_manifest_carries():
    keyring = new_keyring()
    manifest = {"name": "w", "version": "1.0.0",
                "dist": {"integrity": "sha512-x", "shasum": "ab", "signatures": [{"keyid": "forged", "sig": "x"}]}}
    view = PackageView("w", 1, "", 0.0, 0.0, [PublishedVersion("1.0.0", manifest, 0.0)], {"latest": "1.0.0"}, [])
    for build in (full_packument, abbreviated_packument):
        dist = build(view, lambda v: f"http://r/w/-/w-{v}.tgz", keyring)["versions"]["1.0.0"]["dist"]
        assert dist["signatures"] == keyring.signatures("w", "1.0.0", "sha512-x")
        assert dist["tarball"] == "http://r/w/-/w-1.0.0.tgz"


def test_the_generated_keyring_is_private_and_kept_across_starts(tmp_path):
    path = tmp_path / "signing-key.pem"
    first = load_or_create_keyring(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_keyring(path).active.keyid == first.active.keyid
    assert [p.name for p in tmp_path.iterdir()] == ["signing-key.pem"]
