"""The review page under /-/review/: sign in, the inbox of staged versions, a stage's diff, approve, reject.

Server-rendered HTML (broker/web), no script. Who may do what is the CLI's: signing in checks the
password and an OTP with the same throttles as `npm login` with 2FA, a stage is visible to its
package's owners only (as `npm stage view`), and approving or rejecting needs a fresh OTP and goes
through services/review.py, which writes the same audit records as `npm stage approve|reject`.

The session is a random token in an HttpOnly, SameSite=Strict cookie, stored hashed in `tokens` as
kind "web" with a short lifetime; the npm API refuses it as a Bearer token. Every POST carries a
CSRF token derived from the session (a sign-in form: a one-time cookie it must echo) and must come
from this registry's own origin.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..domain import review_page
from ..domain.approvals import MAX_APPROVALS, MIN_APPROVALS
from ..domain.credentials import Action, Credential, TokenKind, second_factor
from ..domain.review_diff import Limits, ReviewDiff, Snapshot, compare, snapshot
from ..domain.staging import page_of, parse_stage_id
from ..domain.tarball import InvalidTarball
from ..errors import RegistryError
from ..security.throttle import Busy, Slots
from ..security.tokens import new_token, token_digest, token_display_prefix
from ..services import approval_policy, review
from ..store import accounts, audit, registry
from ..store import staging as stage_store
from ..store.accounts import User
from ..store.staging import StageRow, Visible
from ..web import render, stylesheet
from .auth import check_otp, checked_password, enforce
from .context import Broker
from .http import Req
from .lookup import package_name
from .stage import _visible_stage

COOKIE = "stagegate_review"
SIGNIN_COOKIE = "stagegate_review_signin"
SESSION_SECONDS = 12 * 3600
SIGNIN_SECONDS = 3600
FORM_BODY = 4 * 1024  # a form of a name, a password, an OTP and a CSRF token
INBOX_PAGE = 50
SIGNIN_FAILED = ("Sign-in failed: the username, password or one-time password is not right, or the account has "
                 "no two-factor authentication. Check them and try again with a new code.")
# Diffs read two tarballs (up to 100 MiB each): two at a time, and a third viewer is told to reload at
# once rather than wait, so that page views never hold the request threads the npm API needs.
DIFF_SLOTS = Slots(size=2, wait=0.0)
LIMITS = Limits()

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Session:
    user: User
    token: str  # the cookie's value (only ever compared and hashed)
    token_id: str
    csrf: str

    @property
    def credential(self) -> Credential:
        return Credential(user_id=self.user.id, username=self.user.name, kind=TokenKind.WEB, token_id=self.token_id)


# --- plumbing ------------------------------------------------------------------------------------

def _base(b: Broker) -> str:
    """The pages' path, under the public URL's own path (a broker published under a prefix)."""
    return urlsplit(b.public_url).path.rstrip("/") + "/-/review/"


def _secure(b: Broker) -> bool:
    return b.public_url.startswith("https://")


def _cookie(b: Broker, name: str, value: str, max_age: int) -> str:
    parts = [f"{name}={value}", f"Path={_base(b).rstrip('/')}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if _secure(b):
        parts.append("Secure")
    return "; ".join(parts)


def _cookies(req: Req) -> dict[str, str]:
    found = {}
    for part in req.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name in (COOKIE, SIGNIN_COOKIE) and name not in found:
            found[name] = value.strip()
    return found


def _page(b: Broker, template: str, session: Session | None, status: int = 200, cookies: list[str] | None = None,
          headers: dict[str, str] | None = None, csrf: str = "", **values) -> HTMLResponse:
    body = render(template, base=_base(b), user=session.user.name if session else None,
                  csrf=session.csrf if session else csrf, **values)
    response = HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


def _redirect(b: Broker, to: str, cookies: list[str] | None = None) -> Response:
    response = RedirectResponse(_base(b) + to, status_code=303, headers=SECURITY_HEADERS)
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


def _error(b: Broker, session: Session | None, exc: RegistryError, back: str = "") -> HTMLResponse:
    headers = {k: v for k, v in exc.headers.items() if k == "retry-after"}
    heading = {401: "Not signed in or not accepted", 403: "Not allowed", 404: "Not found",
               409: "Already decided", 429: "Too many attempts"}.get(exc.status, "Refused")
    return _page(b, "error.html", session, exc.status, headers=headers, code=exc.status, heading=heading,
                 message=exc.error, back=_base(b) + back)


def _html(handler: Callable[[Broker, Req], Response]) -> Callable[[Broker, Req], Response]:
    """Refusals as HTML pages with the security headers, not the npm API's JSON."""
    @wraps(handler)
    def wrapped(b: Broker, req: Req) -> Response:
        try:
            return handler(b, req)
        except RegistryError as exc:
            stage_id = parse_stage_id(req.params.get("id", ""))
            back = f"stage/{stage_id}" if stage_id and exc.status not in (404, 409) else ""
            return _error(b, req.extra.get("review-session"), exc, back)
    return wrapped


