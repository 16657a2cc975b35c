"""stagegate-action: read inputs → pack → OIDC token → exchange → stage (or publish) → outputs.

A dry run packs and checks, then asks the broker what the exchange would grant this job (its verify
route: the token is not spent) and uploads nothing."""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from actions_toolkit import core
from actions_toolkit.command import issue_command

from . import checks, report
from .claims import JobClaims
from .errors import ActionError
from .http import TIMEOUT
from .inputs import Inputs, read_inputs
from .oidc import exchange, request_id_token, verify
from .pack import Packed, from_tarball, lifecycle_scripts, pack
from .refusals import PERMISSION_FOR_MODE, Job, PermissionDenied
from .registry import Registry, document, escaped


@contextmanager
def group(title: str):
    core.start_group(title)
    try:
        yield
    finally:
        core.end_group()


def annotate(kind: str, message: str, title: str) -> None:
    """::error / ::warning / ::notice with a title (the toolkit's helpers add empty file= etc.)."""
    issue_command(kind, {"title": title}, message)


def idempotency_key(integrity: str) -> str:
    """The same run attempt uploading the same bytes gets the same key: a retry finds its stage."""
    seed = ":".join([os.environ.get("GITHUB_REPOSITORY", ""), os.environ.get("GITHUB_RUN_ID", "local"),
                     os.environ.get("GITHUB_RUN_ATTEMPT", "1"), integrity])
    return "stagegate-action-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def _packed(inputs: Inputs, workspace: Path) -> Packed:
    if inputs.tarball:
        return from_tarball(workspace / inputs.tarball)
    directory = workspace / inputs.path
    packed = pack(directory)
    scripts = lifecycle_scripts(packed.manifest)
    if scripts:
        annotate("warning", f"package.json declares {', '.join(scripts)}; this action has no Node and does not run "
                     "lifecycle scripts. Build and `npm pack` in an earlier step and pass the .tgz as the "
                     "`tarball` input if the package needs them.", "Lifecycle scripts not run")
    return packed


def _on_retry(state) -> None:
    exc = state.outcome.exception() if state.outcome else None
    annotate("warning", f"attempt {state.attempt_number} failed ({exc}); retrying", "Registry retry")


def _trust_token(client: httpx.Client, inputs: Inputs, job: Job) -> tuple[str, Job]:
    """The broker's token for the package, and the job with the claims its OIDC token presented."""
    with group("Exchange the job's OIDC token"):
        id_token = request_id_token(client, inputs.oidc_audience)
        core.set_secret(id_token)
        job = replace(job, claims=JobClaims.of(id_token))
        token = exchange(client, inputs.registry_origin, escaped(job.package), id_token, job)
        core.set_secret(token)
        print(f"got a short-lived token for {job.package} from {inputs.registry_origin}")
    return token, job


def _would_get(client: httpx.Client, inputs: Inputs, job: Job) -> tuple[list[str], Job]:
    """What the exchange would grant this job; a refusal (the exchange's, or a mode the relationship
    does not allow) is raised and explained as in a real run."""
    with group("Check the job's OIDC token (dry run)"):
        id_token = request_id_token(client, inputs.oidc_audience)
        core.set_secret(id_token)
        job = replace(job, claims=JobClaims.of(id_token))
        permissions = verify(client, inputs.registry_origin, escaped(job.package), id_token, job)
        print(f"the exchange would grant {', '.join(permissions)} on {job.package}")
    needed = PERMISSION_FOR_MODE[inputs.mode]
    if needed not in permissions:
        raise PermissionDenied("the OIDC token check (dry run)", 403, "trust.permission-denied",
                               f"the matching relationship grants {', '.join(permissions)}, not {needed}", job)
    return permissions, job


def run(inputs: Inputs) -> dict[str, str]:
    workspace = Path(os.environ.get("GITHUB_WORKSPACE", "."))
    with group("Pack"):
        packed = _packed(inputs, workspace)
        for line in report.listing(packed):
            print(line)
    manifest = packed.manifest
    tag, default_tag = checks.resolved_tag(manifest, inputs.tag)
    checks.check_local(manifest, default_tag)
    outputs = {"stage-id": "", "package": manifest["name"], "version": manifest["version"], "tag": tag,
               "integrity": packed.integrity, "shasum": packed.shasum}
    job = Job(package=manifest["name"], version=manifest["version"], mode=inputs.mode, registry=inputs.registry,
              audience=inputs.oidc_audience)
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        if inputs.dry_run:
            token, (permissions, job) = None, _would_get(client, inputs, job)
            outputs["permissions"] = ",".join(permissions)
        else:
            token, job = _trust_token(client, inputs, job)
        registry = Registry(client, inputs.registry, token, job, on_retry=_on_retry)
        with group("Check the registry"):
            checks.check_against_registry(manifest, default_tag, registry.packument(manifest["name"]))
            print(f"{manifest['name']}@{manifest['version']} can be {inputs.mode}d with tag {tag}")
        if inputs.dry_run:
            return outputs
        body = document(packed, inputs.registry, tag, inputs.access)
        with group("Stage" if inputs.mode == "stage" else "Publish"):
            if inputs.mode == "stage":
                outputs["stage-id"] = registry.stage(manifest["name"], body, idempotency_key(packed.integrity))
                print(f"+ {manifest['name']}@{manifest['version']} (staged with id {outputs['stage-id']})")
            else:
                registry.publish(manifest["name"], body, packed.integrity)
                print(f"+ {manifest['name']}@{manifest['version']}")
    return outputs


def _dry_run_asked() -> bool:
    return (core.get_input("dry-run") or "").lower() == "true"


def main() -> int:
    try:
        inputs = read_inputs()
        outputs = run(inputs)
    except ActionError as exc:
        annotate("error", exc.diagnostics(), exc.title)
        report.write_summary(report.failure(exc, dry_run=_dry_run_asked()))
        return 1
    for key, value in outputs.items():
        core.set_output(key, value)
    report.write_summary(report.summary(outputs, inputs.registry, inputs.mode, inputs.dry_run))
    if outputs["stage-id"]:
        annotate("notice", "\n".join(["Staged; a maintainer approves it with 2FA:", *report.next_commands(
            inputs.registry, outputs["stage-id"])]), f"Staged {outputs['package']}@{outputs['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
