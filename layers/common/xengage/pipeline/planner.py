"""Planner: turn the due markers of one endpoint into SQS messages for the collector.

Streams DueIndex oldest-due first (never the whole table), groups Posts by auth context — the account whose tokens
sign the call, or the app bearer — and, for /historical, by how many 4-week windows their range needs, into batches
of the endpoint's maximum (250 for /totals, 25 otherwise). A /historical batch asks from the earliest start among its
Posts: that costs no extra call (the window count is the same), where grouping by exact start would cost a call per
distinct start. At most one open batch per group and ten finished messages are held, so memory stays flat however
many Posts are tracked.

Before a Post is queued its due marker is **leased** (moved ahead, naming this tick; `pipeline.continuations`), on
the condition that nobody moved it since it was read: a backlog, a retried tick or a concurrent planner never queues
a Post twice. What is not planned is counted, never silently dropped:

- `needs_reauth`: Posts of accounts that need re-authorization (or are no longer registered);
- `deferred`: Posts beyond what the contract's per-minute limit can serve before the next tick (the oldest-due go
  first), or beyond the planner's own deadline; they stay due for the next tick;
- the whole tick pauses (`paused`) while the app's credentials are refused and the app secret has not changed, or
  while it holds the template's placeholders.

Every tick, paused or not, publishes how late the most overdue Post waiting for collection is (`staleness`): in
seconds and in periods of the endpoint's schedule, so one threshold ("more than 2 periods late") suits every endpoint.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit

from xengage.api_client.catalog import HISTORICAL_MAX_WINDOW, Endpoint
from xengage.api_client.deadline import Deadline
from xengage.dal import (
    AppState,
    CollectQueue,
    DueMarker,
)
from xengage.dal.queue import MAX_BATCH_ENTRIES, SendStats
from xengage.dal.secrets import AppSecretPlaceholder
from xengage.deps import Deps
from xengage.observability import count, gauges, logger
from xengage.pipeline.cadence import historical_window
from xengage.pipeline.continuations import lease_until
from xengage.pipeline.messages import CollectMessage
from xengage.settings import PlannerSettings
from xengage.timeutil import parse_iso, to_iso, utc_now

# (account_id or "" for the app, /historical: how many 4-week windows the range needs, else 0)
GroupKey = tuple[str, int]
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
# The planner stops planning (and counts the rest as deferred) this long before its own timeout.
PLANNER_RESERVE_SECONDS: Final = 10.0


@dataclass(slots=True)
class PlanSummary:
    endpoint: str
    scheduled_time: str
    due: int = 0  # markers found due
    planned: int = 0  # Posts put in a message
    skipped: int = 0  # due but nothing to ask yet (no whole hour for /historical, or no account for a series)
    needs_reauth: int = 0  # due, but their account needs re-authorization or is not registered
    deferred: int = 0  # due, but beyond this tick's capacity or the planner's deadline: left due for the next tick
    already_leased: int = 0  # another planner run leased them first (a retried or concurrent tick)
    capacity_calls: int | None = None  # Engagement API calls the contract allows before the next tick (None: unknown)
    # The most overdue Post waiting for collection (planned or deferred; not those of accounts needing
    # re-authorization, which wait for new tokens, not for the collector): its due time and how late it is at the tick.
    oldest_due_at: str | None = None
    oldest_overdue_seconds: float = 0.0
    oldest_overdue_periods: float | None = None  # None when the schedule is not a rate(...)
    paused: str | None = None  # why nothing was planned, when the app cannot collect
    messages: int = 0
    send_calls: int = 0  # SendMessageBatch requests, resends included
    resent: int = 0
    messages_by_account: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The planner's dependencies: registry, queue, app_state, load_app (fresh=True skips the cache), secret_version.
PlannerDeps = Deps[PlannerSettings]


def schedule_interval(expression: str | None) -> timedelta | None:
    """The time between ticks of a `rate(...)` schedule; None for anything else (no capacity bound then)."""
    found = _RATE.match((expression or "").strip())
    if not found:
        return None
    unit = found.group(2).rstrip("s")
    return timedelta(**{f"{unit}s": int(found.group(1))})


def capacity_calls(per_minute_limit: int | None, interval: timedelta | None) -> int | None:
    """Calls the contract serves before the next tick of this endpoint, or None when either is unknown."""
    if not per_minute_limit or interval is None:
        return None
    return max(1, math.floor(per_minute_limit * interval.total_seconds() / 60))


class _Outbox:
    """Finished messages waiting for a SendMessageBatch (at most 10 held)."""

    def __init__(self, queue: CollectQueue, summary: PlanSummary) -> None:
        self.queue = queue
        self.summary = summary
        self.stats = SendStats()
        self.bodies: list[dict[str, Any]] = []

    def add(self, message: CollectMessage) -> None:
        self.bodies.append(message.to_body())
        context = message.account_id or "APP"
        self.summary.messages_by_account[context] = self.summary.messages_by_account.get(context, 0) + 1
        if len(self.bodies) == MAX_BATCH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if self.bodies:
            self.queue.send_batch(self.bodies, self.stats)
            self.bodies = []
        self.summary.messages = self.stats.messages
        self.summary.send_calls = self.stats.calls
        self.summary.resent = self.stats.resent


@dataclass(slots=True)
class _Batch:
    markers: list[DueMarker] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None


class _Plan:
    """One tick being planned: open batches, the calls they will cost, the accounts already looked up."""

    def __init__(self, endpoint: Endpoint, scheduled_time: datetime, deps: PlannerDeps, summary: PlanSummary) -> None:
        self.endpoint = endpoint
        self.scheduled_time = scheduled_time
        self.deps = deps
        self.summary = summary
        assert deps.queue is not None  # PlannerSettings requires COLLECT_QUEUE_URL
        self.outbox = _Outbox(deps.queue, summary)
        self.batches: dict[GroupKey, _Batch] = {}
        self.calls = 0  # calls the planned messages will cost
        self.accounts: dict[str, bool] = {}  # account id -> may be collected
        self.lease = to_iso(scheduled_time)
        self.lease_until = to_iso(lease_until(scheduled_time))

    def account_ok(self, account_id: str) -> bool:
        if not account_id:
            return True
        if account_id not in self.accounts:
            account = self.deps.registry.get_account(account_id)
            self.accounts[account_id] = account is not None and not account.needs_reauth
            if not self.accounts[account_id]:
                why = "not registered" if account is None else "needs re-authorization"
                logger.warning("account not planned", extra={"account_id": account_id, "why": why})
        return self.accounts[account_id]

    def add(self, marker: DueMarker, window: tuple[datetime, datetime] | None, *, capacity: int | None) -> bool:
        """Put a marker in its group's batch; False when opening a batch would exceed `capacity` calls."""
        windows_needed = math.ceil((window[1] - window[0]) / HISTORICAL_MAX_WINDOW) if window else 0
        key: GroupKey = (marker.account_id, windows_needed)
        batch = self.batches.get(key)
        if batch is None:
            cost = max(1, windows_needed)
            if capacity is not None and self.calls + cost > capacity:
                return False
            self.calls += cost
            batch = self.batches[key] = _Batch()
        batch.markers.append(marker)
        if window is not None:
            batch.start = min(batch.start or window[0], window[0])
            batch.end = window[1]
        if len(batch.markers) == self.endpoint.max_ids:
            self.send(self.batches.pop(key))
        return True

    def send(self, batch: _Batch) -> None:
        """Lease the batch's markers, then queue the Posts whose lease this tick won."""
        leased = self.deps.registry.lease_due_many(batch.markers, lease=self.lease, until=self.lease_until)
        self.summary.already_leased += len(batch.markers) - len(leased)
        self.summary.planned += len(leased)
        if leased:
            account_id = batch.markers[0].account_id
            self.outbox.add(_message(self.endpoint, account_id, leased, self.scheduled_time, batch.start, batch.end))

    def finish(self) -> None:
        for batch in self.batches.values():
            self.send(batch)
        self.batches.clear()
        self.outbox.flush()