def _session(b: Broker, req: Req) -> Session | None:
    token = _cookies(req).get(COOKIE)
    if not token or len(token) > 100:
        return None
    with b.db.read() as conn:
        row, user = accounts.token_with_user(conn, token_digest(token))
    if row is None or row.kind is not TokenKind.WEB or user is None or (row.expires_at or 0) <= time.time():
        return None
    session = Session(user, token, row.id, review_page.csrf_token(token))
    req.extra["review-session"] = session
    return session


def _posted_form(b: Broker, req: Req) -> dict[str, str]:
    """The form of a POST that came from this registry's own pages; 403 otherwise, 400 when malformed."""
    if not review_page.same_origin(b.public_url, req.headers.get("origin"), req.headers.get("referer")):
        raise RegistryError(403, f"this form was not sent from a page of {review_page.origin_of(b.public_url)} "
                                 "(Origin header): open the review page at that address", code="review.cross-origin")
    try:
        return review_page.parse_form(req.body, req.headers.get("content-type"))
    except review_page.BadForm as exc:
        raise RegistryError(400, str(exc), code="review.bad-form") from None


def _signed_in_post(b: Broker, req: Req) -> tuple[Session, dict[str, str]]:
    form = _posted_form(b, req)
    session = _session(b, req)
    if session is None:
        raise RegistryError(401, "your review session ended or was signed out: sign in again", code="review.signed-out")
    if not review_page.csrf_matches(session.csrf, form.get("csrf")):
        raise RegistryError(403, "this form is stale or was not made by this page (CSRF token): reload the page "
                                 "and try again", code="review.csrf")
    return session, form


# --- sign in, sign out ---------------------------------------------------------------------------

@_html
def signin_form(b: Broker, req: Req) -> Response:
    if _session(b, req) is not None:
        return _redirect(b, "")
    return _signin_page(b, 200)


