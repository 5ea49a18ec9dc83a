"""Retry decisions (which failures, how long) and per-minute pacing, with injected randomness and clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from xengage.api_client import Pacer, RetryPolicy
from xengage.api_client.pacing import BOUNDARY_MARGIN_SECONDS, seconds_until_next_minute
from xengage.api_client.retry import Transient, classify_status


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, Transient.THROTTLED), (500, Transient.SERVER), (502, Transient.SERVER), (503, Transient.SERVER)],
)
def test_throttling_and_server_errors_are_transient(status: int, kind: Transient) -> None:
    assert classify_status(status) is kind


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404])
def test_answers_and_client_errors_are_not_retried_blindly(status: int) -> None:
    assert classify_status(status) is None


def test_full_jitter_backoff_stays_under_a_growing_capped_ceiling() -> None:
    # Given a policy with base 0.5 s and cap 4 s, and a seeded generator
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    # When many delays are drawn per retry number
    for retry_number, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [policy.backoff_delay(retry_number, rng) for _ in range(300)]
        # Then each lies in [0, ceiling] and they spread over it (full jitter, not a fixed wait)
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling


def test_attempt_allowances_are_separate_for_throttling_and_other_failures() -> None:
    policy = RetryPolicy(max_attempts=3, max_throttled_retries=2)
    assert policy.allows(Transient.SERVER, attempts=2, throttled=0)
    assert not policy.allows(Transient.SERVER, attempts=3, throttled=0)
    # 429s do not eat the 5xx allowance
    assert policy.allows(Transient.TIMEOUT, attempts=4, throttled=2)
    assert policy.allows(Transient.THROTTLED, attempts=2, throttled=2)
    assert not policy.allows(Transient.THROTTLED, attempts=3, throttled=3)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5, max_delay=1)


def test_pacer_spreads_the_remaining_calls_over_the_rest_of_the_minute(clock) -> None:
    # Given 20 s left in the minute and 4 calls remaining
    clock.moment = datetime(2026, 11, 25, 18, 0, 40, tzinfo=UTC)
    pacer = Pacer(now=clock.now, sleep=clock.sleep)
    pacer.record_response("totals", {"x-per-minute-limit": "10", "x-per-minute-remaining": "4"})
    # When the next call is due
    delay = pacer.wait_before_call("totals")
    # Then it waits a fifth of the time left (4 calls, 5 gaps), and other endpoints are not held back
    assert delay == pytest.approx(4.0)
    assert clock.sleeps == [pytest.approx(4.0)]
    assert pacer.delay_before_call("28hr") == 0.0


def test_pacer_waits_for_the_next_minute_when_nothing_remains(clock) -> None:
    clock.moment = datetime(2026, 11, 25, 18, 0, 45, 500000, tzinfo=UTC)
    pacer = Pacer(now=clock.now, sleep=clock.sleep)
    pacer.record_response("28hr", {"x-per-minute-limit": "3", "x-per-minute-remaining": "0"})
    assert pacer.delay_before_call("28hr") == pytest.approx(14.5 + BOUNDARY_MARGIN_SECONDS)
    # After waiting, the minute has turned and calls flow again
    pacer.wait_before_call("28hr")
    assert clock.moment.minute == 1
    assert pacer.delay_before_call("28hr") == 0.0


def test_pacer_after_429_waits_for_the_boundary_and_ignores_unreadable_headers(clock) -> None:
    clock.moment = datetime(2026, 11, 25, 18, 0, 59, tzinfo=UTC)
    pacer = Pacer(now=clock.now)
    assert pacer.record_throttled("totals") == pytest.approx(1.0 + BOUNDARY_MARGIN_SECONDS)
    assert pacer.remaining("totals") == 0
    pacer.record_response("historical", {"x-per-minute-remaining": "lots"})
    assert pacer.remaining("historical") is None
    assert seconds_until_next_minute(clock.moment + timedelta(seconds=0.5)) == pytest.approx(0.5)
