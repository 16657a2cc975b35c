"""What the action shows: the tarball listing (as `npm pack --dry-run`), outputs, the job summary."""

from __future__ import annotations

import os

from .errors import ActionError
from .pack import Packed
from .refusals import registry_flag


def format_bytes(size: int, space: bool = True) -> str:
    spacer = " " if space else ""
    if size < 1000:
        return f"{size}{spacer}B"
    if size < 999950:
        return f"{size / 1000:.1f}{spacer}kB"
    if size < 999950000:
        return f"{size / 1000000:.1f}{spacer}MB"
    return f"{size / 1000000000:.1f}{spacer}GB"


def listing(packed: Packed) -> list[str]:
    manifest = packed.manifest
    lines = ["", f"📦  {manifest['name']}@{manifest['version']}", "Tarball Contents"]
    lines += [f"{format_bytes(f.size, False)} {f.path}" for f in packed.files if not f.path.startswith("node_modules/")]
    bundled = sorted({f.path.split("/")[1] if not f.path.split("/")[1].startswith("@")
                      else "/".join(f.path.split("/")[1:3]) for f in packed.files if f.path.startswith("node_modules/")})
    if bundled:
        lines += ["Bundled Dependencies", *bundled]
    integrity = packed.integrity
    lines += ["Tarball Details", f"name: {manifest['name']}", f"version: {manifest['version']}",
              f"filename: {packed.filename}", f"package size: {format_bytes(len(packed.tarball))}",
              f"unpacked size: {format_bytes(packed.unpacked_size)}", f"shasum: {packed.shasum}",
              f"integrity: {integrity[:20]}[...]{integrity[80:]}", f"total files: {len(packed.files)}", ""]
    return ["npm notice " + line if line else "npm notice" for line in lines]


def next_commands(registry: str, stage_id: str) -> list[str]:
    flag = registry_flag(registry)
    return [f"npm stage view {stage_id}{flag}", f"npm stage download {stage_id}{flag}",
            f"npm stage approve {stage_id}{flag} --otp=<code from your authenticator>"]


PERMISSION_WORDS = {"createStagedPackage": "stage (`npm stage publish`, `mode: stage`)",
                    "createPackage": "publish (`npm publish`, `mode: publish`)"}


def summary(outputs: dict[str, str], registry: str, mode: str, dry_run: bool) -> str:
    title = "Dry run: nothing uploaded" if dry_run else ("Staged for approval" if mode == "stage" else "Published")
    rows = "\n".join(f"| {key} | `{value}` |" for key, value in outputs.items() if value)
    text = f"### stagegate: {title}\n\n| | |\n|---|---|\n{rows}\n"
    if dry_run and outputs.get("permissions"):
        granted = "\n".join(f"- {PERMISSION_WORDS.get(p, p)}" for p in outputs["permissions"].split(","))
        text += (f"\nThe registry checked this job's OIDC token (without using it up): a real run would get "
                 f"a token for {outputs['package']} that may\n\n{granted}\n")
    if mode == "stage" and not dry_run and outputs.get("stage-id"):
        commands = "\n".join(next_commands(registry, outputs["stage-id"]))
        text += (f"\nA maintainer with 2FA reviews and approves it:\n\n```sh\n{commands}\n```\n"
                 f"\nOr rejects it: `npm stage reject {outputs['stage-id']} --otp=<code>`.\n")
    return text


def failure(exc: ActionError, dry_run: bool = False) -> str:
    """The job summary of a failed run: what went wrong and, where the action knows, what to do."""
    text = f"### stagegate: {'Dry run: ' if dry_run else ''}{exc.title}\n\n{exc}\n"
    hint = exc.hint()
    return text + f"\n```text\n{hint}\n```\n" if hint else text


def write_summary(text: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