def _signin_page(b: Broker, status: int, message: str = "", username: str = "",
                 headers: dict[str, str] | None = None) -> Response:
    nonce = secrets.token_urlsafe(32)  # echoed by the form: a page of another site cannot read it
    return _page(b, "signin.html", None, status, cookies=[_cookie(b, SIGNIN_COOKIE, nonce, SIGNIN_SECONDS)],
                 headers=headers, csrf=nonce, message=message, username=username, hours=SESSION_SECONDS // 3600)


@_html
def signin(b: Broker, req: Req) -> Response:
    form = _posted_form(b, req)
    nonce = _cookies(req).get(SIGNIN_COOKIE)
    if not nonce or not review_page.csrf_matches(nonce, form.get("csrf")):
        return _signin_page(b, 403, "This sign-in form expired or was not made by this page: try again.")
    name, password, otp = form.get("username", "")[:214], form.get("password", ""), form.get("otp", "")
    try:
        user, how = _signed_in_user(b, req, name, password, otp)
    except RegistryError as exc:  # backing off (429) or busy (503): the same words whichever part it was
        seconds = exc.headers.get("retry-after", "")
        message = f"Too many sign-in attempts or the registry is busy: try again in {seconds or 'a few'} s."
        return _signin_page(b, exc.status, message, name, {"retry-after": seconds} if seconds else None)
    if user is None:
        return _signin_page(b, 401, SIGNIN_FAILED, name)
    token, now = new_token(), time.time()
    with b.db.write() as conn:
        accounts.delete_expired_tokens(conn, user.id, TokenKind.WEB, now)
        row = accounts.insert_token(conn, digest=token_digest(token), display=token_display_prefix(token),
                                    user_id=user.id, kind=TokenKind.WEB, name="review page",
                                    expires_at=now + SESSION_SECONDS)
        audit.record(conn, "web.signed-in", actor=user.name, token_id=row.id, second_factor=how)
    return _redirect(b, "", cookies=[_cookie(b, COOKIE, token, SESSION_SECONDS), _cookie(b, SIGNIN_COOKIE, "", 0)])


def _signed_in_user(b: Broker, req: Req, name: str, password: str, otp: str) -> tuple[User | None, str]:
    """The account when all three are right (password and OTP throttled as for `npm login`), else None;
    and how the second factor was given ("otp", "recovery-code")."""
    if not name or not password:
        return None, ""
    user = checked_password(b, req, name, password)
    if user is None or user.tfa_mode is None or user.tfa_pending or not otp.strip():
        return None, ""
    try:
        return user, check_otp(b, user, otp[:64])
    except RegistryError as exc:
        if exc.status == 401:
            return None, ""
        raise


@_html
def signout(b: Broker, req: Req) -> Response:
    session, _ = _signed_in_post(b, req)
    with b.db.write() as conn:
        if accounts.delete_token(conn, session.token_id):
            audit.record(conn, "web.signed-out", actor=session.user.name, token_id=session.token_id)
    return _redirect(b, "signin", cookies=[_cookie(b, COOKIE, "", 0)])


def style(b: Broker, req: Req) -> Response:
    return Response(stylesheet(), media_type="text/css",
                    headers={**SECURITY_HEADERS, "cache-control": "public, max-age=3600"})


# --- the inbox -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageView:
    id: str
    package: str
    version: str
    tag: str
    actor: str
    actor_type: str
    ci: review_page.CiOrigin | None
    age: str
    created: str
    approvals: str
    size: int
    integrity: str
    required: int  # approvals the package requires


def _views(b: Broker, conn, stages: list[StageRow], now: float) -> list[StageView]:
    approvals = stage_store.approvers_of(conn, stages)
    required = stage_store.required_of(conn, sorted({s.package for s in stages}))
    return [_view(b, s, now, approvals[s.id], required.get(s.package, 1)) for s in stages]


def _view(b: Broker, stage: StageRow, now: float, approvals: list[str], required: int) -> StageView:
    ci = review_page.ci_origin(stage.origin, b.settings.oidc_github_issuer, b.settings.oidc_gitlab_issuer) \
        if stage.actor_type == "trust" else None
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stage.created_at))
    return StageView(stage.id, stage.package, stage.version, stage.tag, stage.actor, stage.actor_type, ci,
                     review_page.age(now - stage.created_at), created, review_page.approvals_so_far(approvals, required),
                     stage.size, stage.integrity, required)


@_html
def inbox(b: Broker, req: Req) -> Response:
    session = _session(b, req)
    if session is None:
        return _redirect(b, "signin")
    page = page_of(req.query.get("page"), str(INBOX_PAGE))
    with b.db.read() as conn:
        rows, total = stage_store.list_stages(conn, Visible(owner_id=session.user.id), page.offset, page.size)
        items = _views(b, conn, rows, time.time())
    next_page = page.number + 1 if page.offset + len(rows) < total else None
    return _page(b, "inbox.html", session, items=items, total=total, next_page=next_page)


# --- a stage -------------------------------------------------------------------------------------

@_html
def stage_page(b: Broker, req: Req) -> Response:
    session = _session(b, req)
    if session is None:
        return _redirect(b, "signin")
    stage = _visible_stage(b, req, session.credential, session.user)
    base_version, reason = _compared_with(b, stage)
    # A HEAD answer has no body: no comparison to make.
    diff, error = (None, "") if req.method == "HEAD" else _comparison(b, stage, base_version)
    with b.db.read() as conn:
        view, = _views(b, conn, [stage], time.time())
        maintainers = stage_store.owner_count(conn, stage.package)
    return _page(b, "stage.html", session, stage=view, base_version=base_version, base_reason=reason, diff=diff,
                 diff_error=error, limits=LIMITS, maintainers=maintainers, max_required=min(MAX_APPROVALS, maintainers))


def _comparison(b: Broker, stage: StageRow, base_version: str | None) -> tuple[ReviewDiff | None, str]:
    """The diff, or why there is none to show."""
    try:
        diff = DIFF_SLOTS.run(_diff, b, stage, base_version)
    except Busy:
        return None, "The registry is comparing other versions right now: reload the page in a few seconds."
    except InvalidTarball as exc:
        return None, f"The tarballs could not be compared: {exc}"
    return (None, diff) if isinstance(diff, str) else (diff, "")


