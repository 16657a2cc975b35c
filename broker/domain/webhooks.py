"""Webhook rules: the events, a hook's target and which addresses it may reach, the signed body, retries."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

EVENTS = ("stage.created", "stage.approved", "stage.rejected", "stage.expired", "package.published",
          "trust.created", "trust.revoked")
MAX_URL = 2048
SIGNATURE_HEADER = "X-Stagegate-Signature"
EVENT_HEADER = "X-Stagegate-Event"
DELIVERY_HEADER = "X-Stagegate-Delivery"


_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class InvalidTarget(ValueError):
    pass


class HookRequest(BaseModel):
    """`POST /-/package/<name>/hooks`: `{"url": "https://…", "events": [...]}` (events: all when omitted)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=MAX_URL)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(EVENTS))

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}: choose from {', '.join(EVENTS)}")
        return sorted(set(value), key=EVENTS.index)


def _loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, allow_private: bool) -> str:
    """The URL if a hook may be pointed at it: https (http only for loopback, when the operator allows
    private targets), a host, no credentials in it. Addresses are checked again at every delivery."""
    if not _PRINTABLE.fullmatch(url):
        raise InvalidTarget("a webhook URL is printable ASCII without spaces (an international host in punycode)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidTarget(f"{url!r} is not a valid URL (its host or port)") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidTarget("a webhook URL must be https://host/…")
    if parts.username is not None or parts.password is not None:
        raise InvalidTarget("a webhook URL must not carry a user name or password: the signature authenticates")
    if parts.scheme == "http" and not (allow_private and _loopback_name(host)):
        raise InvalidTarget("a webhook URL must be https (http only for a loopback host on a registry whose "
                            "operator allows private targets)")
    if port == 0:
        raise InvalidTarget(f"{url!r} has an invalid port")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not address_allowed(literal, allow_private):
        raise InvalidTarget(f"{host} is a loopback, private, link-local or otherwise non-public address")
    return url


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> bool:
    """Public unicast addresses only, unless the operator allows private targets (STAGEGATE_WEBHOOK_ALLOW_PRIVATE).

    `is_global` excludes loopback, private, link-local (cloud metadata at 169.254.169.254), shared
    (100.64/10), reserved and documentation ranges. An IPv6 address that carries an IPv4 address a
    gateway or the host may reach (IPv4-mapped, NAT64, 6to4, IPv4-compatible, IPv4-translated) is
    judged as that IPv4 address: `is_global` takes 64:ff9b::a9fe:a9fe for public, and a NAT64
    gateway (AWS's on IPv6-only subnets, for one) forwards it to 169.254.169.254."""
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64 or ip.is_site_local:
            return False
        ip = _embedded_ipv4(ip) or ip
    if isinstance(ip, ipaddress.IPv4Address) and ip in _IETF_PROTOCOL:
        return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use: wherever the operator routes it
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated)
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")  # RFC 6890: not globally reachable (but .9, .10)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def signature(secret: str, body: bytes) -> str:
    """The `X-Stagegate-Signature` value: HMAC-SHA256 of the raw body with the hook's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, longest: float = 3600.0) -> float:
    """Seconds before the next try after `attempts` failed ones: 2, 4, 8 … up to `longest`."""
    return float(min(2 ** min(max(1, attempts), 30), longest))


GIVE_UP_AFTER = 36 * 3600  # seconds after the event: then the delivery is marked failed and the next one goes


def next_try(attempts: int, created_at: float, now: float, longest: float = 3600.0) -> float | None:
    """When to try a failed delivery again; None once it is older than GIVE_UP_AFTER."""
    if now - created_at >= GIVE_UP_AFTER:
        return None
    return now + backoff(attempts, longest)


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def event_text(event: str, package: str, actor: str | None, data: dict[str, Any]) -> str:
    """The Slack-compatible `text` of an event: one sentence a person reads in a channel."""
    what = f"{package}@{data['version']}" if data.get("version") else package
    stage = f" (stage {data['stage_id']})" if data.get("stage_id") else ""
    by = actor or "someone"
    texts = {
        "stage.created": f"{by} staged {what}{stage} with tag {data.get('tag')}: it waits for approval "
                         f"(`npm stage view {data.get('stage_id')}`)",
        "stage.approved": f"{by} approved {what}{stage}: {data.get('approvals')} of {data.get('required')} "
                          "required approvals",
        "stage.rejected": f"{by} rejected {what}{stage}",
        "stage.expired": f"{what}{stage} expired without enough approvals and was rejected",
        "package.published": f"{what} was published with tag {data.get('tag')} by {by}",
        "trust.created": f"{by} added a {data.get('provider')} trust relationship to {package}",
        "trust.revoked": f"{by} revoked trust relationship {data.get('id')} of {package}",
    }
    return _slack(texts.get(event, f"{event} on {package}"))
