"""Leases and continuations: how work that does not fit one invocation is held and handed on, never lost or doubled.

- The planner **leases** each Post it queues: its due marker moves `LEASE` ahead and names the tick, so a backlog is
  never queued twice, and a message that is lost (dead-lettered) is planned again once the lease runs out.
- The collector **hands on** what it could not fetch (rate-limited, out of time, transient errors): a new message
  with the remaining ids (and, for /historical, the first window not yet stored), delayed until the API will take
  it, while the lease is held until then plus `LEASE`.
- Transient errors that bring no progress are retried with a growing delay and give up after
  `MAX_TRANSIENT_ATTEMPTS` continuations (the Posts end `failed`, asked again at their next regular time). A
  per-minute limit never gives up: it always renews.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from xengage.api_client.catalog import Reason
from xengage.api_client.models import RATE_LIMIT, TRANSIENT, PostMetrics
from xengage.dal.queue import MAX_DELAY_SECONDS
from xengage.pipeline.messages import CollectMessage

# How long a queued Post stays out of the planner's reach without news from the collector: longer than a message can
# wait in SQS before it is dead-lettered (5 receives x 900 s), so only a lost message makes the Post due again. The
# collector extends it whenever it hands the Post on.
LEASE: Final = timedelta(hours=2)
MAX_TRANSIENT_ATTEMPTS: Final = 6
TRANSIENT_BASE_DELAY_SECONDS: Final = 15
# Messages handed on for the same minute come back together; a little spread keeps them from colliding.
RATE_LIMIT_SPREAD_SECONDS: Final = 2


@dataclass(frozen=True, slots=True)
class Continuation:
    message: CollectMessage
    delay_seconds: int
    reason: Reason


def lease_until(moment: datetime) -> datetime:
    return moment + LEASE


def transient_delay_seconds(attempt: int) -> int:
    """15 s, 30 s, 60 s ... capped at SQS's 900 s: a failing API is not hammered."""
    return int(min(MAX_DELAY_SECONDS, TRANSIENT_BASE_DELAY_SECONDS * 2 ** max(0, attempt)))


def next_attempt(message: CollectMessage, posts: Iterable[PostMetrics], *, progressed: bool) -> int:
    """A continuation that follows progress starts counting afresh; one where the API kept failing counts one more;
    one that only ran out of time or allowance counts nothing."""
    if progressed:
        return 0
    failing = any(post.pending_cause == TRANSIENT for post in posts)
    return message.attempt + 1 if failing else message.attempt


def gives_up(message: CollectMessage, posts: list[PostMetrics], *, progressed: bool) -> bool:
    """The API failed every Post transiently, with no progress, for MAX_TRANSIENT_ATTEMPTS continuations in a row."""
    failing_only = all(post.pending_cause == TRANSIENT for post in posts)
    return failing_only and next_attempt(message, posts, progressed=progressed) >= MAX_TRANSIENT_ATTEMPTS


def continuations(
    message: CollectMessage,
    pending: list[PostMetrics],
    resume_from: dict[str, datetime | None],
    *,
    now: datetime,
    progressed: bool,
    rng: random.Random,
) -> list[Continuation]:
    """The messages that carry `pending` Posts on: one per (resume window, reason), delayed to their next attempt."""
    groups: dict[tuple[datetime | None, str], list[PostMetrics]] = {}
    for post in pending:
        groups.setdefault((resume_from.get(post.tweet_id), post.status), []).append(post)
    attempt = next_attempt(message, pending, progressed=progressed)
    found = []
    for (start, status), posts in groups.items():
        reason = Reason(status)
        found.append(
            Continuation(
                message=message.model_copy(
                    update={
                        "tweet_ids": [post.tweet_id for post in posts],
                        "start": start or message.start,
                        "attempt": attempt,
                    }
                ),
                delay_seconds=_delay(posts, now=now, attempt=attempt, progressed=progressed, rng=rng),
                reason=reason,
            )
        )
    return found


def _delay(posts: list[PostMetrics], *, now: datetime, attempt: int, progressed: bool, rng: random.Random) -> int:
    """Until the latest next attempt among the Posts; spread a little for a rate limit; backed off for failures."""
    latest = max((post.retry_at for post in posts if post.retry_at is not None), default=now)
    seconds = max(0, math.ceil((latest - now).total_seconds()))
    causes = {post.pending_cause for post in posts}
    if RATE_LIMIT in causes:
        seconds += rng.randint(0, RATE_LIMIT_SPREAD_SECONDS)
    if TRANSIENT in causes and not progressed:
        seconds = max(seconds, transient_delay_seconds(attempt - 1))
    return min(MAX_DELAY_SECONDS, seconds)
