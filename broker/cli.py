"""stagegate-broker: serve | user add | db upgrade."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from pydantic import ValidationError

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

    settings = _settings()
    try:
        broker = build_broker(settings, args.host, args.port)
    except SchemaOutOfDate as exc:
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
    db = Database(settings.resolved_database_url())
    before = schema.current(db)
    schema.upgrade(db)
    after = schema.current(db)
    db.dispose()
    print(f"database schema: {before or 'empty'} → {after}" if before != after else f"database schema is current ({after})")
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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
