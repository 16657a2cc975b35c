"""Approval policy rules: how many maintainers must approve a stage, who counts, when a stage expires."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from .credentials import Allowed, Decision, Refused

MIN_APPROVALS = 1
MAX_APPROVALS = 10


class PolicyChange(BaseModel):
    """`POST /-/package/<name>/policy`: `{"requiredApprovals": N}`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    required_approvals: int = Field(alias="requiredApprovals", ge=MIN_APPROVALS, le=MAX_APPROVALS, strict=True)


def policy_fits_owners(required: int, owners: int) -> Decision:
    """A requirement that the maintainers cannot meet would leave every stage waiting until it expires."""
    if required > owners:
        return Refused(f"{required} approvals cannot be met by the {owners} maintainer(s) of this package: add "
                       f"maintainers first (`npm owner add`), or ask for at most {owners}", code="policy.unmeetable")
    return Allowed()


@dataclass(frozen=True)
class StageAuthor:
    """Who staged a stage, as the stage row records it."""

    actor: str
    actor_type: str  # "user" (a session), "token" (a granular token), "trust" (an OIDC job)


def may_approve(reviewer: str, author: StageAuthor, required: int) -> Decision:
    """A maintainer who staged with their own account does not count among the approvers of their stage.

    With one approval required, staging and then approving it yourself is npm's staged-publishing flow
    (stage without 2FA, approve with it), so that stays allowed. From two on, the point of the policy
    is that someone else looks: the stager's own approval is refused, whether they staged with their
    session or with a granular token of their account (both are them). A stage from a CI job (trust)
    has no maintainer as its author, so every maintainer counts.
    """
    if required <= 1 or author.actor_type == "trust" or author.actor != reviewer:
        return Allowed()
    return Refused(f"you staged this version yourself, and {required} maintainers other than the one who staged "
                   "it must approve it: ask another maintainer to run `npm stage approve`", code="stage.own-approval")


@dataclass(frozen=True)
class Tally:
    """The approvals of a stage after one more was recorded."""

    approvers: tuple[str, ...]
    required: int
    repeated: bool  # this reviewer had approved it already

    @property
    def complete(self) -> bool:
        return len(self.approvers) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvers))


_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(raw: str | int | float) -> int:
    """`30d`, `12h`, `90m`, `3600s`, `2w` or plain seconds; at least one second, at most ten years."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = int(raw)
    else:
        match = _DURATION.match(str(raw))
        if not match:
            raise ValueError(f"{raw!r} is not a duration: send seconds, or a number with s, m, h, d or w (e.g. 30d)")
        seconds = int(match[1]) * _UNIT[match[2].lower()]
    if not 1 <= seconds <= 10 * 365 * 86400:
        raise ValueError(f"a stage lifetime of {seconds} s is outside 1 second to 10 years")
    return seconds


def expired(created_at: float, ttl: int, now: float) -> bool:
    return now >= created_at + ttl
