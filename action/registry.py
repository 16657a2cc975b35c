"""The broker's registry routes the action uses: packument, stage, publish."""

from __future__ import annotations

import base64

import httpx

from .errors import ActionError
from .http import RetryableStatus, send
from .pack import Packed
from .refusals import READ_FALLBACK, UPLOAD_FALLBACK, Job, Unreachable, refusal


class BadAnswer(ActionError):
    title = "Unexpected registry answer"


def escaped(name: str) -> str:
    return name.replace("/", "%2f") if name.startswith("@") else name


def document(packed: Packed, registry: str, tag: str, access: str | None) -> dict:
    """The same document `npm publish` PUTs (and `npm stage publish` POSTs)."""
    manifest = packed.manifest
    name, version = manifest["name"], manifest["version"]
    filename = f"{name}-{version}.tgz"
    return {
        "_id": name, "name": name, "description": manifest.get("description", ""),
        "dist-tags": {tag: version}, "access": access,
        "versions": {version: {**manifest, "_id": f"{name}@{version}", "readme": packed.readme,
                               "dist": {"integrity": packed.integrity, "shasum": packed.shasum,
                                        "tarball": f"{registry}{name}/-/{filename}"}}},
        "_attachments": {filename: {"content_type": "application/octet-stream",
                                    "data": base64.b64encode(packed.tarball).decode(),
                                    "length": len(packed.tarball)}},
    }


class Registry:
    def __init__(self, client: httpx.Client, url: str, token: str | None, job: Job, on_retry=None) -> None:
        """Without a token (dry runs) requests go unauthenticated; `job` is what refusals quote."""
        self.client, self.url, self.job, self.on_retry = client, url, job, on_retry
        self.auth = {"authorization": f"Bearer {token}"} if token else {}

    def _send(self, method: str, path: str, what: str, fallback: dict[int, str], **kwargs) -> httpx.Response:
        try:
            return send(self.client, method, self.url + path, on_retry=self.on_retry,
                        headers={**self.auth, **kwargs.pop("headers", {})}, **kwargs)
        except RetryableStatus as exc:
            raise refusal(exc.response, what, self.job, fallback) from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the registry at {self.url}: {exc.__class__.__name__}") from None

    def packument(self, name: str) -> dict | None:
        what = f"reading {name}"
        response = self._send("GET", escaped(name), what, READ_FALLBACK, headers={"accept": "application/json"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise refusal(response, what, self.job, READ_FALLBACK)
        return response.json()

    def stage(self, name: str, body: dict, idempotency_key: str) -> str:
        response = self._send("POST", f"-/stage/package/{escaped(name)}", "staging", UPLOAD_FALLBACK, json=body,
                              headers={"idempotency-key": idempotency_key})
        if response.status_code not in (200, 201):
            raise refusal(response, "staging", self.job, UPLOAD_FALLBACK)
        stage_id = response.json().get("stageId")
        if not isinstance(stage_id, str):
            raise BadAnswer("the registry's stage answer has no stageId")
        return stage_id

    def publish(self, name: str, body: dict, integrity: str) -> None:
        response = self._send("PUT", escaped(name), "publishing", UPLOAD_FALLBACK, json=body)
        if response.status_code in (200, 201):
            return
        if response.status_code == 403 and self._already_ours(name, body, integrity):
            return  # an earlier attempt landed before its answer was lost
        raise refusal(response, "publishing", self.job, UPLOAD_FALLBACK)

    def _already_ours(self, name: str, body: dict, integrity: str) -> bool:
        (version,) = body["versions"]
        packument = self.packument(name) or {}
        published = packument.get("versions", {}).get(version, {})
        return published.get("dist", {}).get("integrity") == integrity
