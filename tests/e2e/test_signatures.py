"""Registry signatures, checked by the pinned npm CLI's own verifier (its bundled pacote).

`npm audit signatures` first fetches sigstore's TUF metadata, which this machine cannot reach, so
the tests call the code it ends in: pacote.manifest(spec, {verifySignatures, '//host/:_keys'})
with the keys of /-/npm/v1/keys (tests/support/verify_signatures.js).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.test_stage_cli import owned, stage
from tests.support.broker import ROOT
from tests.support.npm import NODE
from tests.support.packages import make_package, publish_document, unique_name

VERIFY = Path(__file__).resolve().parents[1] / "support" / "verify_signatures.js"
# `npm audit signatures` without network: see the file.
OFFLINE_TUF = {"NODE_OPTIONS": f"--require {Path(__file__).resolve().parents[1] / 'support' / 'offline_tuf.js'}"}
ABBREVIATED = "application/vnd.npm.install-v1+json"


def verify(registry: str, spec: str, keys: dict, tmp_path: Path) -> dict:
    """What the npm CLI concludes about `spec`'s registry signature, given `keys`."""
    keys_file = tmp_path / f"keys-{os.urandom(4).hex()}.json"
    keys_file.write_text(json.dumps(keys))
    cache = tmp_path / f"pacote-cache-{os.urandom(4).hex()}"
    result = subprocess.run([NODE, str(VERIFY), registry, spec, str(keys_file), str(cache)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Mirror:
    """A registry mirror serving fixed documents: what a tampering proxy could send.

    `packument` answers every GET except /-/npm/v1/keys, which `keys` answers when given."""

    def __init__(self, packument: dict, keys: dict | None = None) -> None:
        bodies = {"packument": json.dumps(packument).encode(), "keys": json.dumps(keys).encode()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = bodies["keys" if keys and self.path == "/-/npm/v1/keys" else "packument"]
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "Mirror":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def public_key(entry: dict) -> ec.EllipticCurvePublicKey:
    return serialization.load_der_public_key(base64.b64decode(entry["key"]))


def test_keys_route_serves_the_p256_signing_key_as_npm_does(broker):
    keys = httpx.get(broker.url + "-/npm/v1/keys").json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    der = base64.b64decode(key["key"])
    assert key["keyid"] == "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert key["keytype"] == key["scheme"] == "ecdsa-sha2-nistp256" and key["expires"] is None
    assert isinstance(public_key(key).curve, ec.SECP256R1)


def test_a_version_published_with_npm_publish_verifies_with_the_npm_clis_code(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    keys = httpx.get(account.registry + "-/npm/v1/keys").json()
    verdict = verify(account.registry, f"{name}@1.0.0", keys, tmp_path)
    assert verdict["ok"] is True, verdict
    assert verdict["signatures"][0]["keyid"] == keys["keys"][0]["keyid"]
    full = httpx.get(account.registry + name).json()["versions"]["1.0.0"]["dist"]
    slim = httpx.get(account.registry + name, headers={"accept": ABBREVIATED}).json()["versions"]["1.0.0"]["dist"]
    assert slim["signatures"] == full["signatures"] == verdict["signatures"]
    message = f"{name}@1.0.0:{full['integrity']}".encode()
    public_key(keys["keys"][0]).verify(base64.b64decode(full["signatures"][0]["sig"]), message,
                                       ec.ECDSA(hashes.SHA256()))


def test_a_version_published_by_approving_a_stage_verifies(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory)
    approved = account.npm("stage", "approve", stage_id, f"--otp={account.otp()}")
    assert approved.returncode == 0, approved
    keys = httpx.get(account.registry + "-/npm/v1/keys").json()
    verdict = verify(account.registry, f"{name}@1.1.0", keys, tmp_path)
    assert verdict["ok"] is True, verdict
    assert verdict["signatures"][0]["keyid"] == keys["keys"][0]["keyid"]


def test_a_mirror_that_changes_a_versions_integrity_is_caught(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    keys = httpx.get(account.registry + "-/npm/v1/keys").json()
    tampered = httpx.get(account.registry + name).json()
    other = base64.b64encode(hashlib.sha512(b"a different tarball").digest()).decode()
    tampered["versions"]["1.0.0"]["dist"]["integrity"] = "sha512-" + other
    with Mirror(tampered) as mirror:
        verdict = verify(mirror.url, f"{name}@1.0.0", {"keys": keys["keys"]}, tmp_path)
    assert verdict["ok"] is False and verdict["code"] == "EINTEGRITYSIGNATURE", verdict
    assert "has an invalid registry signature" in verdict["message"]


def _installed(accounts, tmp_path, spec: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name":"project","version":"1.0.0"}')
    installed = accounts.anonymous()("install", spec, cwd=project)
    assert installed.returncode == 0, installed
    return project


def test_npm_audit_signatures_reports_installed_packages_verified(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    project = _installed(accounts, tmp_path, name)
    audited = accounts.anonymous()("audit", "signatures", cwd=project, env=OFFLINE_TUF)
    assert audited.returncode == 0, audited
    assert "1 package has a verified registry signature" in audited.stdout


def test_npm_audit_signatures_flags_a_package_a_mirror_tampered_with(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    project = _installed(accounts, tmp_path, name)
    tampered = httpx.get(account.registry + name).json()
    sig = bytearray(base64.b64decode(tampered["versions"]["1.0.0"]["dist"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    tampered["versions"]["1.0.0"]["dist"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    with Mirror(tampered, keys=httpx.get(account.registry + "-/npm/v1/keys").json()) as mirror:
        audited = accounts.anonymous()("audit", "signatures", cwd=project,
                                       env={**OFFLINE_TUF, "npm_config_registry": mirror.url})
    assert audited.returncode == 1, audited
    assert "1 package has an invalid registry signature" in audited.stdout, audited


def test_a_signature_a_publisher_sends_is_replaced_by_the_registrys(accounts):
    account = accounts.create()
    name = unique_name()
    document = publish_document(name, "1.0.0")
    forged = [{"keyid": "SHA256:forged", "sig": base64.b64encode(b"not a signature").decode()}]
    document["versions"]["1.0.0"]["dist"]["signatures"] = forged
    assert account.http("PUT", name, json=document).status_code == 200
    served = httpx.get(account.registry + name).json()["versions"]["1.0.0"]["dist"]["signatures"]
    keyid = httpx.get(account.registry + "-/npm/v1/keys").json()["keys"][0]["keyid"]
    assert [s["keyid"] for s in served] == [keyid]


def _rotate(broker_env_and_storage: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "broker.cli", "signing-key", "rotate", *args], cwd=ROOT,
                            env={**os.environ, **broker_env_and_storage}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _owner(broker) -> str:
    created = httpx.put(broker.url + "-/user/org.couchdb.user:owner", json={
        "name": "owner", "password": "long enough", "email": "o@example.test"})
    assert created.status_code == 201, created.text
    return created.json()["token"]


def _publish(broker, token: str, name: str, version: str) -> None:
    published = httpx.put(broker.url + name, json=publish_document(name, version),
                          headers={"authorization": f"Bearer {token}"})
    assert published.status_code == 200, published.text


def test_a_rotated_key_keeps_old_documents_verifying_and_the_new_key_signs(backends, broker_env, tmp_path):
    storage = backends.storage()
    env = {**storage, **broker_env}
    broker = backends.broker(storage, broker_env)
    try:
        token = _owner(broker)
        _publish(broker, token, "rotated", "1.0.0")
        old_keys = httpx.get(broker.url + "-/npm/v1/keys").json()
        old_document = httpx.get(broker.url + "rotated").json()  # as a client's cache holds it
        old_private = serialization.load_pem_private_key(
            (Path(storage["STAGEGATE_DATA_DIR"]) / "signing-key.pem").read_bytes(), password=None)
        broker.stop()
        assert "retired " + old_keys["keys"][0]["keyid"] in _rotate(env)
        broker = backends.broker(storage, broker_env, port=broker.port)
        keys = httpx.get(broker.url + "-/npm/v1/keys").json()
        new, old = keys["keys"]
        assert old["keyid"] == old_keys["keys"][0]["keyid"] and old["expires"] is not None
        assert new["keyid"] != old["keyid"] and new["expires"] is None
        verdict = verify(broker.url, "rotated@1.0.0", keys, tmp_path)
        assert verdict["ok"] is True and verdict["signatures"][0]["keyid"] == new["keyid"], verdict
        with Mirror(old_document) as mirror:
            verdict = verify(mirror.url, "rotated@1.0.0", keys, tmp_path)
        assert verdict["ok"] is True and verdict["signatures"][0]["keyid"] == old["keyid"], verdict

        _publish(broker, token, "rotated", "1.1.0")
        # The retired key signing a version published after its expiry (a stolen key, say) is refused.
        late = copy.deepcopy(httpx.get(broker.url + "rotated").json())
        dist = late["versions"]["1.1.0"]["dist"]
        sig = old_private.sign(f"rotated@1.1.0:{dist['integrity']}".encode(), ec.ECDSA(hashes.SHA256()))
        dist["signatures"] = [{"keyid": old["keyid"], "sig": base64.b64encode(sig).decode()}]
        with Mirror(late) as mirror:
            verdict = verify(mirror.url, "rotated@1.1.0", keys, tmp_path)
        assert verdict["ok"] is False and verdict["code"] == "EEXPIREDSIGNATUREKEY", verdict
    finally:
        broker.stop()


def test_a_key_replaced_without_keeping_the_old_one_no_longer_verifies_old_signatures(backends, broker_env,
                                                                                        tmp_path):
    storage = backends.storage()
    broker = backends.broker(storage, broker_env)
    try:
        _publish(broker, _owner(broker), "replaced", "1.0.0")
        old_keys = httpx.get(broker.url + "-/npm/v1/keys").json()
        broker.stop()
        key_file = Path(storage["STAGEGATE_DATA_DIR"]) / "signing-key.pem"
        key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        broker = backends.broker(storage, broker_env, port=broker.port)
        keys = httpx.get(broker.url + "-/npm/v1/keys").json()
        assert [k["keyid"] for k in keys["keys"]] != [k["keyid"] for k in old_keys["keys"]]
        verdict = verify(broker.url, "replaced@1.0.0", old_keys, tmp_path)
        assert verdict["ok"] is False and verdict["code"] == "EMISSINGSIGNATUREKEY", verdict
        assert "no corresponding public key can be found" in verdict["message"]
        assert verify(broker.url, "replaced@1.0.0", keys, tmp_path)["ok"] is True
    finally:
        broker.stop()


def test_a_signing_key_given_in_a_setting_is_used_and_must_be_p256(backends, broker_env, tmp_path):
    given = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "given.pem"
    key_file.write_bytes(given.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    broker = backends.broker(env={**broker_env, "STAGEGATE_SIGNING_KEY_FILE": str(key_file)})
    try:
        served = public_key(httpx.get(broker.url + "-/npm/v1/keys").json()["keys"][0])
        assert served.public_numbers() == given.public_key().public_numbers()
    finally:
        broker.stop()
    wrong = tmp_path / "p384.pem"
    wrong.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    storage = backends.storage()
    backends.upgrade(storage)
    refused = subprocess.run([sys.executable, "-m", "broker.cli", "serve", "--port", "1"], cwd=ROOT,
                             env={**os.environ, **storage, "STAGEGATE_SIGNING_KEY_FILE": str(wrong)},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "not an ECDSA P-256 key" in refused.stderr
