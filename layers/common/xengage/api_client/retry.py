"""Retry decisions: what is worth another attempt, and how long to wait before it.

The client loops itself instead of using urllib3's Retry, because an OAuth 1.0a call must be signed
again (fresh nonce and timestamp) on every attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# 500/502/503 are documented as "retry using an exponential backoff pattern"; 504 is the gateway cousin.
RETRYABLE_STATUSES: Final = frozenset({500, 502, 503, 504})
THROTTLED_STATUS: Final = 429


class Transient(StrEnum):
    """Failures another attempt may cure."""

    THROTTLED = "throttled"  # 429
    SERVER = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, broken chunked body
    MALFORMED = "malformed"  # the body is not the documented JSON


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retries of one request, and on the total time one `fetch` may spend waiting.

    `max_attempts` counts every send of one request (first try included) for 5xx, timeouts, connection
    errors and malformed answers; 429s have their own allowance because waiting them out is expected.
    """

    max_attempts: int = 4
    max_throttled_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 16.0
    max_throttle_wait: float = 61.0
    total_wait_budget: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttled_retries < 0:
            raise ValueError("max_attempts must be >= 1 and max_throttled_retries >= 0")
        if self.base_delay < 0 or self.max_delay < self.base_delay or self.total_wait_budget < 0:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay and total_wait_budget >= 0")

    def backoff_delay(self, retry_number: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter: uniform(0, min(max_delay, base * 2**retry_number))."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(retry_number, 0)))
        return rng.uniform(0.0, ceiling)

    def allows(self, kind: Transient, *, attempts: int, throttled: int) -> bool:
        """May the request be sent again after `attempts` sends, `throttled` of them answered 429?"""
        if kind is Transient.THROTTLED:
            return throttled <= self.max_throttled_retries
        return attempts - throttled < self.max_attempts


def classify_status(status_code: int) -> Transient | None:
    if status_code == THROTTLED_STATUS:
        return Transient.THROTTLED
    if status_code in RETRYABLE_STATUSES:
        return Transient.SERVER
    return None
