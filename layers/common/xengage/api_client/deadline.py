"""Deadlines: the moment nothing may run past, so an invocation ends with its work handed on, never timed out.

A Lambda invocation that times out loses what it fetched and leaves no status behind; a deadline lets the client
stop in time instead. The collector builds one from `context.get_remaining_time_in_millis()`, live queries from
API Gateway's 29 s, each less a reserve for the writes that follow the last call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

# API Gateway answers 504 after 29 s, whatever the function's own timeout.
API_GATEWAY_TIMEOUT_SECONDS: Final = 29.0


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on `clock` (monotonic by default). `remaining()` never goes below zero."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + max(0.0, seconds), clock)

    @classmethod
    def from_remaining_millis(
        cls, remaining_millis: int, *, reserve_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """From Lambda's `context.get_remaining_time_in_millis()`, keeping `reserve_seconds` for what follows."""
        return cls.after(remaining_millis / 1000 - reserve_seconds, clock=clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def allows(self, seconds: float) -> bool:
        """Is there time for something that takes `seconds`?"""
        return self.remaining() >= seconds

    def earlier(self, other: Deadline | None) -> Deadline:
        if other is None or self.remaining() <= other.remaining():
            return self
        return other
