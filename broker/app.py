"""Builds the ASGI app: the route table, body limits, and the one place errors become JSON."""

from __future__ import annotations

import logging

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .api import access, disttags, health, keys, oidc, packages, profile, stage, tokens, trust, users
from .api.auth import refuse_trust_token
from .api.context import Broker
from .api.http import Req, Route, error_response, parse_query, resolve, route
from .errors import RegistryError

log = logging.getLogger("stagegate")


def routes(b: Broker) -> list[Route]:
    publish_body = b.settings.max_body_bytes
    return [
        route("GET", r"/-/ping", users.ping, trust_ok=True),
        route("GET", r"/-/healthz", health.healthz, trust_ok=True),
        route("GET", r"/-/npm/v1/keys", keys.keys, trust_ok=True),
        route("POST", r"/-/npm/v1/oidc/token/exchange/package/{pkg}", oidc.exchange, trust_ok=True),
        route("GET", r"/-/whoami", users.whoami),
        route("PUT", r"/-/user/org\.couchdb\.user:(?P<name>[^/]+)(?:/-rev/(?P<rev>[^/]+))?", users.couch_put),
        route("GET", r"/-/user/org\.couchdb\.user:(?P<name>[^/]+)", users.couch_get),
        route("DELETE", r"/-/user/token/(?P<token>[^/]+)", users.logout),
        route("GET", r"/-/npm/v1/user", profile.get_profile),
        route("POST", r"/-/npm/v1/user", profile.set_profile),
        route("GET", r"/-/npm/v1/tokens", tokens.list_tokens),
        route("POST", r"/-/npm/v1/tokens", tokens.create_token),
        route("DELETE", r"/-/npm/v1/tokens/token/(?P<ref>[^/]+)", tokens.revoke_token),
        route("GET", r"/-/package/{pkg}/dist-tags", disttags.list_tags),
        route("PUT", r"/-/package/{pkg}/dist-tags/(?P<tag>[^/]+)", disttags.set_tag),
        route("POST", r"/-/package/{pkg}/dist-tags/(?P<tag>[^/]+)", disttags.set_tag),
        route("DELETE", r"/-/package/{pkg}/dist-tags/(?P<tag>[^/]+)", disttags.remove_tag),
        route("GET", r"/-/package/{pkg}/visibility", access.visibility, trust_ok=True),
        route("POST", r"/-/package/{pkg}/trust", trust.create),
        route("GET", r"/-/package/{pkg}/trust", trust.list_relationships),
        route("DELETE", r"/-/package/{pkg}/trust/(?P<id>[^/]+)", trust.revoke),
        route("GET", r"/-/package/{pkg}/access", access.get_access),
        route("POST", r"/-/package/{pkg}/access", access.set_access),
        route("POST", r"/-/stage/package/{pkg}", stage.stage_publish, publish_body, trust_ok=True),
        route("GET", r"/-/stage", stage.list_stages),
        route("GET", r"/-/stage/(?P<id>[^/]+)", stage.view_stage),
        route("GET", r"/-/stage/(?P<id>[^/]+)/tarball", stage.download_stage),
        route("POST", r"/-/stage/(?P<id>[^/]+)/approve", stage.approve),
        route("DELETE", r"/-/stage/(?P<id>[^/]+)", stage.reject),
        route("GET", r"/{pkg}/-/(?P<file>[^/]+\.tgz)", packages.get_tarball),
        route("DELETE", r"/{pkg}/-/(?P<file>[^/]+\.tgz)/-rev/(?P<rev>[^/]+)", packages.delete_tarball),
        route("PUT", r"/{pkg}/-rev/(?P<rev>[^/]+)", packages.update_metadata_route, publish_body),
        route("DELETE", r"/{pkg}/-rev/(?P<rev>[^/]+)", packages.unpublish_all),
        route("GET", r"/{pkg}", packages.get_packument, trust_ok=True),
        route("PUT", r"/{pkg}", packages.put_package, publish_body, trust_ok=True),
        route("GET", r"/{pkg}/(?P<version>[^/\-][^/]*)", packages.get_version),
    ]


class BodyTooLarge(RegistryError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this registry accepts ({limit} bytes); "
                              "see STAGEGATE_MAX_TARBALL_BYTES")


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body, refused with 413 as soon as it is known to exceed `limit`.

    With a Content-Length the buffer is allocated once and filled in place: no growth copies, so
    a large upload costs its own size in memory, not a multiple of it.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RegistryError(400, "invalid Content-Length")
        if int(declared) > limit:
            raise BodyTooLarge(limit)
        body = bytearray(int(declared))
        view, filled = memoryview(body), 0
        async for chunk in request.stream():
            if filled + len(chunk) > len(body):
                raise RegistryError(400, "the body is longer than its Content-Length")
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        view.release()
        if filled != len(body):
            raise RegistryError(400, "the body ended before its Content-Length")
        return body
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return body


def _handle(matched: Route, broker: Broker, req: Req) -> Response:
    if not matched.trust_ok:
        refuse_trust_token(broker, req)
    return matched.handler(broker, req)


class RegistryApp:
    """The ASGI application. Routing works on the raw path so that @scope%2fname stays one segment."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.routes = routes(broker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.broker.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        method = request.method
        try:
            matched, params, exists = resolve(self.routes, method, raw_path)
            if matched is None:
                if exists:
                    raise RegistryError(405, f"{method} is not supported on {raw_path}")
                raise RegistryError(404, f"not found: {raw_path}")
            client = request.client.host if request.client else None
            req = Req(method, raw_path, params, parse_query(request.scope.get("query_string", b"")),
                      request.headers, await read_body(request, matched.max_body), client)
            if matched.on_loop:
                if not matched.trust_ok:
                    await to_thread.run_sync(refuse_trust_token, self.broker, req)
                response = await matched.handler(self.broker, req)
            else:
                response = await to_thread.run_sync(_handle, matched, self.broker, req)
        except RegistryError as exc:
            return error_response(exc)
        except Exception:  # the last resort: log it, tell the client something went wrong on our side
            log.exception("unhandled error on %s %s", method, raw_path)
            return error_response(RegistryError(500, "internal error in the registry; see its log"))
        if method == "HEAD":
            return Response(status_code=response.status_code, headers=dict(response.headers))
        return response
