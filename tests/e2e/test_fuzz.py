"""Fuzzing every route of a real broker: no request, however malformed, gets a 5xx or a traceback.

Hypothesis draws requests for every route of `broker.app.routes()` (a table below mirrors it; a
test checks that the two agree): paths with real and broken package names, ids and tags; bodies
that are malformed JSON, JSON of the wrong types, near-valid documents with one field broken, and
large documents; headers with garbage Authorization, npm-otp, Accept and Idempotency-Key values;
both anonymous and with a real logged-in token. A second test speaks HTTP/1.1 over a bare socket
for what httpx will not send (bad Content-Length, raw `..` and UTF-8 in the target, header
injection). The seed is fixed (STAGEGATE_FUZZ_SEED, default 14), so the suite replays the same cases
every run.

STAGEGATE_FUZZ_CASES sets the number of cases of the main fuzz (default 2000); by hand:
    STAGEGATE_FUZZ_CASES=20000 .venv/bin/python -m pytest -p no:cacheprovider -q tests/e2e/test_fuzz.py
Each test prints its case count and status distribution.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from broker.app import routes
from tests.support.accounts import PASSWORD, Accounts
from tests.support.packages import publish_document, unique_name

CASES = int(os.environ.get("STAGEGATE_FUZZ_CASES", "2000"))
WIRE_CASES = max(300, CASES // 8)
DEEP_CASES = max(120, CASES // 20)
DEPTH = 100_000

# Every route of broker.app.routes(), as (method, template); test_the_fuzz_covers_every_route keeps it whole.
ROUTES = [
    ("GET", "/-/ping"),
    ("GET", "/-/healthz"),
    ("POST", "/-/npm/v1/oidc/token/exchange/package/{pkg}"),
    ("POST", "/-/npm/v1/oidc/token/verify/package/{pkg}"),
    ("GET", "/-/whoami"),
    ("PUT", "/-/user/org.couchdb.user:{user}"),
    ("PUT", "/-/user/org.couchdb.user:{user}/-rev/{rev}"),
    ("GET", "/-/user/org.couchdb.user:{user}"),
    ("DELETE", "/-/user/token/{token}"),
    ("GET", "/-/npm/v1/user"),
    ("POST", "/-/npm/v1/user"),
    ("GET", "/-/npm/v1/tokens"),
    ("POST", "/-/npm/v1/tokens"),
    ("DELETE", "/-/npm/v1/tokens/token/{ref}"),
    ("GET", "/-/package/{pkg}/dist-tags"),
    ("PUT", "/-/package/{pkg}/dist-tags/{tag}"),
    ("POST", "/-/package/{pkg}/dist-tags/{tag}"),
    ("DELETE", "/-/package/{pkg}/dist-tags/{tag}"),
    ("GET", "/-/package/{pkg}/visibility"),
    ("POST", "/-/package/{pkg}/trust"),
    ("GET", "/-/package/{pkg}/trust"),
    ("DELETE", "/-/package/{pkg}/trust/{id}"),
    ("GET", "/-/package/{pkg}/access"),
    ("POST", "/-/package/{pkg}/access"),
    ("GET", "/-/package/{pkg}/audit"),
    ("GET", "/-/package/{pkg}/policy"),
    ("POST", "/-/package/{pkg}/policy"),
    ("GET", "/-/package/{pkg}/hooks"),
    ("POST", "/-/package/{pkg}/hooks"),
    ("DELETE", "/-/package/{pkg}/hooks/{id}"),
    ("GET", "/-/metrics"),
    ("GET", "/-/npm/v1/keys"),
    ("POST", "/-/stage/package/{pkg}"),
    ("GET", "/-/stage"),
    ("GET", "/-/stage/{id}"),
    ("GET", "/-/stage/{id}/tarball"),
    ("POST", "/-/stage/{id}/approve"),
    ("DELETE", "/-/stage/{id}"),
    ("GET", "/-/review/"),
    ("GET", "/-/review/style.css"),
    ("GET", "/-/review/signin"),
    ("POST", "/-/review/signin"),
    ("POST", "/-/review/signout"),
    ("GET", "/-/review/stage/{id}"),
    ("POST", "/-/review/stage/{id}/approve"),
    ("POST", "/-/review/stage/{id}/reject"),
    ("POST", "/-/review/package/{pkg}/policy"),
    ("GET", "/{pkg}/-/{file}"),
    ("DELETE", "/{pkg}/-/{file}/-rev/{rev}"),
    ("PUT", "/{pkg}/-rev/{rev}"),
    ("DELETE", "/{pkg}/-rev/{rev}"),
    ("GET", "/{pkg}"),
    ("PUT", "/{pkg}"),
    ("GET", "/{pkg}/{version}"),
]

SAMPLE = {"pkg": "@s%2fp", "user": "u", "rev": "1-a", "token": "t", "ref": "r", "tag": "beta", "id": "i",
          "file": "p-1.0.0.tgz", "version": "1.0.0"}


def test_the_fuzz_covers_every_route():
    table = routes(SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1)))
    fuzzed = {(m, re.sub(r"\{(\w+)\}", lambda g: SAMPLE[g[1]], t)) for m, t in ROUTES}
    for route in table:
        assert any(m == route.method and route.pattern.match(p) for m, p in fuzzed), \
            f"{route.method} {route.pattern.pattern} is not in the fuzz's ROUTES"
    for method, path in fuzzed:  # and no stale entry: each one reaches a route
        assert any(method == route.method and route.pattern.match(path) for route in table), (method, path)


# --- what the fuzz knows about the broker it runs against ----------------------------------------

@dataclass
class Known:
    """Real names on the fuzzed broker, so that cases reach past the 404s."""

    url: str
    user: str
    token: str
    packages: list[str]
    stage_id: str
    token_ref: str
    tarball: str


@pytest.fixture(scope="module")
def target(backends, broker_env, tmp_path_factory, npm_cache):
    process = backends.broker(env=broker_env)
    accounts = Accounts(process.url, tmp_path_factory.mktemp("fuzz-accounts"), npm_cache)
    account = accounts.create("fuzz")
    plain, scoped = unique_name("fuzz"), unique_name("fuzz", scope="fuzz")
    for name in (plain, scoped):
        response = account.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0"))
        assert response.status_code == 200, response.text
    staged = account.http("POST", f"-/stage/package/{plain}", json=publish_document(plain, "1.1.0"))
    assert staged.status_code == 201, staged.text
    extra = account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD})
    assert extra.status_code == 200, extra.text
    known = Known(process.url, account.name, account.token, [plain, scoped], staged.json()["stageId"],
                  extra.json()["key"], f"{plain}-1.0.0.tgz")
    yield process, known
    process.stop()


# --- strategies ----------------------------------------------------------------------------------
# Hypothesis spends 5-10 ms on each text or binary draw on a loaded 2-core machine, so the random
# material (garbage text, header values, JSON values, broken documents) is made once from a fixed
# seed into pools, and hypothesis draws indexes into them and into the hand-picked lists: about
# ten cheap draws a case.

POOL_SIZE = max(400, CASES // 4)
_VISIBLE = bytes(c if 0x21 <= c < 0x7F or c >= 0x80 else 0x20 for c in range(256))


def random_text(rng: random.Random, max_size: int = 40) -> str:
    planes = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0xFF), (0x100, 0x2FFF), (0x202A, 0x202E), (0xE000, 0xFFFD),
              (0x10000, 0x10FFFF)]
    chars = []
    for _ in range(rng.randint(1, max_size)):
        low, high = rng.choice(planes)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def random_json(rng: random.Random, depth: int = 0):
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**64), 10**30, 1.5, -0.0, 1e308])
    if pick in (3, 4):
        return rng.choice(["", "1.0.0", "latest", "\ud800", "a" * 300, "sha512-", random_text(rng)])
    if pick == 5:
        return random_text(rng, 12)
    if pick == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["name", "version", "_id", "versions", "dist", "tfa", "password", random_text(rng, 8)]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


BAD_SEGMENTS = ["%2e%2e", "..%2f..%2fetc", "%2e", "%00", "a%00b", "%ff", "%", "%zz", "%c0%af", "%25",
                "%2f", "@", "@s", "@s%2f", "@%2f", "@s%2f%2e%2e", "_x", ".x", "-x", "UPPER", "a%20b", "~",
                "%e2%80%ae", "%f0%9f%92%a9", "node_modules", "favicon.ico", "-", "%5c..%5c", "a;b", "a,b",
                "a" * 215, "a" * 5_000, "b" * 30_000, "%41" * 3_000, "@" + "s" * 300 + "%2f" + "p" * 300,
                "1-" + "f" * 2_000, "99999999999999999999", "-1", "0", "1e9", "null", "true", "[]", "{}",
                "00000000-0000-0000-0000-000000000000", "6f1c2a4e-9b7d-4c1e-8a2b-3d4e5f607182",
                "6F1C2A4E-9B7D-4C1E-8A2B-3D4E5F607182", "%7b%7d"]


def valid_bodies(known: Known) -> list[object]:
    """A well-formed body for each route family; the pools break one field of one of them."""
    name = known.packages[0]
    return [
        publish_document(name, "2.0.0"),
        publish_document(known.packages[1], "2.0.0", access="public"),
        {"_id": f"org.couchdb.user:{known.user}", "name": known.user, "password": "not the password",
         "email": "x@example.test", "type": "user", "roles": []},
        {"tfa": {"mode": "auth-and-writes", "password": "not the password"}},
        {"tfa": ["123456"]},
        {"password": "not the password", "name": "t", "packages": [name], "expires": 30,
         "cidr_whitelist": ["127.0.0.1/32"], "packages_and_scopes_permission": "read-write"},
        {"access": "restricted", "publish_requires_tfa": True, "automation_token_overrides_tfa": False},
        "1.0.0",
        [{"type": "github", "claims": {"repository": "o/r", "workflow_ref": {"file": "release.yml"}},
          "permissions": ["stage"]}],
        {"_id": name, "_rev": "1-a", "name": name, "versions": {"1.0.0": {"name": name, "version": "1.0.0"}},
         "maintainers": [{"name": known.user, "email": "x@example.test"}], "dist-tags": {"latest": "1.0.0"}},
    ]


def _set_in(doc, path: list[int], value):
    """`doc` with the value at `path` (indexes into keys or items, walked as far as they go) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    key, rest = path[0], path[1:]
    if isinstance(doc, dict):
        key = list(doc)[key % len(doc)]
        return {**doc, key: _set_in(doc[key], rest, value)}
    key %= len(doc)
    return doc[:key] + [_set_in(doc[key], rest, value)] + doc[key + 1:]


