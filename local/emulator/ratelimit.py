"""Per-endpoint request budget in fixed windows of the emulator clock ("minutes", 60 s unless shortened).

Windows are aligned to multiples of `window_seconds` since the Unix epoch, so at 60 s a window is exactly
a calendar minute. Tests shorten the window on both the client and the emulator to live through several
rate-limited "minutes" in a few seconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime

# What the headers advertise when no limit is set, so clients that pace on them still see a number.
UNLIMITED_ADVERTISED = 1_000_000
DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Budget:
    allowed: bool
    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"x-per-minute-limit": str(self.limit), "x-per-minute-remaining": str(self.remaining)}


class PerMinuteLimiter:
    def __init__(self, per_minute_limit: int | None = None, window_seconds: float = DEFAULT_WINDOW_SECONDS) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self.configure(per_minute_limit, window_seconds)

    @property
    def limit(self) -> int | None:
        return self._limit

    @property
    def window_seconds(self) -> float:
        return self._window_seconds

    def set_limit(self, per_minute_limit: int | None) -> None:
        self.configure(per_minute_limit, self._window_seconds)

    def set_window_seconds(self, window_seconds: float) -> None:
        self.configure(self._limit, window_seconds)

    def configure(self, per_minute_limit: int | None, window_seconds: float) -> None:
        """Check both values before either changes; the counts start over, as after a deploy of new limits."""
        if per_minute_limit is not None and per_minute_limit < 0:
            raise ValueError("per_minute_limit must be >= 0 or None")
        if not math.isfinite(window_seconds) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a finite number > 0, got {window_seconds}")
        with self._lock:
            self._limit = per_minute_limit
            self._window_seconds = float(window_seconds)
            self._counts.clear()

    def take(self, endpoint: str, now: datetime) -> Budget:
        """Count one call to `endpoint` in the window of `now`; over the limit it is not allowed."""
        with self._lock:
            window = int(now.timestamp() // self._window_seconds)
            for key in [k for k in self._counts if k[1] != window]:
                del self._counts[key]  # only the current window matters
            used = self._counts.get((endpoint, window), 0) + 1
            self._counts[(endpoint, window)] = used
            limit = self._limit
        advertised = UNLIMITED_ADVERTISED if limit is None else limit
        return Budget(allowed=limit is None or used <= limit, limit=advertised, remaining=max(0, advertised - used))
