"""Builds the ASGI app: the route table, the body gate, and the one place errors become JSON."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import metrics
from .api import (access, audit, disttags, health, hooks, keys, oidc, packages, policy, profile, review, stage, tokens,
                  trust, users, verify)
from .api import metrics as metrics_api
from .api.auth import refuse_trust_token
from .api.context import Broker
from .domain.trust import CREATE_PACKAGE, CREATE_STAGED_PACKAGE
from .api.bodies import EMPTY, Body, BodyLimits, ClientGone, UploadBudget, declared_length, receive_body
from .api.gate import check_before_body
from .api.http import Req, Route, error_response, parse_query, request_variant, resolve, route
from .errors import RegistryError
from .services import delivery
from .logs import AccessLog, redact, request_id, request_id_from

log = logging.getLogger("stagegate")


LOGIN_BODY = 8 * 1024  # name, password, email: a login never needs more, and anyone may send one


def routes(b: Broker) -> list[Route]:
    publish_body = b.settings.max_body_bytes
    return [
        route("GET", r"/-/ping", health.ping, trust_ok=True),
        route("GET", r"/-/healthz", health.healthz, trust_ok=True),
        route("GET", r"/-/npm/v1/keys", keys.keys, trust_ok=True),
        route("GET", r"/-/metrics", metrics_api.scrape, trust_ok=True),
        # The exchange has no body (the JWT is the Authorization header): any body is a 413 unread.
        route("POST", r"/-/npm/v1/oidc/token/exchange/package/{pkg}", oidc.exchange, max_body=0, trust_ok=True,
              anonymous_body=True),
        # The dry run: a CI job sends no body (its JWT is the Authorization header); an owner sends one
        # JWT as the body, read only once their session credential checked out (api/verify.py).
        route("POST", r"/-/npm/v1/oidc/token/verify/package/{pkg}", verify.verify, max_body=verify.OWNER_BODY,
              trust_ok=True),
        route("GET", r"/-/whoami", users.whoami),
        route("PUT", r"/-/user/org\.couchdb\.user:(?P<name>[^/]+)(?:/-rev/(?P<rev>[^/]+))?", users.couch_put,
              max_body=LOGIN_BODY, anonymous_body=True),
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
        route("GET", r"/-/package/{pkg}/audit", audit.package_history),
        route("GET", r"/-/package/{pkg}/policy", policy.get_policy),
        route("POST", r"/-/package/{pkg}/policy", policy.set_policy, max_body=policy.POLICY_BODY),
        route("GET", r"/-/package/{pkg}/hooks", hooks.list_hooks),
        route("POST", r"/-/package/{pkg}/hooks", hooks.create_hook, max_body=hooks.HOOK_BODY),
        route("DELETE", r"/-/package/{pkg}/hooks/(?P<id>[^/]+)", hooks.delete_hook),
        route("POST", r"/-/stage/package/{pkg}", stage.stage_publish, publish_body, trust_ok=True,
              trust_permission=CREATE_STAGED_PACKAGE),
        route("GET", r"/-/stage", stage.list_stages),
        route("GET", r"/-/stage/(?P<id>[^/]+)", stage.view_stage),
        route("GET", r"/-/stage/(?P<id>[^/]+)/tarball", stage.download_stage),
        route("POST", r"/-/stage/(?P<id>[^/]+)/approve", stage.approve),
        route("DELETE", r"/-/stage/(?P<id>[^/]+)", stage.reject),
        # The review page: a browser's cookie is the credential, so a form's body (at most FORM_BODY) is read
        # before it is checked, like a login's.
        route("GET", r"/-/review", review.inbox),
        route("GET", r"/-/review/style\.css", review.style),
        route("GET", r"/-/review/signin", review.signin_form),
        route("POST", r"/-/review/signin", review.signin, max_body=review.FORM_BODY, anonymous_body=True),
        route("POST", r"/-/review/signout", review.signout, max_body=review.FORM_BODY, anonymous_body=True),
        route("GET", r"/-/review/stage/(?P<id>[^/]+)", review.stage_page),
        route("POST", r"/-/review/stage/(?P<id>[^/]+)/approve", review.approve, max_body=review.FORM_BODY,
              anonymous_body=True),
        route("POST", r"/-/review/stage/(?P<id>[^/]+)/reject", review.reject, max_body=review.FORM_BODY,
              anonymous_body=True),
        route("POST", r"/-/review/package/{pkg}/policy", review.set_policy, max_body=review.FORM_BODY,
              anonymous_body=True),
        route("GET", r"/{pkg}/-/(?P<file>[^/]+\.tgz)", packages.get_tarball),
        route("DELETE", r"/{pkg}/-/(?P<file>[^/]+\.tgz)/-rev/(?P<rev>[^/]+)", packages.delete_tarball),
        route("PUT", r"/{pkg}/-rev/(?P<rev>[^/]+)", packages.update_metadata_route, publish_body),
        route("DELETE", r"/{pkg}/-rev/(?P<rev>[^/]+)", packages.unpublish_all),
        route("GET", r"/{pkg}", packages.get_packument, trust_ok=True),
        route("PUT", r"/{pkg}", packages.put_package, publish_body, trust_ok=True,
              trust_permission=CREATE_PACKAGE),
        route("GET", r"/{pkg}/(?P<version>[^/\-][^/]*)", packages.get_version),
    ]


def _handle(matched: Route, broker: Broker, req: Req) -> Response:
    if not matched.trust_ok:
        refuse_trust_token(broker, req)
    return matched.handler(broker, req)


@dataclass
class _InFlight:
    """What one request holds while it is answered: its body and the upload budget that body took."""

    payload: Body = EMPTY
    budget_taken: int = 0
    body_pending: bool = False  # a body the client sent (or is sending) that was not read in full
    status: int | None = None
    route: str = metrics.UNMATCHED  # the matched route's template: the metrics' label, never the raw path
    ready: tuple[int, tuple[bool, bool]] | None = None  # (generation, variant): an answer every anonymous caller gets


class RegistryApp:
    """The ASGI application. Routing works on the raw path so that @scope%2fname stays one segment."""

    def __init__(self, broker: Broker, log_format: str | None = None) -> None:
        self.broker = broker
        self.routes = routes(broker)
        settings = broker.settings
        self.budget = UploadBudget(settings.upload_budget_per_worker())
        self.upload_dir = settings.data_dir / "tmp"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.idle_seconds, self.total_seconds = settings.body_idle_timeout, settings.body_total_timeout
        self.access = AccessLog(log_format or settings.log_format) if settings.access_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "GET" and not scope.get("query_string") and await self._send_ready(scope, send):
                return
            await self._serve(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _send_ready(self, scope: Scope, send: Send) -> bool:
        """Answer an anonymous GET from a response kept whole since the last write (api/readcache.py):
        no thread, no request object, no route matching, no database. False: not kept, serve it."""
        generation, raw_path = self.broker.db.generation, scope.get("raw_path")
        if generation is None or raw_path is None:
            return False
        accept = encoding = client_id = None
        for name, value in scope["headers"]:  # the first of a repeated header, as Starlette's Headers.get
            if name == b"accept":
                accept = value.decode("latin-1") if accept is None else accept
            elif name == b"accept-encoding":
                encoding = value.decode("latin-1") if encoding is None else encoding
            elif name == b"x-request-id":
                client_id = value.decode("latin-1") if client_id is None else client_id
            elif name == b"authorization" or name == b"transfer-encoding" or (name == b"content-length"
                                                                                and value != b"0"):
                return False  # a credential decides per caller; a body is the slow path's to refuse
        started = time.monotonic()
        ready = self.broker.ready.get((raw_path, *request_variant(accept, encoding)), generation.value())
        if ready is None:
            return False
        rid = request_id_from(client_id)
        request_id.set(rid)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*ready.headers, (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": ready.body})
        client = scope.get("client")
        self._finished(ready.route, "GET", raw_path.decode("latin-1"), 200, started, client[0] if client else None)
        return True

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id.set(request_id_from(request.headers.get("x-request-id")))
        raw_path = scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        started, held = time.monotonic(), _InFlight()
        try:
            response = await self._respond(request, raw_path, held)
            if held.ready is not None and response.status_code == 200:
                self.broker.ready.put((raw_path.encode("latin-1"), *held.ready[1]), held.ready[0], held.route,
                                      list(response.raw_headers), response.body)
            response.headers["x-request-id"] = request_id.get() or ""
            if raw_path == "/-/review" or raw_path.startswith("/-/review/"):  # refusals before the handler too
                for name, value in review.SECURITY_HEADERS.items():
                    response.headers.setdefault(name, value)
            if held.body_pending:  # the rest of the body is still on the wire: do not read it, hang up
                response.headers["connection"] = "close"
            held.status = response.status_code
            await response(scope, receive, send)
        except ClientGone:
            log.info("the client closed the connection before its request body arrived",
                     extra={"method": request.method, "path": redact(raw_path)})
        finally:
            held.payload.close()
            self.budget.give_back(held.budget_taken)
            if held.status is not None:
                self._finished(held.route, request.method, raw_path, held.status, started,
                               request.client.host if request.client else None)

    def _finished(self, route: str, method: str, raw_path: str, status: int, started: float,
                  client: str | None) -> None:
        seconds = time.monotonic() - started
        metrics.observe_request(route, method, status, seconds)
        if self.access is not None and self.access.enabled():
            self.access.line(method, raw_path, status, seconds, client)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pruning = asyncio.create_task(audit.keep_pruned(self.broker))
                sweeping = asyncio.create_task(stage.keep_swept(self.broker))
                delivering = asyncio.create_task(delivery.keep_delivering(self.broker))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                pruning.cancel()
                sweeping.cancel()
                delivering.cancel()
                if self.access is not None:
                    self.access.flush()
                self.broker.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, request: Request, raw_path: str, held: _InFlight) -> Response:
        method = request.method
        held.body_pending = _has_body(request.headers)
        try:
            matched, params, exists = resolve(self.routes, method, raw_path)
            if matched is None:
                if exists:
                    raise RegistryError(405, f"{method} is not supported on {raw_path}")
                raise RegistryError(404, f"not found: {raw_path}")
            held.route = metrics.route_template(matched.pattern.pattern)
            declared_length(request.headers.get("content-length"), matched.max_body)
            client = request.client.host if request.client else None
            req = Req(method, raw_path, params, parse_query(request.scope.get("query_string", b"")),
                      request.headers, EMPTY, client)
            generation = self.broker.db.generation
            if method == "GET" and generation is not None:
                req.extra["generation"] = generation.value()  # read before the handler's queries
            if held.body_pending and method not in ("GET", "HEAD"):
                await to_thread.run_sync(check_before_body, self.broker, matched, req)
                limits = BodyLimits(matched.max_body, self.idle_seconds, self.total_seconds)
                held.payload, held.budget_taken = await receive_body(request.receive, limits, self.budget,
                                                                     self.upload_dir)
                held.body_pending = False
                req.payload = held.payload
            if matched.on_loop:
                if not matched.trust_ok:
                    await to_thread.run_sync(refuse_trust_token, self.broker, req)
                response = await matched.handler(self.broker, req)
            else:
                response = await to_thread.run_sync(_handle, matched, self.broker, req)
            if "ready" in req.extra and "generation" in req.extra and not req.query and \
                    "authorization" not in req.headers:
                held.ready = (req.extra["generation"], req.extra["ready"])
        except RegistryError as exc:
            return error_response(exc)
        except ClientGone:
            raise
        except Exception as exc:  # the last resort: log it, tell the client something went wrong on our side
            metrics.internal_error(exc)
            log.exception("unhandled error on %s %s", method, redact(raw_path))
            return error_response(RegistryError(500, "internal error in the registry; see its log"))
        if method == "HEAD":
            return Response(status_code=response.status_code, headers=dict(response.headers))
        return response


def _has_body(headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("0", "")
