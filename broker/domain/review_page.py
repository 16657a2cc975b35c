"""Pure rules of the review page: what a stage shows about where it came from, its age, the
form-body parser, the origin check, and the per-session CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PROJECT = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+$")
MAX_FORM_FIELDS = 8


@dataclass(frozen=True)
class CiOrigin:
    """Where a CI job that staged a version ran, from the OIDC claims recorded with the stage."""

    repository: str
    workflow: str | None
    ref: str | None
    sha: str | None
    run_id: str | None
    run_url: str | None


def ci_origin(origin: dict, github_issuer: str, gitlab_issuer: str) -> CiOrigin | None:
    """The CI job behind a stage (None for a stage by an account), with a link to its run where the
    provider has one: GitHub's only for github.com's own issuer (a GitHub Enterprise Server issuer
    runs elsewhere), GitLab's on the configured instance."""
    repository = origin.get("repository")
    if not isinstance(repository, str) or not repository:
        return None
    run_id = str(origin["run_id"]) if origin.get("run_id") is not None else None
    run_url = None
    if run_id and run_id.isdigit():
        if origin.get("provider", "github") == "github" and github_issuer == GITHUB_ISSUER \
                and _REPOSITORY.match(repository):
            run_url = f"https://github.com/{repository}/actions/runs/{run_id}"
        elif origin.get("provider") == "gitlab" and _PROJECT.match(repository) \
                and gitlab_issuer.startswith("https://"):
            run_url = f"{gitlab_issuer.rstrip('/')}/{repository}/-/pipelines/{run_id}"
    return CiOrigin(repository, _str(origin.get("workflow_ref")), _str(origin.get("ref")), _str(origin.get("sha")),
                    run_id, run_url)


def _str(value) -> str | None:
    return str(value) if value is not None else None


def approvals_so_far(approvals: list[str], required: int) -> str:
    """Who approved a stage so far against what its package requires: "alice (1 of 2)", "none yet (of 1)"."""
    if not approvals:
        return f"none yet (of {required})"
    return f"{', '.join(approvals)} ({len(approvals)} of {required})"


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


class BadForm(ValueError):
    pass


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (already bounded in size) as its last value per field."""
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise BadForm("the form must be sent as application/x-www-form-urlencoded")
    try:
        parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS,
                          encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadForm("the form is not valid URL-encoded UTF-8, or has too many fields") from None
    form = {k: v[-1] for k, v in parsed.items()}
    if any("\0" in k or "\0" in v for k, v in form.items()):
        raise BadForm("a form field holds a NUL character")
    return form


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


def same_origin(public_url: str, origin: str | None, referer: str | None) -> bool:
    """Whether a form POST came from a page of this registry: its Origin header (every current browser
    sends one on a POST), or, without one, its Referer, names the public URL's origin."""
    expected = origin_of(public_url)
    if origin is not None:
        return origin != "null" and _safe_origin(origin) == expected
    return referer is not None and _safe_origin(referer) == expected


def _safe_origin(url: str) -> str | None:
    try:
        return origin_of(url)
    except ValueError:  # a port out of range, a malformed IPv6 host
        return None


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: derived from the session's secret value, which only its own browser
    holds (the cookie is HttpOnly), so a page of another site can neither read nor compute it."""
    return hashlib.sha256(b"stagegate-review-csrf:" + session_token.encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
