"""`npm dist-tag ls|add|rm`."""

from __future__ import annotations

from pydantic import RootModel, ValidationError
from starlette.responses import Response

from ..domain.credentials import Action
from ..domain.versions import InvalidVersion, is_valid_tag, parse_version
from ..errors import bad_request, not_found
from ..store import audit, registry
from .context import Broker
from .http import Req, json_response
from .lookup import package_name, readable_package, writable_package


class TagTarget(RootModel[str]):
    """The body of `npm dist-tag add`: the version, as a JSON string."""


def list_tags(b: Broker, req: Req) -> Response:
    name = package_name(req)
    readable_package(b, req, name)
    with b.db.read() as conn:
        return json_response(registry.tags(conn, name.name))


def _tag(req: Req) -> str:
    tag = req.params["tag"]
    if not is_valid_tag(tag):
        raise bad_request(f"invalid dist-tag {tag!r}: a tag is a short name that is not a version or range")
    return tag


def set_tag(b: Broker, req: Req) -> Response:
    name = package_name(req)
    tag = _tag(req)
    try:
        version = TagTarget.model_validate_json(req.body).root
        parse_version(version)
    except (ValidationError, InvalidVersion):
        raise bad_request('the body must be the version as a JSON string, like "1.2.3"') from None
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_WRITE)
    with b.db.write() as conn:
        row = registry.version_row(conn, name.name, version)
        if row is None or row.state != "published":
            raise not_found(f"version {version} of {name} is not published")
        registry.set_tag(conn, name.name, tag, version)
        registry.touch(conn, name.name)
        audit.record(conn, "dist-tag.set", actor=user.name, package=name.name, tag=tag, version=version,
                     auth=cred.kind.value)
    return json_response({"ok": True})


def remove_tag(b: Broker, req: Req) -> Response:
    name = package_name(req)
    tag = _tag(req)
    if tag == "latest":
        raise bad_request("the latest tag cannot be removed: point it at another version instead")
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_WRITE)
    with b.db.write() as conn:
        if not registry.remove_tag(conn, name.name, tag):
            raise not_found(f"{name} has no dist-tag {tag}")
        registry.touch(conn, name.name)
        audit.record(conn, "dist-tag.removed", actor=user.name, package=name.name, tag=tag, auth=cred.kind.value)
    return json_response({"ok": True})
