"""The audit log's rules: which values an entry may never hold, how readers filter it, and how an
entry reads (who acted, how they authenticated, what was recorded). No HTTP, no SQL."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .credentials import Credential, Decision, OtpRequired, Refused, TfaMode
from .packument import iso

REDACTED = "[redacted]"

# Detail keys that name a secret: `token`, `id_token`, `otp`, `password`, `tfa_secret` … but not
# `token_id` or `tokens_ended`, which name ids and counts.
_SECRET_KEY = re.compile(r"(?:^|_)(?:token|jwt|otp|password|passwd|secret|authorization|cookie|"
                         r"recovery_codes?|private_key|api_key)$", re.IGNORECASE)
# Values that are secrets whatever their key: our bearer tokens, npm's tokens, and JWTs.
_SECRET_VALUE = re.compile(r"\bsg_[A-Za-z0-9_-]{20,}|\bnpm_[A-Za-z0-9]{20,}|"
                           r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

_EVENT_FILTER = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
# What a CI job's origin shows its reader (the same keys a trust token keeps as its origin).
_ORIGIN_KEYS = ("repository", "workflow_ref", "environment", "ref", "sha", "run_id", "run_attempt", "actor")


class InvalidFilter(ValueError):
    """A filter a reader sent that means nothing; its message says what to send instead."""


def secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.replace("-", "_")))


def scrubbed(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """`value` with every secret-looking key's value and every token- or JWT-looking string replaced by
    REDACTED, and the paths of what was replaced (so the writer can say which caller slipped)."""
    if isinstance(value, dict):
        clean, found = {}, []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if secret_key(str(key)) and item not in (None, "", False):
                clean[key] = REDACTED
                found.append(where)
            else:
                clean[key], inner = scrubbed(item, where)
                found += inner
        return clean, found
    if isinstance(value, (list, tuple)):
        items = [scrubbed(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return [item for item, _ in items], [p for _, inner in items for p in inner]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return _SECRET_VALUE.sub(REDACTED, value), [path or "value"]
    return value, []


# --- who may read a package's history ---------------------------------------------------------------

def may_read_history(cred: Credential, tfa: TfaMode | None, package: str, owner: bool) -> Decision:
    """A package's history is for its owners, with proof of presence (an OTP) every time.

    Granular tokens that may write the package are accepted like sessions (the OTP is still asked):
    the history shows nothing the token could not already change, and `npm trust list` and
    `npm stage list` accept such tokens too. A read-only token, or one limited to other packages, is
    refused: the history reveals the package's trust configuration, which is write-level knowledge.
    """
    if not owner:
        return Refused(f"the security history of {package} is for its owners; you are not one of them")
    if not cred.may_write(package):
        return Refused(f"this token cannot read the security history of {package}: it needs write access "
                       "to the package (its packages, scopes or read-only permission exclude it)")
    if tfa is None:
        return Refused(f"reading the security history of {package} needs two-factor authentication on your "
                       "account: run `npm profile enable-2fa auth-and-writes` first")
    return OtpRequired()


# --- filters ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditFilter:
    package: str | None = None
    event: str | None = None  # "oidc" or "oidc." (that kind), or an exact event such as "stage.approved"
    since: float | None = None  # inclusive, epoch seconds
    until: float | None = None  # exclusive


def event_filter(raw: str | None) -> str | None:
    """The event filter as the store uses it: "oidc.*" and "oidc." mean the same prefix."""
    if raw is None or raw == "":
        return None
    kind = raw.strip().lower().removesuffix("*")
    if not _EVENT_FILTER.match(kind):
        raise InvalidFilter(f"event={raw!r} is not an event kind: send one such as `stage.approved`, or a prefix "
                            "such as `oidc` or `oidc.` for every event of that kind")
    return kind


def instant(raw: str | None, name: str) -> float | None:
    """An ISO 8601 date or time as epoch seconds; a date means its midnight, a time without zone is UTC."""
    if raw is None or raw == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidFilter(f"{name}={raw!r} is not an ISO 8601 date or time: send one such as 2026-11-01 "
                            "or 2026-11-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def matches_event(kind: str, event: str) -> bool:
    """The filter rule the store implements in SQL: a prefix ending in ".", or a kind and its sub-events."""
    if kind.endswith("."):
        return event.startswith(kind)
    return event == kind or event.startswith(kind + ".")


# --- entries ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    id: int
    at: float
    event: str
    actor: str | None
    package: str | None
    detail: dict[str, Any]

    def authentication(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """How the actor authenticated, split out of the recorded detail: (auth, the rest of the detail)."""
        detail = dict(self.detail)
        if self.event == "oidc.exchange":
            claims = detail.get("claims") if isinstance(detail.get("claims"), dict) else {}
            return {"kind": "oidc", "origin": {k: claims[k] for k in _ORIGIN_KEYS if claims.get(k)}}, detail
        kind = detail.pop("auth", None)
        auth = {"kind": kind} if kind is not None else {}
        for recorded, shown in (("token_id", "tokenId"), ("second_factor", "secondFactor"), ("origin", "origin")):
            value = detail.pop(recorded, None)
            if value:
                auth[shown] = value
        return auth or None, detail

    def wire(self) -> dict[str, Any]:
        auth, detail = self.authentication()
        return {"id": self.id, "time": iso(self.at), "event": self.event, "package": self.package,
                "actor": self.actor, "auth": auth, "detail": detail}

    def line(self) -> str:
        """One human-readable line: time, event, package, actor (how), then the detail as key=value."""
        auth, detail = self.authentication()
        how = ""
        if auth:
            parts = [auth.get("kind")] + [f"{k}={v}" for k, v in auth.items() if k in ("secondFactor",)]
            origin = auth.get("origin") or {}
            parts += [f"{k}={origin[k]}" for k in ("repository", "workflow_ref", "run_id") if origin.get(k)]
            how = " (" + ", ".join(p for p in parts if p) + ")"
        fields = " ".join(f"{k}={_shown(v)}" for k, v in _flat(detail) if v not in (None, "", [], {}))
        return f"{iso(self.at)}  {self.event}  {self.package or '-'}  {self.actor or '-'}{how}  {fields}".rstrip()


def _flat(detail: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in detail.items():
        if isinstance(value, dict) and value:
            items += _flat(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = str(value)
    return f'"{text}"' if " " in text else text
