"""Live-query jobs: what the API and the collector both do with a job's Posts (docs/DESIGN.md, "Live queries and jobs").

A query that does not fit API Gateway's 29 s becomes a job: the API stores what it fetched in time, records every
Post of the query in JobsTable (settled, or `queued`), and queues the rest as ordinary collect messages carrying the
job id. The collector runs them like any other message (same client, same shared rate budget, same continuations)
but settles their Posts in the job instead of moving due markers: a job never shifts a tracked Post's schedule.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from xengage.api_client.catalog import Endpoint
from xengage.dal.jobs import QUEUED, Job, JobPost, JobsDal
from xengage.timeutil import to_iso

if TYPE_CHECKING:
    from xengage.api_client.models import PostMetrics

# How long a job (and each of its Posts' outcomes) can be read after it was made.
JOB_LIFETIME: Final = timedelta(days=7)


def new_job(
    endpoint: Endpoint,
    tweet_ids: Sequence[str],
    *,
    account_id: str | None,
    engagement_types: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> Job:
    return Job(
        job_id=secrets.token_hex(16),
        endpoint=endpoint,
        total=len(tweet_ids),
        created_at=to_iso(now),
        expires_at=int((now + JOB_LIFETIME).timestamp()),
        account_id=account_id or None,
        engagement_types=tuple(engagement_types) if engagement_types else None,
        start=to_iso(start) if start else None,
        end=to_iso(end) if end else None,
    )


def refusals(post: PostMetrics) -> dict[str, dict[str, str]]:
    """The metrics asked and not served for the Post, each with why (as `LivePostResult.refused` says it)."""
    return {metric: {"reason": why.reason.value, "message": why.message} for metric, why in post.refusals.items()}


def job_post(post: PostMetrics, endpoint: Endpoint, *, now: datetime, through: str | None = None) -> JobPost:
    """A Post's outcome as the job keeps it: its status and words, /totals values, the hours stored for it."""
    # Imported here: the collector imports this module (its helpers are loaded by then, in either caller)
    from xengage.pipeline.collector import post_hours

    hours = [hour for hour, _ in post_hours(post)] if endpoint.is_time_series else []
    return JobPost(
        tweet_id=post.tweet_id,
        status=post.status,
        reason=post.reason,
        metrics=dict(post.totals) if endpoint is Endpoint.TOTALS and (post.ok or post.pending) else {},
        refused_metrics=refusals(post),
        first_hour=to_iso(min(hours)) if hours else None,
        last_hour=to_iso(max(hours)) if hours else None,
        through=through,
        next_attempt_at=to_iso(post.retry_at) if post.pending and post.retry_at else None,
        updated_at=to_iso(now),
    )


def merged(earlier: JobPost | None, later: JobPost) -> JobPost:
    """A later outcome of the same Post: the hours stored by earlier windows or messages are kept."""
    if earlier is None:
        return later
    firsts = [hour for hour in (earlier.first_hour, later.first_hour) if hour]
    lasts = [hour for hour in (earlier.last_hour, later.last_hour) if hour]
    return dataclasses.replace(
        later,
        first_hour=min(firsts) if firsts else None,
        last_hour=max(lasts) if lasts else None,
        through=later.through or earlier.through,
        metrics=later.metrics or earlier.metrics,
    )


def queued(tweet_ids: Iterable[str]) -> list[JobPost]:
    return [JobPost(tweet_id=tweet_id, status=QUEUED) for tweet_id in tweet_ids]


def waiting(known: Mapping[str, JobPost], tweet_ids: Sequence[str]) -> list[str]:
    """The message's Posts the job still waits for: a redelivered or duplicate message fetches no settled Post."""
    return [tweet_id for tweet_id in tweet_ids if tweet_id not in known or not known[tweet_id].settled]


def history_start(known: Mapping[str, JobPost], tweet_ids: Sequence[str], start: datetime | None) -> str | None:
    """Where /historical starts again: after the windows every one of the Posts has stored already."""
    throughs = [known[tweet_id].through if tweet_id in known else None for tweet_id in tweet_ids]
    if not throughs or not all(throughs):
        return to_iso(start) if start else None
    done = min(through for through in throughs if through)
    return max(done, to_iso(start)) if start else done


def record(jobs: JobsDal, job: Job, known: dict[str, JobPost], outcomes: Iterable[JobPost]) -> None:
    """Write the Posts' outcomes (merged with what the job knew of them) and remember them."""
    updates = [merged(known.get(outcome.tweet_id), outcome) for outcome in outcomes]
    jobs.put_posts(job, updates)
    known.update((update.tweet_id, update) for update in updates)