def plan(
    endpoint: Endpoint,
    scheduled_time: datetime,
    *,
    deps: PlannerDeps,
    interval: timedelta | None = None,
    deadline: Deadline | None = None,
) -> PlanSummary:
    """Queue the Posts of `endpoint` due at or before `scheduled_time`, oldest first, as far as the contract's
    per-minute limit serves them before the next tick (`interval` away); returns what was planned and what not."""
    summary = PlanSummary(endpoint=endpoint.value, scheduled_time=to_iso(scheduled_time))
    state = deps.app_state.get()
    summary.paused = _paused(deps, state)
    if summary.paused:
        count("PlanningPaused")
        logger.error("planning paused", extra={"endpoint": endpoint.value, "reason": summary.paused})
        # Nothing is streamed while paused: a cheap read tells how late collection falls (any account's Posts).
        summary.oldest_due_at = deps.registry.oldest_due(endpoint, summary.scheduled_time)
        _observe_staleness(summary, scheduled_time, interval)
        return summary
    summary.capacity_calls = capacity_calls(state.rate_limits.get(endpoint), interval)
    tick = _Plan(endpoint, scheduled_time, deps, summary)
    for marker in deps.registry.iter_due(endpoint, summary.scheduled_time):
        summary.due += 1
        if deadline is not None and not deadline.allows(0):
            summary.deferred += 1
            waiting = True
        else:
            waiting = _consider(tick, marker)
        if waiting and summary.oldest_due_at is None:  # oldest due first: the first one waiting is the most overdue
            summary.oldest_due_at = marker.next_due_at
    tick.finish()
    _emit(summary)
    _observe_staleness(summary, scheduled_time, interval)
    logger.info("planned collection", extra={"plan": summary.as_dict()})
    return summary


