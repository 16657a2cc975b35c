"""Assembling a Broker from settings: data dir, database, blob store, secret key."""

from __future__ import annotations

from .api.context import Broker
from .oidc.issuers import providers, trusted_issuers
from .security.secrets import SecretBox, load_or_create_key
from .settings import Settings
from .store.blobs import FilesystemBlobStore
from .store.db import Database


def build_broker(settings: Settings, host: str = "127.0.0.1", port: int = 4873) -> Broker:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = settings.secret_key or load_or_create_key(settings.data_dir)
    db = Database(settings.resolved_database_url())
    db.create_schema()
    return Broker(settings=settings, db=db, blobs=FilesystemBlobStore(settings.data_dir / "blobs"),
                  box=SecretBox(key), public_url=settings.resolved_public_url(host, port),
                  issuers=trusted_issuers(settings), providers=providers())
