"""The registry's own policy on CI jobs, decided before any relationship is consulted: what npm and PyPI
document as unsafe is refused whatever a package's owners configured.

- GitHub `pull_request_target`: the workflow runs with the base repository's permissions (an ID
  token included) for a pull request anyone can open, and it is easily made to run the pull
  request's code. Always refused.
- GitHub `workflow_run`: the triggering run may be a fork's pull request, whose artifacts the
  workflow then handles with the base repository's permissions. No claim of the token says where
  the triggering run came from (GitHub writes the triggering run's repository in the event payload,
  not in the ID token), so the broker cannot tell a fork's from the repository's own: refused unless
  the operator allows it for the issuer (`"allow_workflow_run": true` in STAGEGATE_OIDC_ISSUERS),
  having made sure that such workflows never publish what a fork built.
- Self-hosted runners (`runner_environment: self-hosted`, GitHub and GitLab): the machine is whoever
  runs it, and a runner that is not ephemeral keeps what the previous job left (npm supports
  cloud-hosted runners only). Refused unless the operator allows them for the issuer
  (`"allow_self_hosted_runners": true`; GitHub Enterprise Server has only self-hosted runners).
  A token without the claim (an older instance) is not refused by this rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class IssuerPolicy(Protocol):
    allow_self_hosted_runners: bool
    allow_workflow_run: bool


@dataclass(frozen=True)
class PolicyRefusal:
    code: str
    message: str


PULL_REQUEST_TARGET = "oidc.pull-request-target"
WORKFLOW_RUN = "oidc.workflow-run"
SELF_HOSTED_RUNNER = "oidc.self-hosted-runner"
CODES = (PULL_REQUEST_TARGET, WORKFLOW_RUN, SELF_HOSTED_RUNNER)


def github_event(claims: Any, issuer: IssuerPolicy) -> PolicyRefusal | None:
    event = getattr(claims, "event_name", None)
    if event == "pull_request_target":
        return PolicyRefusal(PULL_REQUEST_TARGET, "this registry never trusts a workflow triggered by "
                             "pull_request_target: it runs with the repository's permissions for a pull request "
                             "anyone can open. Publish from a workflow triggered by push, release or "
                             "workflow_dispatch")
    if event == "workflow_run" and not issuer.allow_workflow_run:
        return PolicyRefusal(WORKFLOW_RUN, "this registry does not trust a workflow triggered by workflow_run: "
                             "the token cannot tell whether the triggering run came from a fork's pull request. "
                             "Publish from a workflow triggered by push, release or workflow_dispatch (or ask "
                             "the registry's operator to allow workflow_run for this issuer)")
    return None


def runner(claims: Any, issuer: IssuerPolicy) -> PolicyRefusal | None:
    if getattr(claims, "runner_environment", None) == "self-hosted" and not issuer.allow_self_hosted_runners:
        return PolicyRefusal(SELF_HOSTED_RUNNER, "this registry does not trust jobs on self-hosted runners "
                             "(whoever runs the machine, and whatever earlier jobs left on it, could act for the "
                             "job): run the job on a hosted runner, or ask the registry's operator to allow "
                             "self-hosted runners for this issuer")
    return None


RULES = {"github": (github_event, runner), "gitlab": (runner,), "circleci": ()}


def policy_refusal(provider: str, claims: Any, issuer: IssuerPolicy) -> PolicyRefusal | None:
    """The first rule of the registry's policy that this job breaks, or None."""
    for rule in RULES.get(provider, ()):
        refused = rule(claims, issuer)
        if refused is not None:
            return refused
    return None
