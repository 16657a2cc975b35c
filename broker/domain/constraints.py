"""Constraints an admin adds to a trust relationship beyond what `npm trust` configures.

They travel in the same `claims` object of `POST /-/package/<name>/trust` as the CLI's own keys, and
each narrows a relationship further; none widens it:

- `ref`: the full ref names the job may run on, as globs (`refs/tags/v*`, `refs/heads/main`). Read
  from GitHub's `ref` claim and GitLab's `ref_path` claim.
- `ref_protected: true`: the ref must be protected (the token's `ref_protected` claim says "true").
- `job_workflow_ref` (GitHub only): the reusable workflow the job runs,
  `owner/repo/.github/workflows/file.yml`, at any ref, or `…file.yml@<ref glob or commit sha>`.

A glob has one wildcard, `*`: any run of characters within one path segment (it never matches `/`).
Globs are validated strictly (length, charset, segments) and matched without regular expressions,
segment by segment, in time linear in practice and bounded by the lengths (no backtracking blowup).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

MAX_GLOB = 255
MAX_REFS = 10
MAX_TEXT = 1024  # a claim longer than this matches no glob (GitHub and GitLab refs are far shorter)

_GLOB_CHARS = re.compile(r"^[A-Za-z0-9._+*/-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_WORKFLOW_PATH = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml$")

# The claim each provider writes its full ref name in (`refs/heads/main`).
REF_CLAIM = {"github": "ref", "gitlab": "ref_path"}
CONSTRAINT_KEYS = ("ref", "ref_protected", "job_workflow_ref")


class InvalidConstraint(ValueError):
    pass


def ref_glob(value: str) -> str:
    """A ref glob, refused unless it is `refs/…`, of plain characters, without empty segments."""
    if not 0 < len(value) <= MAX_GLOB:
        raise ValueError(f"a ref glob has 1 to {MAX_GLOB} characters")
    if not _GLOB_CHARS.match(value):
        raise ValueError(f"{value!r} may only hold letters, digits, . _ + - / and the wildcard *")
    if not value.startswith("refs/") or "" in value.split("/") or ".." in value:
        raise ValueError(f"{value!r} is not a full ref name such as refs/heads/main or refs/tags/v*")
    return value


RefGlob = Annotated[str, AfterValidator(ref_glob)]


def _workflow(value: str) -> str:
    path, at, ref = value.partition("@")
    if not _WORKFLOW_PATH.match(path):
        raise ValueError(f"{value!r} is not owner/repo/.github/workflows/<file>.yml[@<ref glob or sha>]")
    if at and not _SHA.match(ref):
        ref_glob(ref)
    return value


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: tuple[RefGlob, ...] | None = Field(default=None, min_length=1, max_length=MAX_REFS)
    ref_protected: StrictBool | None = None
    job_workflow_ref: Annotated[str, AfterValidator(_workflow)] | None = Field(default=None, max_length=400)

    @field_validator("ref", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("ref_protected")
    @classmethod
    def _only_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("ref_protected can only be true (leave it out to allow unprotected refs)")
        return value

    def document(self) -> dict[str, Any]:
        """As stored and as `npm trust list` shows it, next to the CLI's own keys."""
        dumped = self.model_dump(mode="json", exclude_none=True)
        if "ref" in dumped and len(dumped["ref"]) == 1:
            dumped["ref"] = dumped["ref"][0]  # as it was most likely sent
        return dumped


def split(provider: str, raw: Any) -> tuple[Any, Constraints | None]:
    """The CLI's configuration (for the provider's own model) and the constraints, from one `claims`."""
    if not isinstance(raw, dict) or not any(k in raw for k in CONSTRAINT_KEYS):
        return raw, None
    rest = {k: v for k, v in raw.items() if k not in CONSTRAINT_KEYS}
    try:
        constraints = Constraints.model_validate({k: raw[k] for k in CONSTRAINT_KEYS if k in raw})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidConstraint(f"claims.{where}: {first['msg'].removeprefix('Value error, ')}") from None
    for key in ("ref", "ref_protected"):
        if getattr(constraints, key) is not None and provider not in REF_CLAIM:
            raise InvalidConstraint(f"claims.{key}: {provider} tokens name no ref; only GitHub Actions and GitLab "
                                    "relationships can constrain it")
    if constraints.job_workflow_ref is not None and provider != "github":
        raise InvalidConstraint("claims.job_workflow_ref: only GitHub Actions relationships name a reusable workflow")
    return rest, constraints


