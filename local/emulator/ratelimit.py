"""Per-endpoint request budget in fixed windows of one calendar minute (the emulator clock's minute)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

# What the headers advertise when no limit is set, so clients that pace on them still see a number.
UNLIMITED_ADVERTISED = 1_000_000


@dataclass(frozen=True, slots=True)
class Budget:
    allowed: bool
    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"x-per-minute-limit": str(self.limit), "x-per-minute-remaining": str(self.remaining)}


class PerMinuteLimiter:
    def __init__(self, per_minute_limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, datetime], int] = {}
        self.set_limit(per_minute_limit)

    @property
    def limit(self) -> int | None:
        return self._limit

    def set_limit(self, per_minute_limit: int | None) -> None:
        if per_minute_limit is not None and per_minute_limit < 0:
            raise ValueError("per_minute_limit must be >= 0 or None")
        with self._lock:
            self._limit = per_minute_limit
            self._counts.clear()

    def take(self, endpoint: str, now: datetime) -> Budget:
        """Count one call to `endpoint` in the minute of `now`; over the limit it is not allowed."""
        window = now.replace(second=0, microsecond=0)
        with self._lock:
            for key in [k for k in self._counts if k[1] != window]:
                del self._counts[key]  # only the current minute matters
            used = self._counts.get((endpoint, window), 0) + 1
            self._counts[(endpoint, window)] = used
            limit = self._limit
        advertised = UNLIMITED_ADVERTISED if limit is None else limit
        return Budget(allowed=limit is None or used <= limit, limit=advertised, remaining=max(0, advertised - used))
