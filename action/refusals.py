"""The broker's refusals, explained: the error body's `code` picks the class, the class owns its title
and its hint, and the hint depends on the run (its mode, the package, the claims the job presented).

A body without a specific code (an older broker, or a place that only gets its status's default
code) is understood by what its status means at that step (`*_FALLBACK`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import httpx

from .claims import JobClaims
from .errors import ActionError

# What a status means at each step when the body names no specific code.
EXCHANGE_FALLBACK = {401: "oidc.invalid-token", 403: "oidc.no-match", 404: "package.not-found", 503: "oidc.unavailable"}
UPLOAD_FALLBACK = {404: "package.not-found", 409: "version.staged", 503: "unavailable"}
READ_FALLBACK = {503: "unavailable"}
STATUS_CODES = {"bad-request", "unauthorized", "forbidden", "not-found", "method-not-allowed", "conflict",
                "too-large", "rate-limited", "internal", "unavailable"}


@dataclass(frozen=True)
class Job:
    """What a hint may quote about this run."""

    package: str
    version: str
    mode: Literal["stage", "publish"]
    registry: str
    audience: str
    claims: JobClaims = field(default_factory=JobClaims)


PERMISSION_FOR_MODE = {"stage": "createStagedPackage", "publish": "createPackage"}


def registry_flag(registry: str) -> str:
    return "" if registry.rstrip("/") == "https://registry.npmjs.org" else f" --registry {registry}"


def allow_flag(mode: str) -> str:
    return "--allow-publish" if mode == "publish" else "--allow-stage-publish"


def trust_command(job: Job, package: str | None = None) -> str:
    """The `npm trust github` command that allows this very job (placeholders where a claim is missing)
    for its package, or for `package` (a scope's `@scope/*`)."""
    claims = job.claims
    repo = shlex.quote(claims.repository) if claims.repository else "<owner/repo>"
    file = shlex.quote(claims.workflow_file) if claims.workflow_file else "<workflow.yml>"
    env = f" --env {shlex.quote(claims.environment)}" if claims.environment else ""
    return (f"npm trust github {shlex.quote(package or job.package)} --repo {repo} --file {file}{env} "
            f"{allow_flag(job.mode)}{registry_flag(job.registry)}")


def presented_claims(job: Job) -> str:
    lines = job.claims.quoted() or ["(its claims could not be read)"]
    return "This job's token presented:\n" + "\n".join(f"  {line}" for line in lines)


class Refused(ActionError):
    """The broker answered a step with an error; subclasses are the causes the action can explain."""

    title = "Registry refused the request"
    codes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, what: str, status: int, code: str | None, message: str, job: Job) -> None:
        shown = f"{status} {code}" if code else str(status)
        super().__init__(f"the registry refused {what} ({shown}): {message}")
        self.status, self.code, self.message, self.job = status, code, message, job


class Unreachable(ActionError):
    title = "Registry unreachable"

    def hint(self) -> str:
        return "Check the `registry` input, and that the registry is reachable from the runner."


class NoMatch(Refused):
    title = "No trust relationship matches this job"
    codes = ("oidc.no-match",)

    def hint(self) -> str:
        return (f"{presented_claims(self.job)}\n\nAn owner of {self.job.package} (with 2FA) can allow this "
                f"workflow with:\n\n  {trust_command(self.job)}")


class NoRelationships(Refused):
    title = "The package trusts no workflow yet"
    codes = ("oidc.no-relationships",)

    def hint(self) -> str:
        return (f"{self.job.package} has no trust relationship. An owner (with 2FA) allows this workflow "
                f"with:\n\n  {trust_command(self.job)}\n\n{presented_claims(self.job)}")


class PackageNotFound(Refused):
    title = "Package not found"
    codes = ("package.not-found",)

    def hint(self) -> str:
        scope = self.job.package.split("/")[0] if self.job.package.startswith("@") else None
        scoped = (f"\nOr an owner of every package of {scope} trusts this workflow for the whole scope, new "
                  f"packages included (their first version is staged):\n\n  "
                  f"{trust_command(replace(self.job, mode='stage'), f'{scope}/*')}\n" if scope else "")
        return (f"{self.job.package} must exist before a workflow can be trusted with it: publish its first "
                f"version by hand (`npm publish{registry_flag(self.job.registry)}` as an owner with 2FA), then "
                f"allow this workflow with:\n\n  {trust_command(self.job)}\n{scoped}\n"
                "(A restricted package that no relationship matches answers the same, so as not to reveal "
                f"it.)\n{presented_claims(self.job)}")


class Replayed(Refused):
    title = "OIDC token already used"
    codes = ("oidc.replayed",)

    def hint(self) -> str:
        return ("Each OIDC token is exchanged once. Re-run the job: it requests a fresh token. If this "
                "happens again, something else in the job is spending its tokens.")


