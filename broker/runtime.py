"""Assembling a Broker from settings: data dir, database (schema checked), blob store, secret key."""

from __future__ import annotations

from .api.context import Broker
from .api.readcache import ReadyResponses
from .oidc.issuers import providers, trusted_issuers
from .security.secrets import SecretBox, load_or_create_key
from .security.signing import load_or_create_keyring
from .settings import Settings
from .store import schema
from .store.blobs import blob_store
from .store.db import Database
from .store.trust import issuers_in_use


class SchemaOutOfDate(Exception):
    pass


def open_database(settings: Settings) -> Database:
    """The database at the current schema: the embedded default migrates itself on start; any other
    database must be upgraded explicitly (`stagegate-broker db upgrade`), once, by one process."""
    db = Database(settings.resolved_database_url(), settings.generation_file())
    if settings.embedded:
        schema.upgrade(db)
    elif not schema.is_current(db):
        found, wanted = schema.current(db), schema.head(db.url)
        db.dispose()
        raise SchemaOutOfDate(f"the database schema is {found or 'empty'} but this broker needs {wanted}: "
                              "run `stagegate-broker db upgrade` first")
    return db


def build_broker(settings: Settings, host: str = "127.0.0.1", port: int = 4873) -> Broker:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = settings.secret_key or load_or_create_key(settings.data_dir)
    db = open_database(settings)

    def in_use(provider: str) -> frozenset[str]:
        with db.read() as conn:
            return issuers_in_use(conn, provider)

    return Broker(settings=settings, db=db,
                  blobs=blob_store(settings.blob_url, settings.data_dir, settings.s3_endpoint_url),
                  box=SecretBox(key), public_url=settings.resolved_public_url(host, port),
                  issuers=trusted_issuers(settings, in_use), providers=providers(),
                  keyring=load_or_create_keyring(settings.resolved_signing_key_file()),
                  ready=ReadyResponses(revalidate=settings.resolved_read_revalidate_seconds()))