def fixed_bodies(known: Known) -> list[bytes | None]:
    doc = json.dumps(publish_document(known.packages[0], "3.0.0")).encode()
    return [
        None, b"", b"{", b'{"name": ', b"[1,2", b'{"a":1,}', b"NaN", b"Infinity", b"-Infinity", b'{"a": NaN}',
        b"1e999999", b"1" + b"0" * 5_000, b'"\\ud800"', b'{"\\ud800": 1}', b'"\\u0000"', b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00", b"\xc3\x28", b"{'a': 1}", b"null", b"true", b"0", b"[]", b"{}", b'""',
        b'{"name": "\x00"}', doc[: len(doc) // 2], doc.replace(b'"data": "', b'"data": "!!!'),
        doc.replace(b'"versions"', b'"versions": [], "x"'), doc.replace(b"sha512-", b"md5-"),
        b"[" * 500 + b"]" * 500, b'{"a":' * 500 + b"1" + b"}" * 500,
        json.dumps({"k": "x" * 200_000}).encode(), json.dumps(list(range(60_000))).encode(),
        json.dumps({str(i): i for i in range(20_000)}).encode(), b" " * 300_000 + b"{}",
        json.dumps({"_attachments": {f"f{i}.tgz": {"data": "AAAA", "length": 3} for i in range(2_000)}}).encode(),
    ]


@dataclass
class Pools:
    """Random material made once from a fixed seed."""

    segments: list[str]
    bodies: list[bytes]
    header_values: list[bytes]
    queries: list[str]


def make_pools(known: Known, seed: int = 14) -> Pools:
    rng = random.Random(seed)
    valid = valid_bodies(known)

    def broken() -> bytes:
        doc = rng.choice(valid)
        path = [rng.randrange(30) for _ in range(rng.randint(1, 6))]
        return json.dumps(_set_in(doc, path, random_json(rng) if rng.random() < 0.8 else None)).encode()

    def garbage_body() -> bytes:
        pick = rng.randrange(3)
        if pick == 0:
            return rng.randbytes(rng.randint(1, 512))
        if pick == 1:
            return json.dumps(random_json(rng)).encode()
        return random_text(rng, 200).encode("utf-8", "surrogatepass")

    def header_value() -> bytes:
        if rng.random() < 0.5:
            return rng.randbytes(rng.randint(0, 60)).translate(_VISIBLE).strip(b" ")
        return random_text(rng, 30).encode("utf-8", "surrogatepass").translate(_VISIBLE).strip(b" ")

    def query() -> str:
        values = ["-1", "0", "1", "1e9", "abc", "", "99999999999999999999", "9" * 5_000, "NaN", "%00", "%ff"]
        keys = ["page", "perPage", "package", "write", "q", "page[]"]
        return "&".join(f"{rng.choice(keys)}={rng.choice(values + [quote(random_text(rng), safe='')])}"
                        for _ in range(rng.randint(1, 3)))

    return Pools(
        segments=[quote(random_text(rng), safe="") for _ in range(POOL_SIZE)],
        bodies=[broken() if i % 2 else garbage_body() for i in range(POOL_SIZE)],
        header_values=[header_value() for _ in range(POOL_SIZE)] + [b"", b"x" * 70_000, b"\xe9", "ü".encode()],
        queries=[query() for _ in range(POOL_SIZE)])


def segments(kind: str, known: Known, pools: Pools) -> st.SearchStrategy[str]:
    real = {
        "pkg": [quote(p, safe="@") for p in known.packages] + [known.packages[1]] + ["lodash"],
        "user": [known.user, "nobody"],
        "rev": ["1-a", "0-0", "2-" + "0" * 32],
        "token": ["npm_" + "A" * 36],
        "ref": [known.token_ref],
        "tag": ["latest", "beta", "next", "1.0.0", "v1", "^1"],
        "id": [known.stage_id, str(uuid.uuid4())],
        "file": [known.tarball, "x-1.0.0.tgz", ".tgz", "%2e%2e.tgz", "..%2f..%2fx.tgz"],
        "version": ["1.0.0", "1.1.0", "latest", "v1.0.0", "1.0.0-rc.1+b", "^1", "*"],
    }[kind]
    text = st.sampled_from(pools.segments)
    if kind == "file":
        text = text.map(lambda s: s + ".tgz")
    return st.one_of(st.sampled_from(real), st.sampled_from(BAD_SEGMENTS), text)


def bodies(known: Known, pools: Pools) -> st.SearchStrategy[bytes | None]:
    return st.one_of(st.sampled_from(fixed_bodies(known)), st.sampled_from(pools.bodies))


def authorizations(known: Known, pools: Pools) -> st.SearchStrategy[bytes | None]:
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    garbage = [f"Bearer {known.token}x", f"Bearer {known.token[:-1]}", "Bearer", "bearer " + known.token,
               f"Bearer  {known.token}", f"Token {known.token}", "Basic", "Basic !!!", "Basic " + b64("nocolon"),
               "Basic " + b64(f"{known.user}:wrong password"), "Basic " + b64(":"), "Basic " + b64("é:é"),
               "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(), "Bearer " + "x" * 100_000,
               "Bearer " + "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer npm_" + "A" * 36,
               f"Bearer {known.token}, Bearer {known.token}"]
    prefixed = st.tuples(st.sampled_from([b"Bearer ", b"Basic ", b""]), st.sampled_from(pools.header_values))
    return st.one_of(st.just(f"Bearer {known.token}".encode()), st.just(None),
                     st.sampled_from(garbage).map(str.encode), prefixed.map(lambda p: b"".join(p).strip()))


def other_headers(pools: Pools, seed: int = 15) -> list[dict[str, bytes]]:
    """Pooled sets of npm-otp, Content-Type, Idempotency-Key, Accept, Accept-Encoding and odd headers."""
    rng = random.Random(seed)
    choices = {
        "npm-otp": [b"000000", b"123456", b"1234567", b"-1", b"0" * 5_000],
        "content-type": [b"application/json", b"application/json; charset=utf-16", b"text/plain",
                         b"multipart/form-data; boundary=x"],
        "idempotency-key": [b"k", b"x" * 256, b"x" * 300],
        "accept": [b"application/vnd.npm.install-v1+json", b"*/*;q=x",
                   b"application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"],
        "accept-encoding": [b"gzip", b"gzip;q=0", b"gzip;q=abc", b"br, gzip;q=1e999", b"*"],
    }
    name_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+.^_`|~-"
    made = [{}]
    for _ in range(POOL_SIZE):
        one = {}
        for name, values in choices.items():
            if rng.random() < 0.4:
                one[name] = rng.choice(values) if rng.random() < 0.5 else rng.choice(pools.header_values)
        for _ in range(rng.choice([0, 0, 1, 3])):
            one["".join(rng.choice(name_chars) for _ in range(rng.randint(1, 20))).lower()] = \
                rng.choice(pools.header_values)
        for framing in ("content-length", "transfer-encoding", "host"):
            one.pop(framing, None)
        made.append(one)
    return made


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str
    query: str
    headers: dict[str, bytes]
    body: bytes | None

    def __repr__(self) -> str:  # hypothesis reprs every case: keep 100 kB bodies out of it
        return self.describe()

    def describe(self) -> str:
        shown = {k: (v[:60] + b"..." if len(v) > 60 else v) for k, v in self.headers.items()}
        body = None if self.body is None else (self.body[:120] + (b"..." if len(self.body) > 120 else b""))
        return f"{self.method} {self.path[:150]}{'?' + self.query[:80] if self.query else ''} headers={shown} body={body!r}"


METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]


def requests(known: Known, body_strategy=None) -> st.SearchStrategy[Case]:
    pools = make_pools(known)
    body_strategy = bodies(known, pools) if body_strategy is None else body_strategy
    header_sets = st.sampled_from(other_headers(pools))
    auths = authorizations(known, pools)
    queries = st.one_of(st.just(""), st.sampled_from(pools.queries))
    by_kind = {kind: segments(kind, known, pools) for kind in SAMPLE}

    @st.composite
    def draw(draw_):
        method, template = draw_(st.sampled_from(ROUTES))
        if draw_(st.integers(0, 19)) == 0:
            method = draw_(st.sampled_from(METHODS))
        path = re.sub(r"\{(\w+)\}", lambda g: draw_(by_kind[g[1]]), template)[:60_000]  # httpx's limit
        headers = dict(draw_(header_sets))
        auth = draw_(auths)
        if auth is not None:
            headers["authorization"] = auth
        return Case(f"{method} {template}", method, path, draw_(queries), headers, draw_(body_strategy))

    return draw()


# --- sending and tallying ------------------------------------------------------------------------

@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    cases: int = 0
    seconds: Counter = field(default_factory=Counter)  # time spent per route, to see what makes a run slow
    callers: Counter = field(default_factory=Counter)  # anonymous, the logged-in token, or garbage

    def record(self, case: str, status: int | str, detail: str = "") -> None:
        self.cases += 1
        self.statuses[status] += 1
        if status in ("timeout", "no response", "hung") or isinstance(status, int) and status >= 500:
            self.failures.append(f"{case} -> {status} {detail[:300]}")

    def summary(self, what: str) -> str:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0])))
        return f"{what}: {self.cases} cases, status distribution {{{shown}}}, {len(self.failures)} failures"


def send(client: httpx.Client, known: Known, case: Case, tally: Tally) -> None:
    url = httpx.URL(known.url.rstrip("/") + case.path, query=case.query.encode())
    auth = case.headers.get("authorization")
    tally.callers["anonymous" if auth is None else "logged-in token" if auth == f"Bearer {known.token}".encode()
                  else "bad Authorization"] += 1
    started = time.monotonic()
    try:
        response = client.request(case.method, url, headers=case.headers, content=case.body)
        tally.seconds[case.label] += time.monotonic() - started
    except httpx.TimeoutException:
        tally.record(case.describe(), "timeout")
        return
    except (httpx.LocalProtocolError, httpx.InvalidURL) as exc:  # not sendable: not a case
        tally.statuses[f"not sent ({type(exc).__name__})"] += 1
        return
    except httpx.RemoteProtocolError as exc:
        tally.record(case.describe(), "no response", str(exc))
        return
    except httpx.NetworkError as exc:
        # A request refused before its body is read (or whose headers pass the 64 KiB cap) is answered with
        # `connection: close`; a client still sending a large request may then see the connection reset
        # before it reads the answer. Not so for a request the socket buffers hold whole.
        size = len(case.body or b"") + sum(len(k) + len(v) for k, v in case.headers.items())
        large = size > 64 * 1024
        tally.record(case.describe(), "reset while sending a large request" if large else "no response", str(exc))
        return
    tally.record(case.describe(), response.status_code, response.text)


_CHAINED = re.compile(r"\n(\S[^\n]*)\n\n(?:During handling of the above exception, another exception occurred|"
                      r"The above exception was the direct cause of the following exception):\n\n"
                      r"Traceback \(most recent call last\):\n")


def tracebacks(log: str) -> list[str]:
    """Each traceback in a log (a chain as one) with the line before it ("unhandled error on …")."""
    lines, found = _CHAINED.sub(lambda m: f"\n  [then, while handling] {m[1]}\n", log).splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = i + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            found.append("\n".join(line[:300] for line in lines[max(0, i - 1):end + 1]))
    return found


SEED = int(os.environ.get("STAGEGATE_FUZZ_SEED", "14"))


def fuzz_settings(cases: int):
    """A fixed seed (not derandomize, whose seed is a digest of the test's code) and no shrinking: every
    case is tallied, none fails the run early, so there is nothing to shrink."""
    def apply(test):
        return seed(SEED)(settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck))(test))
    return apply


def run_fuzz(target, strategy, cases: int) -> Tally:
    process, known = target
    tally = Tally()
    with httpx.Client(timeout=30) as client:
        @fuzz_settings(cases)
        @given(strategy)
        def one(case: Case) -> None:
            send(client, known, case, tally)

        one()
    return tally


def signature(traceback: str) -> str:
    """Where a traceback comes from: the last broker frame and the exception."""
    frames = re.findall(r'File "[^"]*/(broker/[^"]+)", line (\d+), in (\w+)', traceback)
    where = ":".join(frames[-1]) if frames else "outside the broker"
    return f"{traceback.splitlines()[-1][:160]} at {where}"


def settled_log(process, log_from: int) -> str:
    """The broker's log since `log_from`, once the last requests' handlers had time to finish: a handler may
    still run (and log) after a client that hung up has seen its connection closed."""
    time.sleep(1.5)
    return process.log()[log_from:]


def assert_clean(process, log_from: int, tally: Tally, minimum: int, what: str, capsys) -> None:
    everything = tracebacks(settled_log(process, log_from))
    kinds = Counter(signature(t) for t in everything)
    with capsys.disabled():
        print("\n" + tally.summary(what) + f", {len(everything)} tracebacks in the broker log")
        for kind, count in kinds.most_common():
            print(f"  {count} x {kind}")
        if tally.callers:
            print("  callers: " + ", ".join(f"{who} {count}" for who, count in tally.callers.most_common()))
        if tally.seconds:
            print("  slowest routes: " + ", ".join(f"{label} {spent:.1f} s" for label, spent in tally.seconds.most_common(4)))
    assert tally.cases >= minimum, tally.summary(what)
    assert not tally.failures, "\n".join([tally.summary(what), *tally.failures[:30]])
    assert not everything, "tracebacks in the broker log:\n" + "\n----\n".join(everything[:5])


def test_fuzzed_requests_to_every_route_get_no_server_error(target, capsys):
    process, known = target
    log_from = len(process.log())
    tally = run_fuzz(target, requests(known), CASES)
    assert_clean(process, log_from, tally, CASES, "fuzz of every route", capsys)


def _deep_documents() -> list[bytes]:
    return [b"[" * DEPTH, b"[" * DEPTH + b"]" * DEPTH, b'{"a":' * DEPTH, b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
            b'{"versions":' + b"[" * DEPTH, b'"' + b"[" * DEPTH + b'"', b"[" * 2_000 + b"]" * 2_000]


def test_documents_nested_100000_deep_get_no_server_error(target, capsys):
    process, known = target
    log_from = len(process.log())
    tally = run_fuzz(target, requests(known, st.sampled_from(_deep_documents())), DEEP_CASES)
    assert_clean(process, log_from, tally, DEEP_CASES, f"documents nested {DEPTH} deep", capsys)


# --- the wire: what httpx will not send ----------------------------------------------------------

RAW_TARGETS = [b"/..", b"/../../etc/passwd", b"/-/package/../../x/access", b"/%2e%2e/%2e%2e", b"/\xc3\xa9",
               b"/@s/\xf0\x9f\x92\xa9", b"/a b", b"/a\tb", b"*", b"http://evil.test/-/ping", b"//-/ping",
               b"/-/ping?\xff=\xff", b"/?" + b"a=1&" * 5_000, b"/" + b"a" * 100_000, b"/\x7f", b"/a%",
               b"/-/stage/..%2f..%2f", b"/-/user/org.couchdb.user:..", b"/-/package/@s%2f..%2f../dist-tags"]
CONTENT_LENGTHS = [b"abc", b"-1", b"+5", b" 5", b"5 ", b"0x10", b"1e3", b"5, 5", b"9" * 30, b"9" * 5_000,
                   b"1" + b"0" * 12, b"18446744073709551616", b"\xd9\xa5", b""]


_rng = random.Random(16)
RANDOM_TARGETS = [b"/" + random_text(_rng, 30).encode("utf-8", "surrogatepass") for _ in range(200)]


@dataclass(frozen=True)
class RawRequest:
    data: bytes
    half_close: bool  # declared a longer body than it sends, then stops sending

    def __repr__(self) -> str:
        return repr(self.data[:300])


def sound_or_not(draw, sound: list, corrupt: list):
    """Mostly a sound value, one time in eight a corrupt one: about half the requests get past the HTTP parser."""
    return draw(st.sampled_from(corrupt)) if draw(st.integers(0, 7)) == 7 else draw(st.sampled_from(sound))


@st.composite
def wire_requests(draw, known: Known):
    method = sound_or_not(draw, [b"GET", b"PUT", b"POST", b"DELETE", b"HEAD"], [b"G\x00T", b"PUT " * 3, b""])
    target = sound_or_not(draw, [re.sub(r"\{(\w+)\}", lambda g: SAMPLE[g[1]], t).encode() for _, t in ROUTES],
                          RAW_TARGETS + RANDOM_TARGETS)
    lines = [b"Host: 127.0.0.1"]
    auth = sound_or_not(draw, [None, f"Bearer {known.token}".encode()], [b"Bearer \xff\xfe", b"Basic \x00"])
    if auth is not None:
        lines.append(b"Authorization: " + auth)
    body = draw(st.sampled_from([b"", b"{}", b'"1.0.0"', b'{"name": ', b"x" * 1000]))
    framing = sound_or_not(draw, ["length", "none", "short", "chunked"],
                           ["bad-length", "two-lengths", "bad-chunked", "length-and-chunked"])
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "bad-length":
        lines.append(b"Content-Length: " + draw(st.sampled_from(CONTENT_LENGTHS)))
    elif framing == "two-lengths":
        lines += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    elif framing == "short":  # declares more than it sends, then stops sending (at most 64 KiB declared)
        lines.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 65_536))))
    elif framing in ("chunked", "bad-chunked", "length-and-chunked"):
        lines.append(b"Transfer-Encoding: chunked")
        if framing == "length-and-chunked":
            lines.append(b"Content-Length: 3")
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if framing != "bad-chunked" else \
            draw(st.sampled_from([b"zz\r\nabc\r\n", b"5\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n", b"ffffffffffffffffff\r\n"]))
    extra = sound_or_not(draw, [None, b"npm-otp: 123456", b"Content-Type: application/json"],
                         [b"npm-otp: 12\r\n3456", b"npm-otp: \x00", b"X: y\r\n\r\nGET / HTTP/1.1", b" folded: value",
                          b"NoColon", b"\xff\xfe: v", b"npm-otp: " + b"1" * 100_000, b"Authorization: Bearer a",
                          b"Content-Type: application/json\x00"])
    if extra is not None:
        lines.append(extra)
    version = sound_or_not(draw, [b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/9.9", b"HTTP/1.1 extra", b""])
    head = method + b" " + target + b" " + version + b"\r\nConnection: close\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    return RawRequest(head + body, framing == "short")


def exchange_raw(port: int, data: bytes, half_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the broker may refuse and close before the whole request is sent
        received = b""
        try:
            while chunk := sock.recv(65_536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def raw_status(response: bytes) -> int | str:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    if not match:
        return "closed without a response"
    if b"Invalid HTTP request received" in response:  # uvicorn's parser refused it before the broker saw it
        return f"{match[1].decode()} (from the HTTP parser)"
    return int(match[1])


def test_fuzzed_raw_http_requests_get_no_server_error(target, capsys):
    process, known = target
    log_from = len(process.log())
    tally = Tally()

    @fuzz_settings(WIRE_CASES)
    @given(wire_requests(known))
    def one(request: RawRequest) -> None:
        data, half_close = request.data, request.half_close
        started = time.monotonic()
        response = exchange_raw(process.port, data, half_close)
        status = raw_status(response)
        if time.monotonic() - started > 9:
            status = "hung"
        elif status == "closed without a response":  # a framing error may close the connection: not a 5xx
            tally.statuses[status] += 1
            tally.cases += 1
            return
        tally.record(repr(data[:200]), status, response[:300].decode("latin-1"))

    one()
    assert_clean(process, log_from, tally, WIRE_CASES, "raw HTTP fuzz", capsys)


# --- one test per server error the fuzz found (each fixed now; kept so it stays fixed) ---------------

def test_basic_credentials_that_are_not_ascii_are_a_401(target):
    process, known = target
    log_from = len(process.log())
    response = httpx.get(known.url + "-/whoami", headers={"authorization": b"Basic \xe9"})
    assert response.status_code == 401, response.text
    assert not tracebacks(process.log()[log_from:])


def test_a_client_that_stops_sending_mid_body_leaves_no_traceback(target):
    process, known = target
    log_from = len(process.log())
    head = b"PUT /fuzz-gone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    exchange_raw(process.port, head + b'{"name": ', half_close=True)
    assert process.process.poll() is None
    assert not tracebacks(settled_log(process, log_from))


NUL_REQUESTS = [  # (method, path, JSON body): on PostgreSQL each was a 500 (psycopg DataError); now a 400 on both
    ("DELETE", "-/npm/v1/tokens/token/a%00b", None),
    ("GET", "-/user/org.couchdb.user:a%00b", None),
    ("PUT", "-/user/org.couchdb.user:a%00b", {"name": "a\u0000b", "password": "x" * 10, "email": "a@b.cd"}),
    ("GET", "-/stage?package=a%00b", None),
    ("PUT", "-/package/{pkg}/dist-tags/beta", "1.0.0\u0000"),
    ("GET", "{pkg}/-/{pkg}-1.0.0%00.tgz", None),
]


@pytest.mark.parametrize("method, path, body", NUL_REQUESTS)
def test_a_nul_character_in_a_name_or_value_is_not_a_server_error(target, method, path, body):
    process, known = target
    log_from = len(process.log())
    path = path.replace("{pkg}", known.packages[0])
    response = httpx.request(method, known.url + path, headers={"authorization": f"Bearer {known.token}"},
                             json=body, timeout=30)
    assert response.status_code < 500, response.text  # a 404, or an empty list for the stage filter
    assert not tracebacks(process.log()[log_from:])


def test_a_trust_configuration_whose_type_is_not_a_string_is_refused(target):
    process, known = target
    log_from = len(process.log())
    response = httpx.post(f"{known.url}-/package/{known.packages[0]}/trust", timeout=30,
                          headers={"authorization": f"Bearer {known.token}"},
                          json=[{"type": {"a": 1}, "claims": {}, "permissions": ["stage"]}])
    assert 400 <= response.status_code < 500, response.text
    assert not tracebacks(process.log()[log_from:])


@pytest.mark.parametrize("path", ["-/npm/v1/tokens?page=99999999999999999999", "-/stage?page=99999999999999999999"])
def test_a_page_number_too_large_for_the_database_is_not_a_server_error(target, path):
    process, known = target
    log_from = len(process.log())
    response = httpx.get(known.url + path, headers={"authorization": f"Bearer {known.token}"}, timeout=30)
    assert response.status_code < 500, response.text
    assert not tracebacks(process.log()[log_from:])
