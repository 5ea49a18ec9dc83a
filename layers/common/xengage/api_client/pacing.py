"""Client-side pacing from `x-per-minute-limit` / `x-per-minute-remaining`.

The API meters calls per minute per endpoint and sends no reset header, so the pacer assumes the
allowance renews at each wall-clock minute boundary and spreads the calls that remain over the rest
of the current minute: a run slows down before it would be refused instead of provoking 429s.

`window_seconds` is that minute. It is 60 against X; tests shorten it, together with the emulator's, so a scenario
of several rate-limited minutes runs in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from xengage.observability import client_logger as logger

LIMIT_HEADER: Final = "x-per-minute-limit"
REMAINING_HEADER: Final = "x-per-minute-remaining"
# A little past the boundary, so a slightly fast local clock does not land just before it.
BOUNDARY_MARGIN_SECONDS: Final = 0.25
RATE_WINDOW_SECONDS: Final = 60.0
# Shorter waits are not worth a sleep (and a clock of microseconds may not even move for them).
MIN_DELAY_SECONDS: Final = 0.001


def utc_now() -> datetime:
    return datetime.now(UTC)


class RateGate(Protocol):
    """What the client asks before each call and tells after it: `Pacer` (this process) or a shared budget.

    `delay_before_call` answers 0 when the call may go now (a shared budget has then reserved it), or the seconds to
    wait before asking again. The client asks again after waiting, so a gate may answer 0 only once per call.
    """

    def delay_before_call(self, endpoint: str) -> float: ...

    def record_response(self, endpoint: str, headers: Mapping[str, str]) -> None: ...

    def record_throttled(self, endpoint: str) -> float: ...

    def limit(self, endpoint: str) -> int | None: ...


@dataclass(slots=True)
class _Allowance:
    limit: int | None
    remaining: int
    window: int  # the window (minute) the numbers were read in
    last_call: datetime | None = None


class Pacer:
    """Per-endpoint allowance bookkeeping with an injectable clock and sleep."""

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] | None = None,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self._now = now
        self._sleep = sleep
        self.window_seconds = window_seconds
        self._allowance: dict[str, _Allowance] = {}

    def delay_before_call(self, endpoint: str) -> float:
        """Seconds to wait before the next call to `endpoint` so the remaining calls last the minute."""
        allowance = self._allowance.get(endpoint)
        if allowance is None:
            return 0.0
        now = self._now()
        if self._window_of(now) > allowance.window:
            return 0.0  # a new minute: the allowance has renewed
        until_boundary = self.seconds_until_renewal(now)
        if allowance.remaining <= 0:
            return until_boundary + BOUNDARY_MARGIN_SECONDS
        if allowance.last_call is None:
            return 0.0
        # r calls left: r + 1 equal gaps up to the boundary, so the last one still lands in this minute.
        spacing = until_boundary / (allowance.remaining + 1)
        delay = allowance.last_call.timestamp() + spacing - now.timestamp()
        return delay if delay >= MIN_DELAY_SECONDS else 0.0

    def wait_before_call(self, endpoint: str) -> float:
        delay = self.delay_before_call(endpoint)
        if delay > 0 and self._sleep is not None:
            logger.debug("pacing /%s: waiting %.2fs to stay within the per-minute limit", endpoint, delay)
            self._sleep(delay)
        return delay

    def record_response(self, endpoint: str, headers: Mapping[str, str]) -> None:
        """Remember the allowance an answer reported; answers without the headers change nothing."""
        now = self._now()
        remaining = header_int(headers, REMAINING_HEADER)
        previous = self._allowance.get(endpoint)
        if remaining is None:
            if previous is not None:
                previous.last_call = now
            return
        limit = header_int(headers, LIMIT_HEADER)
        self._allowance[endpoint] = _Allowance(
            limit=limit, remaining=remaining, window=self._window_of(now), last_call=now
        )

    def record_throttled(self, endpoint: str) -> float:
        """After a 429: nothing is left this minute. Returns the seconds until the allowance renews."""
        now = self._now()
        previous = self._allowance.get(endpoint)
        limit = previous.limit if previous is not None else None
        self._allowance[endpoint] = _Allowance(limit=limit, remaining=0, window=self._window_of(now), last_call=now)
        return self.seconds_until_renewal(now) + BOUNDARY_MARGIN_SECONDS

    def remaining(self, endpoint: str) -> int | None:
        allowance = self._allowance.get(endpoint)
        return None if allowance is None else allowance.remaining

    def limit(self, endpoint: str) -> int | None:
        """The per-minute limit the API last reported for `endpoint` (None before any answer carried it)."""
        allowance = self._allowance.get(endpoint)
        return None if allowance is None else allowance.limit

    def seconds_until_renewal(self, now: datetime) -> float:
        """Seconds from `now` to the start of the next window (the next wall-clock minute at 60 s)."""
        return seconds_until_next_window(now, self.window_seconds)

    def _window_of(self, moment: datetime) -> int:
        return int(moment.timestamp() // self.window_seconds)


def seconds_until_next_window(now: datetime, window_seconds: float = RATE_WINDOW_SECONDS) -> float:
    elapsed = now.timestamp() % window_seconds
    return window_seconds - elapsed


def seconds_until_next_minute(now: datetime) -> float:
    return seconds_until_next_window(now, RATE_WINDOW_SECONDS)


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
