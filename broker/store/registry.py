"""Queries for packages: their versions, dist-tags, owners, policies."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from .tables import dist_tags, owners, packages, users, versions


@dataclass(frozen=True)
class Package:
    name: str
    access: str
    mfa: str
    rev: int
    readme: str
    created_at: float
    modified_at: float


@dataclass(frozen=True)
class VersionRow:
    version: str
    state: str
    manifest: dict
    blob: str | None
    created_at: float


_PACKAGE = select(packages).where(packages.c.name == bindparam("name"))  # built once: every request reads it


def package(conn: Connection, name: str) -> Package | None:
    row = conn.execute(_PACKAGE, {"name": name}).first()
    return Package(row.name, row.access, row.mfa, row.rev, row.readme, row.created_at, row.modified_at) if row else None


def create_package(conn: Connection, name: str, owner_id: int, access: str) -> bool:
    """False when the package exists already (the primary key decides, not a prior check)."""
    now = time.time()
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_PACKAGE, dict(name=name, access=access, mfa="none", rev=1, readme="", created_at=now,
                                               modified_at=now))
            conn.execute(_INSERT_OWNER, dict(package=name, user_id=owner_id))
    except IntegrityError:
        return False
    return True


_INSERT_PACKAGE, _INSERT_OWNER = insert(packages), insert(owners)  # built once: every first publish runs them


def touch(conn: Connection, name: str, **values) -> None:
    conn.execute(_touch_statement(frozenset(values)),
                 {"b_name": name, "b_modified_at": time.time(), **{f"b_{k}": v for k, v in values.items()}})


@functools.cache
def _touch_statement(columns: frozenset[str]):
    """One statement per set of changed columns, built once (publishes touch the package every time)."""
    return update(packages).where(packages.c.name == bindparam("b_name")).values(  # b_: not a column's name
        rev=packages.c.rev + 1, modified_at=bindparam("b_modified_at"), **{c: bindparam(f"b_{c}") for c in sorted(columns)})


def is_owner(conn: Connection, name: str, user_id: int) -> bool:
    return conn.execute(_IS_OWNER, {"name": name, "user_id": user_id}).first() is not None


_IS_OWNER = select(owners.c.user_id).where(owners.c.package == bindparam("name"),
                                           owners.c.user_id == bindparam("user_id"))


def maintainers(conn: Connection, name: str) -> list[dict]:
    rows = conn.execute(select(users.c.name, users.c.email).join(owners, owners.c.user_id == users.c.id)
                        .where(owners.c.package == name).order_by(users.c.name)).all()
    return [{"name": r.name, "email": r.email} for r in rows]


def set_owners(conn: Connection, name: str, user_ids: list[int]) -> None:
    conn.execute(delete(owners).where(owners.c.package == name))
    conn.execute(insert(owners), [{"package": name, "user_id": uid} for uid in user_ids])


def claim_version(conn: Connection, name: str, version: str, state: str, manifest: dict, blob: str | None) -> bool:
    """Take a version number for good; False when it was ever used (published, unpublished, staged).

    The primary key decides, in one statement (ON CONFLICT DO NOTHING: no savepoint around it). Any
    other constraint failing raises, and on PostgreSQL aborts the transaction: the only other one is
    the package's foreign key, and a package row is never deleted (unpublishing keeps it)."""
    claimed = conn.execute(_dialect_statements(conn.dialect.name).claim_version, {
        "package": name, "version": version, "state": state, "manifest": json.dumps(manifest), "blob": blob,
        "created_at": time.time()})
    return claimed.rowcount == 1


def version_row(conn: Connection, name: str, version: str) -> VersionRow | None:
    row = conn.execute(_VERSION_ROW, {"name": name, "version": version}).first()
    return VersionRow(row.version, row.state, json.loads(row.manifest), row.blob, row.created_at) if row else None


_VERSION_ROW = select(versions).where(versions.c.package == bindparam("name"), versions.c.version == bindparam("version"))


def published_tarball(conn: Connection, name: str, version: str) -> tuple[str, str] | None:
    """(blob key, package access) of a published version, in one lookup."""
    row = conn.execute(_PUBLISHED_TARBALL, {"name": name, "version": version}).first()
    return (row.blob, row.access) if row and row.blob else None


_PUBLISHED_TARBALL = (select(versions.c.blob, packages.c.access)  # built once: every tarball GET runs it
                      .join(packages, packages.c.name == versions.c.package)
                      .where(versions.c.package == bindparam("name"), versions.c.version == bindparam("version"),
                             versions.c.state == "published"))


