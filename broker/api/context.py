"""What every handler is given: settings, the database, the blob store and the secret box."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from ..domain.trust import Provider
from ..oidc.issuers import Issuers
from ..security.secrets import SecretBox
from ..security.signing import Keyring
from .readcache import BlobCache, PackumentCache, ReadyResponses
from ..settings import Settings
from ..store.blobs import BlobStore
from ..store.db import Database


@dataclass
class Broker:
    settings: Settings
    db: Database
    blobs: BlobStore
    box: SecretBox
    public_url: str  # always ends with "/"
    issuers: Issuers  # resolves a token's `iss`
    providers: dict[str, Provider]  # by trust relationship type
    keyring: Keyring  # signs every version's dist (registry signatures)
    packuments: PackumentCache = field(default_factory=PackumentCache)
    blob_cache: BlobCache = field(default_factory=BlobCache)
    ready: ReadyResponses = field(default_factory=ReadyResponses)

    @cached_property
    def audiences(self) -> list[str]:
        return [f"npm:{self.public_host}", *self.settings.oidc_extra_audiences]

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).hostname or "localhost"

    def tarball_url(self, tarball_path: str) -> str:
        return self.public_url + tarball_path
