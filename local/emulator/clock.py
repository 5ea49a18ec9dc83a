"""The emulator's notion of "now": real UTC time unless a test pins or moves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Real time by default; `set(dt)` pins it (age rules and rate-limit windows follow), `set(None)` releases."""

    def __init__(self, fixed: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._fixed: datetime | None = None
        self.set(fixed)

    def now(self) -> datetime:
        with self._lock:
            fixed = self._fixed
        return fixed if fixed is not None else datetime.now(UTC)

    def set(self, moment: datetime | None) -> None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("the emulator clock needs a timezone-aware datetime (UTC)")
        with self._lock:
            self._fixed = moment.astimezone(UTC) if moment is not None else None

    def advance(self, delta: timedelta) -> datetime:
        """Move a pinned clock forward (pins it at real now + delta when it was running free)."""
        moved = self.now() + delta
        self.set(moved)
        return moved