# --- matching -------------------------------------------------------------------------------------

def _segment_matches(pattern: str, text: str) -> bool:
    """`*` matches any run of characters (here: within a segment). The classic greedy matcher: on a
    mismatch it retries from the last `*` one character further, never revisiting older stars, so its
    work is bounded by len(pattern) × len(text)."""
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == text[t] and pattern[p] != "*":
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif star >= 0:
            mark += 1
            p, t = star + 1, mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def glob_matches(pattern: str, text: str) -> bool:
    """Whether `text` (a ref name) matches the glob; `*` never crosses a `/`."""
    if len(text) > MAX_TEXT:
        return False
    patterns, texts = pattern.split("/"), text.split("/")
    return len(patterns) == len(texts) and all(_segment_matches(p, t) for p, t in zip(patterns, texts))


def _claim(claims: Any, name: str) -> str | None:
    value = getattr(claims, name, None)  # claims models keep undeclared claims as attributes too
    return None if value is None else str(value)


def check_ref(provider: str, constraints: Constraints, claims: Any) -> tuple[str, str] | None:
    if constraints.ref is None:
        return None
    claim = REF_CLAIM[provider]
    seen = _claim(claims, claim)
    allowed = ", ".join(constraints.ref)
    if not seen:
        return claim, f"the token has no {claim} claim but the relationship allows only the refs {allowed}"
    if not any(glob_matches(pattern, seen) for pattern in constraints.ref):
        return claim, f"{claim} is {seen!r} but the relationship allows only the refs {allowed}"
    return None


def check_ref_protected(provider: str, constraints: Constraints, claims: Any) -> tuple[str, str] | None:
    if not constraints.ref_protected:
        return None
    seen = _claim(claims, "ref_protected")
    if (seen or "").lower() != "true":
        return "ref_protected", (f"ref_protected is {seen!r} but the relationship allows protected refs only"
                                 if seen is not None else
                                 "the token has no ref_protected claim but the relationship allows protected refs only")
    return None


def check_job_workflow_ref(provider: str, constraints: Constraints, claims: Any) -> tuple[str, str] | None:
    """GitHub writes `owner/repo/.github/workflows/file.yml@<ref>` (a `refs/…` name, or the commit sha
    when the caller pinned one). Owner and repository compare case-insensitively, as GitHub's names do."""
    expected = constraints.job_workflow_ref
    if expected is None:
        return None
    seen = _claim(claims, "job_workflow_ref") or ""
    path, _, ref = expected.partition("@")
    seen_path, at, seen_ref = seen.partition("@")
    owner_repo, _, file = path.partition("/.github/")
    seen_owner_repo, _, seen_file = seen_path.partition("/.github/")
    same_workflow = seen_owner_repo.lower() == owner_repo.lower() and seen_file == file and at and seen_ref
    if not same_workflow or (ref and not (seen_ref == ref if _SHA.match(ref) else glob_matches(ref, seen_ref))):
        return "job_workflow_ref", f"job_workflow_ref is {seen!r} but the relationship expects {expected!r}"
    return None


CHECKS = (check_ref, check_ref_protected, check_job_workflow_ref)


def failures(provider: str, constraints: Constraints | None, claims: Any) -> list[tuple[str, str]]:
    """Each failed constraint as (the claim it read, what was expected vs seen: for owners)."""
    if constraints is None:
        return []
    return [failed for check in CHECKS if (failed := check(provider, constraints, claims)) is not None]