def published_versions(conn: Connection, name: str) -> list[VersionRow]:
    rows = conn.execute(select(versions).where(versions.c.package == name, versions.c.state == "published")).all()
    return [VersionRow(r.version, r.state, json.loads(r.manifest), r.blob, r.created_at) for r in rows]


def set_manifest(conn: Connection, name: str, version: str, manifest: dict) -> None:
    conn.execute(update(versions).where(versions.c.package == name, versions.c.version == version)
                 .values(manifest=json.dumps(manifest)))


def mark_unpublished(conn: Connection, name: str, version: str) -> None:
    conn.execute(update(versions).where(versions.c.package == name, versions.c.version == version)
                 .values(state="unpublished", blob=None))


def blob_in_use(conn: Connection, blob: str) -> bool:
    return conn.execute(select(versions.c.version).where(versions.c.blob == blob).limit(1)).first() is not None


def lock_blob(conn: Connection, blob: str) -> None:
    """Until this write transaction ends, no other one that locks `blob` runs: a writer adding a row
    that refers to the blob and a deleter checking that none does take turns, across instances too.
    (A SQLite write transaction is exclusive already; PostgreSQL takes an advisory lock.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(_ADVISORY_XACT_LOCK, {"key": int(blob[:15], 16)})  # 60 bits of the sha512: a bigint


_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def tags(conn: Connection, name: str) -> dict[str, str]:
    rows = conn.execute(select(dist_tags.c.tag, dist_tags.c.version).where(dist_tags.c.package == name)).all()
    return {r.tag: r.version for r in rows}


def set_tag(conn: Connection, name: str, tag: str, version: str) -> None:
    """Insert or move a tag in one statement, so concurrent writers cannot collide (ON CONFLICT)."""
    conn.execute(_dialect_statements(conn.dialect.name).set_tag, {"package": name, "tag": tag, "version": version})


@dataclass(frozen=True)
class _DialectStatements:
    """The upserts, which SQLAlchemy spells per dialect, built once each (every publish runs them)."""

    claim_version: Any
    set_tag: Any


@functools.cache
def _dialect_statements(name: str) -> _DialectStatements:
    dialect = postgresql if name == "postgresql" else sqlite
    tag = dialect.insert(dist_tags)
    return _DialectStatements(
        claim_version=dialect.insert(versions).on_conflict_do_nothing(index_elements=["package", "version"])
        .execution_options(preserve_rowcount=True),  # an INSERT's rowcount is not kept otherwise (psycopg: -1)
        set_tag=tag.on_conflict_do_update(index_elements=["package", "tag"], set_={"version": tag.excluded.version}))


def remove_tag(conn: Connection, name: str, tag: str) -> bool:
    return conn.execute(delete(dist_tags).where(dist_tags.c.package == name, dist_tags.c.tag == tag)).rowcount == 1


def remove_tags_of_version(conn: Connection, name: str, version: str) -> None:
    conn.execute(delete(dist_tags).where(dist_tags.c.package == name, dist_tags.c.version == version))


def scope_owner_ids(conn: Connection, scope: str) -> list[int]:
    """The accounts that own every package of `@scope` (none when the scope has no packages)."""
    in_scope = packages.c.name.startswith(f"{scope}/", autoescape=True)
    total = select(func.count()).select_from(packages).where(in_scope).scalar_subquery()
    rows = conn.execute(select(owners.c.user_id).where(owners.c.package.startswith(f"{scope}/", autoescape=True))
                        .group_by(owners.c.user_id).having(func.count() == total)
                        .order_by(owners.c.user_id)).scalars().all()
    return list(rows)


def scope_has_packages(conn: Connection, scope: str) -> bool:
    return conn.execute(select(packages.c.name).where(packages.c.name.startswith(f"{scope}/", autoescape=True))
                        .limit(1)).first() is not None


def create_package_owned_by(conn: Connection, name: str, owner_ids: list[int], access: str) -> bool:
    """A new package with these owners; False when the name is taken (the primary key decides)."""
    now = time.time()
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_PACKAGE, dict(name=name, access=access, mfa="none", rev=1, readme="", created_at=now,
                                               modified_at=now))
            conn.execute(_INSERT_OWNER, [{"package": name, "user_id": uid} for uid in owner_ids])
    except IntegrityError:
        return False
    return True
