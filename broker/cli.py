"""stagegate-broker: serve | user add | db upgrade | audit | signing-key rotate | hooks add|list|rm."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import logging.config
import os
import sys

from pydantic import ValidationError

from .settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"stagegate-broker: bad configuration: {exc}")


def serve(args: argparse.Namespace) -> int:
    from .app import RegistryApp
    from .logs import logging_config
    from .runtime import SchemaOutOfDate, build_broker
    from .server import run
    from .security.signing import KeyringError

    settings = _settings()
    workers = args.workers or settings.resolved_workers()
    if workers < 1:
        sys.exit("stagegate-broker: --workers must be at least 1")
    settings = settings.model_copy(update={"workers": workers})  # each worker's share of the upload budget
    log_format = args.log_format or settings.log_format
    logging.config.dictConfig(logging_config(args.log_level, log_format))
    try:
        broker = build_broker(settings, args.host, args.port)
    except (SchemaOutOfDate, KeyringError) as exc:
        sys.exit(f"stagegate-broker: {exc}")
    logging.getLogger("stagegate").info("serving %s (data in %s, %d worker%s)", broker.public_url,
                                        settings.data_dir.resolve(), workers, "" if workers == 1 else "s")
    if workers == 1:
        run(RegistryApp(broker, log_format), settings, args.host, args.port, args.log_level, log_format)
    else:  # this process only prepared the store and keys; each worker opens its own
        broker.db.dispose()
        run(None, settings, args.host, args.port, args.log_level, log_format, workers)
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            sys.exit("stagegate-broker: the passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def user_add(args: argparse.Namespace) -> int:
    from .domain.accounts import new_account_problem
    from .runtime import build_broker
    from .security.passwords import hash_password
    from .store import accounts, audit

    broker = build_broker(_settings())
    password = _read_password()
    problem = new_account_problem(args.name, args.email, password)
    if problem is not None:
        sys.exit(f"stagegate-broker: {problem}")
    with broker.db.write() as conn:
        user = accounts.create_user(conn, args.name, args.email, hash_password(password))
        if user is None:
            sys.exit(f"stagegate-broker: a user named {args.name} exists already")
        audit.record(conn, "user.created", actor="admin-cli", name=args.name)
    print(f"created user {args.name} <{args.email}>")
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from .store import schema
    from .store.db import Database

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url(), settings.generation_file())
    before = schema.current(db)
    schema.upgrade(db)
    after = schema.current(db)
    db.dispose()
    print(f"database schema: {before or 'empty'} → {after}" if before != after else f"database schema is current ({after})")
    return 0


def audit_log(args: argparse.Namespace) -> int:
    """The whole audit log for operators, oldest first: one line per event, or JSON lines."""
    from .domain.audit import AuditFilter, InvalidFilter, event_filter, instant
    from .runtime import SchemaOutOfDate, open_database
    from .store import audit

    settings = _settings()
    if settings.embedded and not (settings.data_dir / "stagegate.db").exists():
        sys.exit(f"stagegate-broker: no database in {settings.data_dir.resolve()}: "
                 "set STAGEGATE_DATA_DIR (or STAGEGATE_DATABASE_URL) as the broker has it")
    try:
        where = AuditFilter(package=args.package, event=event_filter(args.event),
                            since=instant(args.since, "--since"), until=instant(args.until, "--until"))
        db = open_database(settings)
    except (InvalidFilter, SchemaOutOfDate) as exc:
        sys.exit(f"stagegate-broker: {exc}")
    try:
        with db.read() as conn:
            for entry in audit.walk(conn, where):
                print(json.dumps(entry.wire(), ensure_ascii=False) if args.json else entry.line())
    except BrokenPipeError:  # `… | head`: the reader has seen enough; no traceback at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        db.dispose()
    return 0


def signing_key_rotate(args: argparse.Namespace) -> int:
    import datetime as dt

    from .security.signing import KeyringError, load_or_create_keyring, save_keyring

    settings = _settings()
    path = settings.resolved_signing_key_file()
    try:
        expires = dt.datetime.fromisoformat(args.expires.replace("Z", "+00:00")) if args.expires else \
            dt.datetime.now(dt.timezone.utc)
    except ValueError:
        sys.exit(f"stagegate-broker: --expires {args.expires!r} is not an ISO 8601 time")
    if expires.tzinfo is None:
        sys.exit("stagegate-broker: --expires needs a time zone (e.g. 2026-01-31T12:00:00Z)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        old = load_or_create_keyring(path)
    except KeyringError as exc:
        sys.exit(f"stagegate-broker: {exc}")
    new = old.rotated(expires)
    save_keyring(path, new)
    print(f"retired {old.active.keyid} (expires {new.retired[0].document()['expires']})")
    print(f"signing with {new.active.keyid} from now on, in {path}")
    print("restart every instance (give each this same file) for the new key to take effect")
    return 0


def _hooks_broker():
    from .runtime import SchemaOutOfDate, build_broker

    try:
        return build_broker(_settings())
    except SchemaOutOfDate as exc:
        sys.exit(f"stagegate-broker: {exc}")


def hooks_add(args: argparse.Namespace) -> int:
    """A registry-wide webhook (every package's events); the secret is printed once."""
    from .api.hooks import describe, new_hook
    from .domain.webhooks import HookRequest
    from .errors import RegistryError

    try:
        change = HookRequest(url=args.url, events=args.event or None)
    except ValidationError as exc:
        sys.exit(f"stagegate-broker: {exc.errors()[0]['msg']}")
    broker = _hooks_broker()
    try:
        with broker.db.write() as conn:
            hook, secret = new_hook(broker, conn, None, change, "admin-cli")
    except RegistryError as exc:
        sys.exit(f"stagegate-broker: {exc.error}")
    print(json.dumps({**describe(broker, hook), "secret": secret}))
    print("keep the secret: it is shown only now; it signs every delivery (X-Stagegate-Signature)", file=sys.stderr)
    return 0


def hooks_list(args: argparse.Namespace) -> int:
    from .api.hooks import describe
    from .store import webhooks as hook_store

    broker = _hooks_broker()
    with broker.db.read() as conn:
        hooks = hook_store.hooks_of(conn, args.package)
        pending = hook_store.pending_counts(conn, [h.id for h in hooks])
    for hook in hooks:
        print(json.dumps(describe(broker, hook, pending.get(hook.id, 0))))
    return 0


def hooks_rm(args: argparse.Namespace) -> int:
    from .store import audit
    from .store import webhooks as hook_store

    broker = _hooks_broker()
    with broker.db.write() as conn:
        if not hook_store.remove_hook(conn, args.package, args.id):
            sys.exit(f"stagegate-broker: no webhook {args.id} (see `stagegate-broker hooks list`)")
        audit.record(conn, "webhook.deleted", actor="admin-cli", package=args.package, id=args.id)
    print(f"deleted webhook {args.id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stagegate-broker", description="stagegate npm registry broker")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="start the registry")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=4873)
    p_serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p_serve.add_argument("--log-format", choices=["json", "plain"], default=None,
                         help="JSON objects, one per line (default; STAGEGATE_LOG_FORMAT), or plain text")
    p_serve.add_argument("--workers", type=int, default=None,
                         help="server processes sharing the port (default: STAGEGATE_WORKERS, else one per CPU core)")
    p_serve.set_defaults(func=serve)
    p_user = sub.add_parser("user", help="manage accounts")
    user_sub = p_user.add_subparsers(dest="user_command", required=True)
    p_add = user_sub.add_parser("add", help="create an account; the password is read from stdin")
    p_add.add_argument("name")
    p_add.add_argument("--email", required=True)
    p_add.set_defaults(func=user_add)
    p_db = sub.add_parser("db", help="manage the database schema")
    db_sub = p_db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or upgrade the schema to this version").set_defaults(func=db_upgrade)
    p_audit = sub.add_parser("audit", help="print the audit log, oldest first (one line per event)")
    p_audit.add_argument("--package", help="only this package's events")
    p_audit.add_argument("--event", help="an event (stage.approved) or a kind (oidc, oidc.) of events")
    p_audit.add_argument("--since", help="from this ISO 8601 date or time on (UTC unless it says otherwise)")
    p_audit.add_argument("--until", help="before this ISO 8601 date or time")
    p_audit.add_argument("--json", action="store_true", help="one JSON object per line")
    p_audit.set_defaults(func=audit_log)
    p_key = sub.add_parser("signing-key", help="manage the key that signs published versions")
    key_sub = p_key.add_subparsers(dest="key_command", required=True)
    p_rotate = key_sub.add_parser("rotate", help="sign with a new key; the current one stays served with an expiry")
    p_rotate.add_argument("--expires", help="when the retired key stops vouching for versions published from "
                                            "then on (ISO 8601; default now). Set it to the time of a compromise.")
    p_rotate.set_defaults(func=signing_key_rotate)
    p_hooks = sub.add_parser("hooks", help="manage the registry's webhooks (every package's events)")
    hooks_sub = p_hooks.add_subparsers(dest="hooks_command", required=True)
    p_hadd = hooks_sub.add_parser("add", help="add a webhook for every package; prints it and its secret (once)")
    p_hadd.add_argument("url", help="https://… (http:// and private addresses only with "
                                    "STAGEGATE_WEBHOOK_ALLOW_PRIVATE=true)")
    p_hadd.add_argument("--event", action="append", help="only this event (repeatable; default: every event)")
    p_hadd.set_defaults(func=hooks_add)
    p_hlist = hooks_sub.add_parser("list", help="the registry's webhooks (or a package's, with --package)")
    p_hlist.add_argument("--package")
    p_hlist.set_defaults(func=hooks_list)
    p_hrm = hooks_sub.add_parser("rm", help="delete a webhook (a package's, with --package)")
    p_hrm.add_argument("id")
    p_hrm.add_argument("--package")
    p_hrm.set_defaults(func=hooks_rm)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
