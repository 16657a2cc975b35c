"""Tarball blobs are shared by content: a rejection or unpublish deleting one must not lose it for a
stage or publish of the same bytes that is under way (CI re-staging a version whose stage was just
rejected). Runs in-process on the backend under test: SQLite + files, or PostgreSQL + S3."""

from __future__ import annotations

import threading

import pytest

from broker.api import packages as package_routes
from broker.services import versions
from broker.api import stage as stage_routes
from broker.domain.credentials import Credential, TokenKind
from broker.domain.publish import parse_publish_document
from broker.store import accounts, registry, staging
from tests.support.packages import publish_document, tarball, unique_name


def owned_package(b) -> tuple[str, Credential]:
    name = unique_name("shared")
    with b.db.write() as conn:
        user = accounts.create_user(conn, name, f"{name}@example.com", "not a real hash")
        assert registry.create_package(conn, name, user.id, "public")
    return name, Credential(user_id=user.id, username=name, kind=TokenKind.SESSION)


def request_for(name: str):
    data = tarball({"name": name, "version": "1.0.0"}, {"package/index.js": b"module.exports = 1\n"})
    return parse_publish_document(publish_document(name, "1.0.0", data=data), name, 1 << 20)


def test_a_deletion_waits_for_the_uncommitted_stage_of_the_same_bytes_and_leaves_the_blob(b):
    name, _ = owned_package(b)
    request = request_for(name)
    blob = b.blobs.put(request.tarball)
    with b.db.write() as conn:
        assert registry.claim_version(conn, name, "1.0.0", "staged", request.manifest, blob)
        versions.keep_blob(b, conn, blob, request.tarball)
        deleter = threading.Thread(target=versions.delete_unused_blobs, args=(b, [blob]))
        deleter.start()
        deleter.join(0.5)
        assert deleter.is_alive(), "the deletion checked the blob while a transaction using it was open"
    deleter.join(30)
    assert not deleter.is_alive()
    assert b.blobs.get(blob) == request.tarball


class RejectedRightAfterPut:
    """The backend's real blob store; the first put is followed at once by the deletion that a
    rejection of the same bytes makes (the stage's rows are gone and committed by then)."""

    def __init__(self, b, store) -> None:
        self.b, self.store, self.fired = b, store, False

    def put(self, data: bytes, key: str | None = None) -> str:
        key = self.store.put(data, key)
        if not self.fired:
            self.fired = True
            versions.delete_unused_blobs(self.b, [key])
        return key

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.mark.parametrize("again", ["stage", "publish"])
def test_staging_or_publishing_bytes_whose_blob_a_rejection_just_deleted_keeps_them(b, again):
    name, cred = owned_package(b)
    request = request_for(name)
    stage_id = stage_routes._commit_stage(b, request, cred, name, None)
    with b.db.write() as conn:  # the rejection: its rows go first, then the unused blob
        blob = staging.discard_staged(conn, staging.stage_by_id(conn, stage_id)).blob
    b.blobs = RejectedRightAfterPut(b, b.blobs)
    if again == "stage":
        stage_routes._commit_stage(b, request, cred, name, None)
    else:
        package_routes._commit_publish(b, request, cred, actor=name, new_owner=None, second_factor=None)
    assert b.blobs.fired
    assert b.blobs.get(blob) == request.tarball
    with b.db.read() as conn:
        assert registry.blob_in_use(conn, blob)


class HeldPut:
    """The backend's real blob store, whose put waits until the test lets it go (or fails)."""

    def __init__(self, store, fail: bool = False) -> None:
        self.store, self.fail = store, fail
        self.started, self.release = threading.Event(), threading.Event()

    def put(self, data: bytes, key: str | None = None) -> str:
        self.started.set()
        assert self.release.wait(30)
        if self.fail:
            raise OSError(28, "No space left on device")
        return self.store.put(data, key)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_version_commits_only_once_its_blob_is_written(b):
    name, cred = owned_package(b)
    request = request_for(name)
    b.blobs = held = HeldPut(b.blobs)
    publisher = threading.Thread(target=package_routes._commit_publish, args=(b, request, cred),
                                 kwargs=dict(actor=name, new_owner=None, second_factor=None))
    publisher.start()
    assert held.started.wait(30)
    publisher.join(0.5)
    assert publisher.is_alive()
    with b.db.read() as conn:
        assert registry.version_row(conn, name, "1.0.0") is None
    held.release.set()
    publisher.join(30)
    assert not publisher.is_alive()
    with b.db.read() as conn:
        assert registry.version_row(conn, name, "1.0.0").state == "published"
    assert b.blobs.get(request.digests.sha512_hex) == request.tarball


def test_a_blob_that_cannot_be_written_rolls_the_version_back(b):
    name, cred = owned_package(b)
    request = request_for(name)
    b.blobs = held = HeldPut(b.blobs, fail=True)
    held.release.set()
    with pytest.raises(OSError):
        package_routes._commit_publish(b, request, cred, actor=name, new_owner=None, second_factor=None)
    with b.db.read() as conn:
        assert registry.version_row(conn, name, "1.0.0") is None
        assert registry.tags(conn, name) == {}
