"""Planner: turn the due markers of one endpoint into SQS messages for the collector.

Streams DueIndex (never the whole table), groups Posts by auth context — the account whose tokens sign the call,
or the app bearer — and, for /historical, by how many 4-week windows their range needs, into batches of the
endpoint's maximum (250 for /totals, 25 otherwise). A /historical batch asks from the earliest start among its
Posts: that costs no extra call (the window count is the same), where grouping by exact start would cost a call per
distinct start (a first collection starts at each Post's creation hour). Hours a Post already has are upserted
again; hours before a Post existed are dropped by the collector. At most one open batch per group and ten finished
messages are held, so memory stays flat however many Posts are tracked. The cadence that decides when a Post is
next due lives in `pipeline.cadence`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from xengage.api_client.catalog import HISTORICAL_MAX_WINDOW, Endpoint
from xengage.dal import CollectQueue, RegistryDal, collect_queue, registry_dal
from xengage.dal.queue import MAX_BATCH_ENTRIES, SendStats
from xengage.observability import count, logger
from xengage.pipeline.cadence import historical_window
from xengage.pipeline.messages import CollectMessage
from xengage.timeutil import parse_iso, to_iso

# (account_id or "" for the app, /historical: how many 4-week windows the range needs, else 0)
GroupKey = tuple[str, int]


@dataclass(slots=True)
class PlanSummary:
    endpoint: str
    scheduled_time: str
    due: int = 0  # markers found due
    planned: int = 0  # Posts put in a message
    skipped: int = 0  # due but nothing to ask yet (no whole hour for /historical, or no account for a series)
    messages: int = 0
    send_calls: int = 0  # SendMessageBatch requests, resends included
    resent: int = 0
    messages_by_account: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def plan(
    endpoint: Endpoint,
    scheduled_time: datetime,
    *,
    registry: RegistryDal | None = None,
    queue: CollectQueue | None = None,
) -> PlanSummary:
    """Queue every Post of `endpoint` due at or before `scheduled_time`; returns what was sent."""
    registry = registry or registry_dal()
    summary = PlanSummary(endpoint=endpoint.value, scheduled_time=to_iso(scheduled_time))
    outbox = _Outbox(queue or collect_queue(), summary)
    open_batches: dict[GroupKey, list[str]] = {}
    batch_starts: dict[GroupKey, datetime] = {}
    window_end = None

    for marker in registry.iter_due(endpoint, summary.scheduled_time):
        summary.due += 1
        windows_needed = 0
        if endpoint.is_time_series and not marker.account_id:
            summary.skipped += 1  # series need the owner's tokens; such markers are never created
            continue
        if endpoint is Endpoint.HISTORICAL:
            last_hour = parse_iso(marker.last_hour_collected) if marker.last_hour_collected else None
            window = historical_window(marker.tweet_id, last_hour, scheduled_time)
            if window is None:
                summary.skipped += 1  # created within the current hour: nothing whole to ask for yet
                continue
            window_start, window_end = window
            windows_needed = math.ceil((window_end - window_start) / HISTORICAL_MAX_WINDOW)
        key: GroupKey = (marker.account_id, windows_needed)
        batch = open_batches.setdefault(key, [])
        batch.append(marker.tweet_id)
        if windows_needed:
            batch_starts[key] = min(batch_starts.get(key, window_start), window_start)
        summary.planned += 1
        if len(batch) == endpoint.max_ids:
            outbox.add(
                _message(
                    endpoint, key[0], open_batches.pop(key), scheduled_time, batch_starts.pop(key, None), window_end
                )
            )

    for key, batch in open_batches.items():
        outbox.add(_message(endpoint, key[0], batch, scheduled_time, batch_starts.get(key), window_end))
    outbox.flush()

    count("PlannedPosts", summary.planned)
    count("PlannedMessages", summary.messages)
    logger.info("planned collection", extra={"plan": summary.as_dict()})
    return summary


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