def _compared_with(b: Broker, stage: StageRow) -> tuple[str | None, str]:
    """The version the stage's tag points to now, else the latest published version."""
    with b.db.read() as conn:
        tags = registry.tags(conn, stage.package)
        if stage.tag in tags and tags[stage.tag] != stage.version:
            return tags[stage.tag], f"the version the tag {stage.tag} points to now"
        if "latest" in tags:
            return tags["latest"], "the latest published version"
    return None, ""


def _diff(b: Broker, stage: StageRow, base_version: str | None) -> ReviewDiff | str:
    """Each tarball is read and dropped in turn, so at most one is held whole at a time."""
    new = _snapshot_of(b, stage.package, stage.version)
    if new is None:
        return f"The tarball of stage {stage.id} is gone (approved or rejected meanwhile)."
    old = _snapshot_of(b, stage.package, base_version) if base_version else None
    return compare(old, new, LIMITS)


def _snapshot_of(b: Broker, package: str, version: str) -> Snapshot | None:
    with b.db.read() as conn:
        row = registry.version_row(conn, package, version)
    data = b.blobs.get(row.blob) if row and row.blob else None
    return snapshot(data, LIMITS) if data is not None else None


# --- approve, reject -----------------------------------------------------------------------------

def _decision(b: Broker, req: Req, approving: bool = False) -> tuple[Session, StageRow, review.Reviewer]:
    """As `_review` in api/stage.py: a visible stage and a fresh OTP (2FA always required); an approval
    the stage cannot take (the stager's own, an expired stage) is refused before the OTP is spent."""
    session, form = _signed_in_post(b, req)
    stage = _visible_stage(b, req, session.credential, session.user)
    if approving:
        review.check_may_approve(b, session.user.name, stage)
    decision = second_factor(session.credential, session.user.tfa_mode, Action.STAGE_REVIEW)
    how = enforce(b, session.user, decision, form.get("otp", "").strip()[:64] or None)
    return session, stage, review.Reviewer(user=session.user, auth=TokenKind.WEB.value, token_id=session.token_id,
                                           second_factor=how)


def _done(b: Broker, session: Session, heading: str, message: str) -> Response:
    return _page(b, "done.html", session, heading=heading, message=message)


@_html
def approve(b: Broker, req: Req) -> Response:
    session, stage, reviewer = _decision(b, req, approving=True)
    approval = review.approve(b, reviewer, stage)
    what = f"{stage.package}@{stage.version}"
    if approval.published:
        return _done(b, session, "Approved and published",
                     f"{what} is published with the tag {stage.tag}.")
    return _done(b, session, "Approved, not yet published",
                 f"{what}: approved, {len(approval.approvals)} of {approval.required} approvals "
                 f"({', '.join(approval.approvals)}), not yet published: it is published when "
                 f"{approval.missing} more maintainer{'s' if approval.missing > 1 else ''} approve.")


@_html
def set_policy(b: Broker, req: Req) -> Response:
    """The package's required approvals, from the form on a stage page: an owner with an OTP, as the API."""
    session, form = _signed_in_post(b, req)
    name = package_name(req)
    with b.db.read() as conn:
        if not registry.is_owner(conn, name.name, session.user.id):
            raise RegistryError(404, f"no package {name} that you maintain", code="package.not-found")
    raw = form.get("required", "")
    required = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 2 else 0
    if not MIN_APPROVALS <= required <= MAX_APPROVALS:
        raise RegistryError(400, f"required approvals must be a whole number from {MIN_APPROVALS} to {MAX_APPROVALS}",
                            code="review.bad-form")
    approval_policy.check(b, name.name, required)  # an unmeetable policy costs no OTP
    decision = second_factor(session.credential, session.user.tfa_mode, Action.PACKAGE_ADMIN)
    enforce(b, session.user, decision, form.get("otp", "").strip()[:64] or None)
    previous = approval_policy.apply(b, name.name, required, actor=session.user.name, auth=TokenKind.WEB.value)
    return _done(b, session, "Approval policy saved",
                 f"{name} now needs {required} maintainer approval{'s' if required > 1 else ''} to publish a stage "
                 f"(it needed {previous}).")


@_html
def reject(b: Broker, req: Req) -> Response:
    session, stage, reviewer = _decision(b, req)
    review.reject(b, reviewer, stage)
    return _done(b, session, "Rejected",
                 f"{stage.package}@{stage.version} is rejected; its version number is free again.")
