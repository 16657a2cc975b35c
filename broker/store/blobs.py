"""Content-addressed tarball storage. The filesystem implementation is the embedded default."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def put(self, data: bytes, key: str | None = None) -> str: ...
    def get(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None: ...


_BLOB_KEY = re.compile(r"[0-9a-f]{128}")


class FilesystemBlobStore:
    """Blobs named by their sha512, written to a temp file, fsynced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _BLOB_KEY.fullmatch(key):
            raise ValueError("blob keys are sha512 hex digests")
        return self.root / key[:2] / key

    def put(self, data: bytes, key: str | None = None) -> str:
        """`key`: the sha512 hex digest of `data` when the caller has it already (hashing once)."""
        key = key or hashlib.sha512(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"blob directory {self.root} is missing")


class S3BlobStore:
    """Blobs in S3-compatible object storage (AWS S3, MinIO, SeaweedFS, R2 …), shared by all instances.

    A PUT is atomic and durable once S3 answers it, so a blob is whole before any row refers to it.
    """

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(
            retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
            max_pool_connections=32))
        self._missing = self._client.exceptions.NoSuchKey

    def _key(self, key: str) -> str:
        if len(key) != 128 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("blob keys are sha512 hex digests")
        return f"{self.prefix}/{key[:2]}/{key}" if self.prefix else f"{key[:2]}/{key}"

    def put(self, data: bytes, key: str | None = None) -> str:
        """`key`: the sha512 hex digest of `data` when the caller has it already (hashing once)."""
        key = key or hashlib.sha512(data).hexdigest()
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                ContentType="application/octet-stream")
        return key

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self._missing:
            return None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check(self) -> None:
        self._client.head_bucket(Bucket=self.bucket)


def blob_store(blob_url: str | None, data_dir: Path, endpoint_url: str | None = None) -> BlobStore:
    """The filesystem under the data dir by default; s3://bucket/prefix for shared storage."""
    if not blob_url:
        return FilesystemBlobStore(data_dir / "blobs")
    if blob_url.startswith("s3://"):
        bucket, _, prefix = blob_url[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError("STAGEGATE_BLOB_URL must look like s3://bucket/prefix")
        return S3BlobStore(bucket, prefix, endpoint_url)
    if blob_url.startswith("file://"):
        return FilesystemBlobStore(Path(blob_url[len("file://"):]))
    raise ValueError("STAGEGATE_BLOB_URL must be s3://bucket/prefix or file:///path")
