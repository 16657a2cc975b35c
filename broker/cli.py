"""stagegate-broker: serve | user add | db upgrade | signing-key rotate."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from pydantic import ValidationError

from .errors import RegistryError
from .settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"stagegate-broker: bad configuration: {exc}")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import RegistryApp
    from .runtime import build_broker

    from .runtime import SchemaOutOfDate
    from .security.signing import KeyringError

    settings = _settings()
    try:
        broker = build_broker(settings, args.host, args.port)
    except (SchemaOutOfDate, KeyringError) as exc:
        sys.exit(f"stagegate-broker: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("stagegate").info("serving %s (data in %s)", broker.public_url, settings.data_dir.resolve())
    uvicorn.run(RegistryApp(broker), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.log_level in ("info", "debug"), proxy_headers=False, server_header=False)
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
    from .api.users import check_new_account
    from .runtime import build_broker
    from .security.passwords import hash_password
    from .store import accounts, audit

    broker = build_broker(_settings())
    password = _read_password()
    try:
        check_new_account(args.name, args.email, password)
    except RegistryError as exc:
        sys.exit(f"stagegate-broker: {exc.error}")
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
    db = Database(settings.resolved_database_url())
    before = schema.current(db)
    schema.upgrade(db)
    after = schema.current(db)
    db.dispose()
    print(f"database schema: {before or 'empty'} → {after}" if before != after else f"database schema is current ({after})")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stagegate-broker", description="stagegate npm registry broker")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="start the registry")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=4873)
    p_serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
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
    p_key = sub.add_parser("signing-key", help="manage the key that signs published versions")
    key_sub = p_key.add_subparsers(dest="key_command", required=True)
    p_rotate = key_sub.add_parser("rotate", help="sign with a new key; the current one stays served with an expiry")
    p_rotate.add_argument("--expires", help="when the retired key stops vouching for versions published from "
                                            "then on (ISO 8601; default now). Set it to the time of a compromise.")
    p_rotate.set_defaults(func=signing_key_rotate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
