"""The backoff schedules that bound OTP and password guessing, and client-address buckets."""

import threading

import pytest

from broker.security.throttle import OTP, PASSWORD_ACCOUNT, PASSWORD_ADDRESS, Backoff, Slots, address_key

SCHEDULE = Backoff(free=3, base=10.0, cap=100.0, window=1000.0)


@pytest.mark.parametrize("failures, delay", [(0, 0), (2, 0), (3, 10), (4, 20), (5, 40), (6, 80), (7, 100), (30, 100)])
def test_delay_doubles_after_the_free_failures_up_to_the_cap(failures, delay):
    assert SCHEDULE.delay(failures) == delay


def test_wait_counts_from_the_last_failure():
    assert SCHEDULE.wait(4, last_failure=500.0, now=505.0) == 15.0
    assert SCHEDULE.wait(4, last_failure=500.0, now=520.0) == 0.0
    assert SCHEDULE.wait(2, last_failure=500.0, now=500.0) == 0.0
    assert SCHEDULE.wait(0, last_failure=None, now=500.0) == 0.0


def test_most_attempts_follows_the_schedule():
    # 3 at once, then at 10, 30, 70, 150 (the fifth wait is 80), then every 100 s, forgetting after 1000 s.
    assert SCHEDULE.most_attempts(1.0) == 3
    assert SCHEDULE.most_attempts(151.0) == 7
    assert SCHEDULE.most_attempts(251.0) == 8


def test_otp_guesses_per_day_are_few():
    """34 guesses the first day and 24 a day after that: with 3 accepted codes (the previous, current
    and next 30 s step) out of 10^6, a thief holding a session token wins with odds below 1.1e-4 a day."""
    assert OTP.most_attempts(86400) == 34
    assert OTP.most_attempts(7 * 86400) - OTP.most_attempts(6 * 86400) == 24
    assert 34 * 3 / 10**6 < 1.1e-4


def test_password_schedules_let_typos_through_and_then_slow_down():
    assert PASSWORD_ACCOUNT.delay(9) == 0 and PASSWORD_ACCOUNT.delay(10) == 5.0
    assert PASSWORD_ACCOUNT.most_attempts(86400) < 120
    assert PASSWORD_ADDRESS.delay(29) == 0 and PASSWORD_ADDRESS.delay(40) == 300.0


@pytest.mark.parametrize("address, key", [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "unknown"),
])
def test_address_key_groups_an_ipv6_host_by_its_64(address, key):
    assert address_key(address) == key


def test_slots_turn_callers_away_when_all_are_taken():
    slots = Slots(size=2, wait=0.05)
    assert slots.acquire() and slots.acquire()
    assert not slots.acquire()
    slots.release()
    assert slots.acquire()


def test_a_released_slot_serves_a_waiting_caller():
    slots = Slots(size=1, wait=5.0)
    assert slots.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire()))
    waiter.start()
    slots.release()
    waiter.join(5)
    assert got == [True]


def test_hashes_run_on_the_slots_own_threads_not_the_callers():
    slots = Slots(size=2, wait=1.0)
    names = {slots.run(lambda: threading.current_thread().name) for _ in range(20)}
    assert names and all(name.startswith("kdf") for name in names) and len(names) <= 2


def test_a_free_failure_recorded_after_now_by_a_concurrent_request_means_no_wait():
    assert OTP.wait(failures=2, last_failure=1000.5, now=1000.0) == 0.0
