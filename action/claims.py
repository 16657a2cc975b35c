"""The claims of the job's own OIDC token, read for messages (never for decisions)."""

from __future__ import annotations

import base64
import binascii
import json

from pydantic import BaseModel, ConfigDict, ValidationError


class JobClaims(BaseModel):
    """The claims of the job's own token that messages quote.

    Read without verifying the signature: the token is the job's own, fresh from the runtime, and
    nothing is decided on these values; the broker verifies it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    iss: str | None = None
    aud: str | list[str] | None = None
    repository: str | None = None
    workflow_ref: str | None = None
    environment: str | None = None
    ref: str | None = None

    @classmethod
    def of(cls, id_token: str) -> JobClaims:
        try:
            payload = id_token.split(".")[1]
            return cls.model_validate(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        except (IndexError, ValueError, binascii.Error, ValidationError):
            return cls()

    @property
    def workflow_file(self) -> str | None:
        """`release.yml` from `<repository>/.github/workflows/release.yml@<ref>`, as GitHub builds it."""
        prefix = f"{self.repository}/.github/workflows/"
        if not self.repository or not self.workflow_ref or not self.workflow_ref.startswith(prefix):
            return None
        rest = self.workflow_ref[len(prefix):]
        if self.ref and rest.endswith("@" + self.ref):
            return rest[:-len(self.ref) - 1]
        return rest.partition("@")[0] or None

    def quoted(self) -> list[str]:
        """`name: value` lines for the claims a trust relationship matches (those present)."""
        keys = ("repository", "workflow_ref", "environment", "ref")
        return [f"{key}: {getattr(self, key)}" for key in keys if getattr(self, key) is not None]
