"""Guessing is bounded: OTPs per account (atomically, with backoff, audited), passwords per account
and per client address, password hashing in a few slots, and an unknown name costs a hash too."""

from __future__ import annotations

import base64
import itertools
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy

from tests.support.accounts import PASSWORD

# Each test speaks from loopback addresses of its own (Linux routes all of 127/8 to lo), so the
# per-address limits of one test never touch another's, nor the suite's 127.0.0.1.
_third = itertools.count(random.randrange(1, 200))


def new_addresses(count: int = 1) -> list[str]:
    third = 1 + next(_third) % 250
    return [f"127.{random.randrange(2, 250)}.{third}.{1 + i}" for i in range(count)]


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120)


def login(client: httpx.Client, registry: str, name: str, password: str) -> httpx.Response:
    return client.put(f"{registry}-/user/org.couchdb.user:{name}",
                      json={"_id": f"org.couchdb.user:{name}", "name": name, "password": password,
                            "type": "user", "roles": []})


def basic_whoami(client: httpx.Client, registry: str, name: str, password: str) -> httpx.Response:
    value = base64.b64encode(f"{name}:{password}".encode()).decode()
    return client.get(registry + "-/whoami", headers={"authorization": "Basic " + value})


def query(broker, sql: str, **params):
    engine = sqlalchemy.create_engine(broker.database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sqlalchemy.text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def test_forty_parallel_wrong_otps_count_at_most_the_limit(broker, accounts):
    account = accounts.create()
    authenticator = account.enable_2fa()
    created = account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD}, otp=True)
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    wrong = authenticator.wrong_code()

    def revoke(_):
        return account.http("DELETE", f"-/npm/v1/tokens/token/{key}", headers={"npm-otp": wrong})

    with ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(revoke, range(40)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= 5, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 429} == {"otp.rate-limited"}
    counted = query(broker, "select count(*) from otp_failures f join users u on u.id = f.user_id where u.name = :n",
                    n=account.name)[0][0]
    assert counted == statuses.count(401)
    audited = query(broker, "select detail from audit_log where event = 'otp.failed' and actor = :n", n=account.name)
    assert len(audited) == counted
    right = account.http("DELETE", f"-/npm/v1/tokens/token/{key}", otp=True)
    assert right.status_code == 429, "while backing off, even the right code is not looked at"
    listed = [t["key"] for t in account.http("GET", "-/npm/v1/tokens").json()["objects"]]
    assert key in listed, "nothing was revoked"


def test_wrong_passwords_for_one_account_are_rate_limited(broker, accounts):
    account = accounts.create()
    with client_from(new_addresses()[0]) as client:
        statuses = [login(client, broker.url, account.name, "wrong password").status_code for _ in range(10)]
        assert statuses == [401] * 10
        locked = login(client, broker.url, account.name, PASSWORD)
    assert locked.status_code == 429, locked.text
    assert locked.json()["code"] == "auth.rate-limited"
    with client_from(new_addresses()[0]) as elsewhere:  # per account: another address is held back too
        held = basic_whoami(elsewhere, broker.url, account.name, PASSWORD)
        assert held.status_code == 429
        time.sleep(int(held.headers["retry-after"]))
        assert login(elsewhere, broker.url, account.name, PASSWORD).status_code == 201, "the backoff ends"


def test_wrong_passwords_on_token_create_count_for_the_account(broker, accounts):
    account = accounts.create()
    with client_from(new_addresses()[0]) as client:
        def create(password):
            return client.post(broker.url + "-/npm/v1/tokens", headers=account.auth, json={"password": password})

        assert [create("wrong password").status_code for _ in range(10)] == [401] * 10
        refused = create(PASSWORD)
    assert refused.status_code == 429 and refused.json()["code"] == "auth.rate-limited"


def test_wrong_passwords_from_one_address_are_rate_limited(broker, accounts):
    account = accounts.create()
    address, other = new_addresses(2)
    with client_from(address) as client:
        for _ in range(30):  # spraying: many names, one guess each
            assert basic_whoami(client, broker.url, f"nobody-{uuid.uuid4().hex[:8]}", "guess").status_code == 401
        refused = basic_whoami(client, broker.url, account.name, PASSWORD)
    assert refused.status_code == 429 and refused.json()["code"] == "auth.rate-limited"
    with client_from(other) as client:
        assert basic_whoami(client, broker.url, account.name, PASSWORD).status_code == 200, "per address"


def test_an_unknown_user_costs_as_much_time_as_a_known_one(broker, accounts):
    account = accounts.create()
    known, unknown = [], []
    with client_from(new_addresses()[0]) as client:
        for _ in range(7):
            for name, times in ((account.name, known), (f"nobody-{uuid.uuid4().hex[:8]}", unknown)):
                started = time.perf_counter()
                assert basic_whoami(client, broker.url, name, "wrong password").status_code == 401
                times.append(time.perf_counter() - started)
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, (known, unknown)


def test_parallel_password_checks_beyond_the_hashing_slots_are_turned_away(broker):
    addresses = new_addresses(120)

    def attempt(address):
        with client_from(address) as client:
            return basic_whoami(client, broker.url, f"nobody-{uuid.uuid4().hex[:8]}", "guess")

    with ThreadPoolExecutor(120) as pool:
        responses = list(pool.map(attempt, addresses))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 503}, statuses
    busy = [r for r in responses if r.status_code == 503]
    assert busy, "more hashes than slots must not all queue up"
    assert {r.json()["code"] for r in busy} == {"auth.busy"}
    assert all(r.headers.get("retry-after") for r in busy)


def scrypt_hash_of_earlier_releases(password: str) -> str:
    import hashlib
    import os

    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**15, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    return f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_login_upgrades_a_hash_of_older_parameters(broker, accounts):
    account = accounts.create()
    old = scrypt_hash_of_earlier_releases(PASSWORD)
    query(broker, "update users set password_hash = :h where name = :n", h=old, n=account.name)
    with client_from(new_addresses()[0]) as client:
        assert login(client, broker.url, account.name, PASSWORD).status_code == 201
        stored = query(broker, "select password_hash from users where name = :n", n=account.name)[0][0]
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
        assert login(client, broker.url, account.name, PASSWORD).status_code == 201
        assert login(client, broker.url, account.name, "wrong password").status_code == 401
