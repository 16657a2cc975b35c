"""The broker's Prometheus metrics: what is counted, with which (bounded) labels, and the exposition.

Labels never carry a request's own text: a route is its template ("/{pkg}/-/{file}"), a method outside
the HTTP methods the registry serves is "other", an OIDC refusal is its error code. So no package
name, token or path ever reaches the metrics, and their cardinality is fixed by the code.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory writable by all of
them (emptied before the server starts): each process then writes its samples there and a scrape of
any one of them adds them all up (prometheus-client's multiprocess mode). Unset, the metrics live in
the process's memory (one process).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})

REQUESTS = Counter("stagegate_http_requests", "HTTP requests answered, by route template, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("stagegate_http_request_duration_seconds",
                    "Time from a request's arrival to its response being sent, by route template and method.",
                    ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
OIDC_EXCHANGES = Counter("stagegate_oidc_exchanges", "OIDC token exchanges, granted or refused by error code.",
                         ["outcome", "code"])
OTP_FAILURES = Counter("stagegate_otp_failures", "One-time passwords refused, by reason.", ["reason"])
INTERNAL_ERRORS = Counter("stagegate_internal_errors",
                          "Requests answered 500 by an unexpected exception, by where it came from "
                          "(database, blob-store, other).", ["kind"])

UNMATCHED = "unmatched"


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    count, latency = _request_series(route, method if method in METHODS else "other", status)
    count.inc()
    latency.observe(seconds)


@lru_cache(maxsize=4096)  # the labels are bounded (route templates x methods x statuses): this holds them all
def _request_series(route: str, method: str, status: int):
    """The two series of one (route, method, status): looked up once, not on every request."""
    return REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method)


def exchange_granted() -> None:
    OIDC_EXCHANGES.labels("granted", "").inc()


def exchange_refused(code: str) -> None:
    OIDC_EXCHANGES.labels("refused", code).inc()


def otp_failed(reason: str) -> None:
    OTP_FAILURES.labels(reason).inc()


def internal_error(exc: BaseException) -> None:
    INTERNAL_ERRORS.labels(error_kind(exc)).inc()


def error_kind(exc: BaseException) -> str:
    """database for SQLAlchemy's errors and anything raised inside broker/store (but the blob store),
    blob-store for what the blob store (or its S3 client) raised, other for the rest."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        return "database"
    modules = [tb.tb_frame.f_globals.get("__name__", "") for tb in _frames(exc.__traceback__)]
    if any(m == "broker.store.blobs" or m.startswith(("botocore", "boto3", "s3transfer")) for m in modules):
        return "blob-store"
    if any(m.startswith("broker.store") or m.startswith(("sqlalchemy", "psycopg", "sqlite3")) for m in modules):
        return "database"
    return "other"


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


@lru_cache(maxsize=256)
def route_template(pattern: str) -> str:
    """A readable template of a route's regex: named groups become {name}, optional parts [..].

    "^/-/stage/(?P<id>[^/]+)/approve/?$" → "/-/stage/{id}/approve"."""
    text = pattern.removeprefix("^").removesuffix("$").removesuffix("/?")
    out, i = [], 0
    while i < len(text):
        if text.startswith("(?P<", i):
            name = text[i + 4:text.index(">", i)]
            i = _closing(text, i) + 1
            out.append("{" + name + "}")
        elif text.startswith("(?:", i):
            end = _closing(text, i)
            inner = route_template(text[i + 3:end])
            optional = text.startswith("?", end + 1)
            out.append(f"[{inner}]" if optional else inner)
            i = end + (2 if optional else 1)
        elif text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced group in {text!r}")


class _Collected:
    """Adapts a function returning metric families to prometheus-client's collector protocol."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.collect = collect


def stage_families(counts: dict[str, int], pending_stages: int) -> list[Metric]:
    versions = GaugeMetricFamily("stagegate_versions", "Package versions in the database, by state "
                                 "(published, unpublished, staged).", labels=["state"])
    for state in ("published", "unpublished", "staged"):
        versions.add_metric([state], counts.get(state, 0))
    stages = GaugeMetricFamily("stagegate_stages_pending", "Staged versions waiting for an approval or a rejection.")
    stages.add_metric([], pending_stages)
    return [versions, stages]


def exposition(database_families: Callable[[], list[Metric]]) -> bytes:
    """The text a scrape gets: the counters of this process (or of all processes, in multiprocess
    mode) and the gauges read from the database now."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Collected(REGISTRY.collect))
    registry.register(_Collected(database_families))
    return generate_latest(registry)

