"""The action's inputs, read the way GitHub passes them to a container action (INPUT_<NAME>)."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from actions_toolkit import core
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .errors import ActionError


class InputError(ActionError):
    title = "Invalid input"


def loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only hosts the job's tokens may reach over plain http."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Inputs(BaseModel):
    model_config = ConfigDict(frozen=True)
    registry: str
    path: str = "."
    tarball: str | None = None
    tag: str | None = None
    access: Literal["public", "restricted"] | None = None
    mode: Literal["stage", "publish"] = "stage"
    dry_run: bool = False
    audience: str | None = None

    @field_validator("registry")
    @classmethod
    def _registry_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL like https://npm.example.com/")
        if parts.scheme == "http" and not loopback(parts.hostname):
            # The job's OIDC token and the token it is exchanged for would cross the network in clear
            # text, where anyone on the path could spend the OIDC token first.
            raise ValueError(f"{value} is plain http: the job's OIDC token would be sent in clear text. "
                             "Use https (plain http only for localhost, 127.0.0.0/8 or ::1)")
        return value if value.endswith("/") else value + "/"

    @property
    def registry_host(self) -> str:
        return urlsplit(self.registry).hostname or ""

    @property
    def registry_origin(self) -> str:
        parts = urlsplit(self.registry)
        return f"{parts.scheme}://{parts.netloc}/"

    @property
    def oidc_audience(self) -> str:
        return self.audience or f"npm:{self.registry_host}"


def _optional(name: str) -> str | None:
    return core.get_input(name) or None


def read_inputs() -> Inputs:
    raw_dry_run = core.get_input("dry-run") or "false"
    if raw_dry_run.lower() not in ("true", "false"):
        raise InputError(f"input dry-run must be true or false, not {raw_dry_run!r}")
    try:
        return Inputs(registry=core.get_input("registry"), path=core.get_input("path") or ".",
                      tarball=_optional("tarball"), tag=_optional("tag"), access=_optional("access"),
                      mode=core.get_input("mode") or "stage", dry_run=raw_dry_run.lower() == "true",
                      audience=_optional("audience"))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]).replace("_", "-") if first["loc"] else "input"
        if field == "registry" and first["type"] == "missing" or not core.get_input("registry"):
            raise InputError("input registry is required: the URL of your stagegate broker") from None
        raise InputError(f"input {field}: {first['msg'].removeprefix('Value error, ')}") from None
