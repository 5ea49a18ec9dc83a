"""The @handle billing guard: X bills the Engagement API by the unique @handles whose tokens sign calls in a calendar
month (UTC) and offers no usage API, so the deployment counts them itself (docs/DESIGN.md, "The @handle billing
guard").

Before a user-context call the account's handle is counted in the month's set (`dal.usage`); a handle this process
already counted this month costs nothing more. With a cap, a handle the month has not counted yet is refused once
the set is full: the collector defers its Posts (`usage_capped`), a live query answers 429. Handles already counted
keep collecting. Every call (bearer too) is counted by endpoint and day in the process and written by `flush`: once
an invocation in the collector, once a query in the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from xengage.api_client.batching import resolve_metrics
from xengage.api_client.catalog import Endpoint, needs_user_context
from xengage.api_client.credentials import UserTokens
from xengage.dal.usage import UsageDal
from xengage.observability import gauge, logger
from xengage.timeutil import to_iso

# Posts deferred by the cap are tried again this often (a raised cap takes effect then), and at the month's turn.
CAPPED_RETRY: Final = timedelta(hours=1)


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def next_month_start(moment: datetime) -> datetime:
    first = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def capped_retry_at(now: datetime) -> datetime:
    """When Posts the cap deferred are due again: within the hour (a raised cap), or when the month turns."""
    return min(now + CAPPED_RETRY, next_month_start(now))


def user_context(endpoint: Endpoint, engagement_types: Sequence[str] | None, user: UserTokens | None) -> bool:
    """Whether the call is signed with the account's tokens (what X bills), as the client decides it."""
    if user is None:
        return False
    return needs_user_context(endpoint, list(resolve_metrics(endpoint, engagement_types, has_user=True)))


class UsageGuard:
    """One per process (its Deps'): the cap, and the handles known counted this month (no write for those)."""

    def __init__(self, dal: UsageDal, cap: int | None) -> None:
        self.dal = dal
        self.cap = cap
        self._month = ""
        self._known: set[str] = set()
        self._calls: dict[tuple[str, Endpoint], int] = {}  # (day, endpoint) -> calls not written yet

    def admit(self, account_id: str, handle: str | None, *, now: datetime) -> bool:
        """Count the account's handle this month; False when the cap leaves no room for it (nothing is called)."""
        month = month_of(now)
        if month != self._month:
            self._month, self._known = month, set()  # a new month: a new set, every handle counted afresh
        if account_id in self._known:
            return True
        outcome = self.dal.count_handle(month, account_id, handle, at=to_iso(now), cap=self.cap)
        if not outcome.counted:
            logger.warning("monthly @handle cap reached", extra={"account_id": account_id, "cap": self.cap})
            return False
        self._known.add(account_id)
        if outcome.new and outcome.unique is not None:
            gauge("UniqueHandlesThisMonth", outcome.unique)
            logger.info(
                "new @handle this month",
                extra={"account_id": account_id, "handle": handle, "month": month, "unique": outcome.unique},
            )
        return True

    def record_calls(self, endpoint: Endpoint, calls: int, *, now: datetime) -> None:
        """Count calls made (written at the next `flush`)."""
        if calls:
            key = (now.astimezone(UTC).strftime("%Y-%m-%d"), endpoint)
            self._calls[key] = self._calls.get(key, 0) + calls

    def flush(self) -> None:
        """Write the calls counted since the last flush: one UpdateItem a day they fall on (usually one)."""
        pending, self._calls = self._calls, {}
        by_day: dict[str, dict[Endpoint, int]] = {}
        for (day, endpoint), calls in pending.items():
            by_day.setdefault(day, {})[endpoint] = calls
        for day, calls_by_endpoint in sorted(by_day.items()):
            self.dal.add_calls(day, calls_by_endpoint)

    def capped_message(self, account_id: str, handle: str | None, *, now: datetime) -> str:
        who = f"account {account_id}" + (f" (@{handle})" if handle else "")
        return (
            f"the monthly cap of {self.cap} unique @handles (MonthlyHandleCap) is reached for {month_of(now)} and "
            f"{who} is not among them: its calls wait until the month turns ({to_iso(next_month_start(now))}) "
            "or the cap is raised"
        )