class InvalidToken(Refused):
    title = "The registry did not accept the job's OIDC token"
    codes = ("oidc.invalid-token", "oidc.missing-token")

    def hint(self) -> str:
        return (f"This run requested the audience {self.job.audience!r}; the registry expects npm:<its host> "
                "unless its operator configured another. Leave the `audience` input empty for the default, or "
                "set it to what the registry expects. The token also expires minutes after it is issued: "
                "re-run the job if it waited long, and check the runner's clock.")


class UntrustedIssuer(Refused):
    title = "The registry does not trust this CI's OIDC issuer"
    codes = ("oidc.untrusted-issuer",)

    def hint(self) -> str:
        issuer = self.job.claims.iss or "(unknown)"
        return (f"The job's token comes from {issuer}, which is not among the issuers this registry trusts. "
                "Its operator sets them (STAGEGATE_OIDC_GITHUB_ISSUER, STAGEGATE_OIDC_ISSUERS); the workflow "
                "cannot change this.")


class RegistryPolicy(Refused):
    """The registry's own policy (broker/domain/policy.py), whatever the package trusts."""

    title = "The registry's policy refuses this kind of job"
    codes = ("oidc.pull-request-target", "oidc.workflow-run", "oidc.self-hosted-runner")

    def hint(self) -> str:
        if self.code == "oidc.self-hosted-runner":
            return ("The job ran on a self-hosted runner. Run the publishing job on a GitHub-hosted runner "
                    "(`runs-on: ubuntu-latest`), or ask the registry's operator to allow self-hosted runners "
                    'for this issuer ("allow_self_hosted_runners" in STAGEGATE_OIDC_ISSUERS).')
        event = "pull_request_target" if self.code == "oidc.pull-request-target" else "workflow_run"
        operator = ("" if event == "pull_request_target" else " (or ask the registry's operator to allow "
                    'workflow_run for this issuer: "allow_workflow_run" in STAGEGATE_OIDC_ISSUERS)')
        return (f"The workflow was triggered by {event}, which can run for a fork's pull request with the "
                "repository's permissions. Publish from a workflow triggered by a tag push, a release or "
                f"workflow_dispatch, and trust that workflow{operator}.")


class PermissionDenied(Refused):
    title = "The trust relationship does not allow this mode"
    codes = ("trust.permission-denied",)

    def hint(self) -> str:
        if self.job.mode == "publish":
            return ("The relationship that matched lacks --allow-publish. Use `mode: stage` (a maintainer "
                    "approves with 2FA), or an owner allows publishing without review with:\n\n"
                    f"  {trust_command(self.job)}")
        return ("The relationship that matched lacks --allow-stage-publish (it may allow only `mode: publish`). "
                f"An owner allows staging with:\n\n  {trust_command(self.job)}")


class VersionUsed(Refused):
    title = "Version already used"
    codes = ("version.used",)

    def hint(self) -> str:
        return (f"{self.job.package}@{self.job.version} was published before (a version number is used once, "
                "even after an unpublish). Bump the version in package.json and run again.")


class VersionStaged(Refused):
    title = "Version already staged"
    codes = ("version.staged",)

    def hint(self) -> str:
        return (f"{self.job.package}@{self.job.version} is staged and waits for review "
                f"(`npm stage list {self.job.package}{registry_flag(self.job.registry)}`): a maintainer approves "
                "or rejects it. To stage something else, bump the version.")


class Unavailable(Refused):
    title = "Registry unavailable"
    codes = ("oidc.unavailable", "unavailable", "server.busy", "auth.busy", "rate-limited")

    def hint(self) -> str:
        return "The action retried and gave up. Re-run the job in a few minutes."


EXPLAINED: tuple[type[Refused], ...] = (NoMatch, NoRelationships, PackageNotFound, Replayed, InvalidToken,
                                         UntrustedIssuer, RegistryPolicy, PermissionDenied, VersionUsed, VersionStaged,
                                         Unavailable)
BY_CODE: dict[str, type[Refused]] = {code: cls for cls in EXPLAINED for code in cls.codes}


def explained(status: int, body: object, what: str, job: Job, fallback: dict[int, str]) -> Refused:
    """The refusal for an error body: by its specific `code`, else by what `status` means at this step."""
    body = body if isinstance(body, dict) else {}
    code = body.get("code") if isinstance(body.get("code"), str) else None
    message = body.get("error") or body.get("message")
    message = message if isinstance(message, str) and message else f"HTTP {status}"
    if code is None or code in STATUS_CODES:
        cls = BY_CODE.get(fallback.get(status, code or ""), Refused)
    else:
        cls = BY_CODE.get(code, Refused)
    return cls(what, status, code, message, job)


def refusal(response: httpx.Response, what: str, job: Job, fallback: dict[int, str]) -> Refused:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500] or response.reason_phrase}
    return explained(response.status_code, body, what, job, fallback)