def _consider(tick: _Plan, marker: DueMarker) -> bool:
    """Plan or defer one due Post; False when it is not waiting for the collector (skipped, or its account needs
    re-authorization)."""
    summary = tick.summary
    if tick.endpoint.is_time_series and not marker.account_id:
        summary.skipped += 1  # series need the owner's tokens; such markers are never created
        return False
    if not tick.account_ok(marker.account_id):
        summary.needs_reauth += 1
        return False
    window = None
    if tick.endpoint is Endpoint.HISTORICAL:
        last_hour = parse_iso(marker.last_hour_collected) if marker.last_hour_collected else None
        window = historical_window(marker.tweet_id, last_hour, tick.scheduled_time)
        if window is None:
            summary.skipped += 1  # created within the current hour: nothing whole to ask for yet
            return False
    if not tick.add(marker, window, capacity=summary.capacity_calls):
        summary.deferred += 1
    return True


def staleness(oldest_due_at: str | None, at: datetime, interval: timedelta | None) -> tuple[float, float | None]:
    """How late a Post due at `oldest_due_at` is at the tick `at`, in seconds and in schedule periods (`interval`;
    None when unknown); 0 when nothing is overdue. A healthy endpoint stays under 1 period: a Post falls due at most a
    period before the tick that queues it."""
    late = max(0.0, (at - parse_iso(oldest_due_at)).total_seconds()) if oldest_due_at else 0.0
    return late, (late / interval.total_seconds() if interval else None)


def _observe_staleness(summary: PlanSummary, scheduled_time: datetime, interval: timedelta | None) -> None:
    summary.oldest_overdue_seconds, summary.oldest_overdue_periods = staleness(
        summary.oldest_due_at, scheduled_time, interval
    )


def publish_staleness(summary: PlanSummary) -> None:
    """Publish a tick's staleness gauges, per endpoint. The handler calls it, as its metrics are flushed there too:
    plan() itself prints nothing (benchmarks and scripts run it)."""
    values = {"OldestOverdueSeconds": (summary.oldest_overdue_seconds, MetricUnit.Seconds)}
    if summary.oldest_overdue_periods is not None:
        values["OldestOverdueSchedulePeriods"] = (summary.oldest_overdue_periods, MetricUnit.NoUnit)
    gauges(values, endpoint=summary.endpoint)


def _paused(deps: PlannerDeps, state: AppState) -> str | None:
    """Why the app cannot collect now, or None. A changed app secret lifts a pause (the operator replaced it)."""
    try:
        deps.load_app(fresh=state.needs_credentials)  # flagged: the operator may have just replaced it
    except AppSecretPlaceholder as exc:
        deps.app_state.flag_credentials(str(exc), secret_version=deps.secret_version(), now=to_iso(utc_now()))
        return str(exc)
    if not state.needs_credentials:
        return None
    if state.paused_for(deps.secret_version()):
        return f"the app's credentials were refused ({state.credentials_error}); replace the app secret to resume"
    deps.app_state.clear_credentials()
    logger.info("app secret changed since its credentials were refused: planning resumes")
    return None


def _emit(summary: PlanSummary) -> None:
    count("PlannedPosts", summary.planned)
    count("PlannedMessages", summary.messages)
    count("DeferredPosts", summary.deferred)
    count("PostsOfAccountsNeedingReauth", summary.needs_reauth)


def _message(
    endpoint: Endpoint,
    account_id: str,
    tweet_ids: list[str],
    scheduled_time: datetime,
    window_start: datetime | None,
    window_end: datetime | None,
) -> CollectMessage:
    return CollectMessage(
        endpoint=endpoint,
        tweet_ids=tweet_ids,
        account_id=account_id or None,
        scheduled_time=scheduled_time,
        start=window_start,
        end=window_end if window_start is not None else None,
    )
