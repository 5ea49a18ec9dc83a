"""Live-query jobs over HTTP: a query the 29 s cannot finish answers 202 with a job; GET /jobs/{id} follows it.

The job's remaining Posts run through the collect queue as ordinary messages carrying the job id (pipeline/jobs.py):
the same client, the same shared rate budget, the same continuations as scheduled collection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from xengage.api_client.catalog import Endpoint
from xengage.api_client.deadline import API_GATEWAY_TIMEOUT_SECONDS
from xengage.dal.jobs import QUEUED, Job, JobPost, JobsDal
from xengage.dal.queue import MAX_BATCH_ENTRIES, MAX_DELAY_SECONDS, SendFailed
from xengage.http_api import context, cursors
from xengage.http_api.errors import ApiError, answers
from xengage.http_api.models import JobOut, JobProgress, LivePostResult, MetricPoint, RefusedMetricOut
from xengage.http_api.params import CursorQuery
from xengage.observability import count, logger
from xengage.timeutil import floor_minute, parse_iso, to_iso, utc_now

if TYPE_CHECKING:
    from xengage.pipeline.messages import CollectMessage

router = Router()

# Points of one Post in one page of a time-series job's results; the rest is paged by the stored-metrics route.
MAX_POINTS_PER_POST: Final = 500
JOB_ID_PATTERN: Final = r"^[0-9a-f]{32}$"
NOT_QUEUED: Final = "could not be queued for collection"
# Kept back from the request's time when recording a job: queueing its messages and answering.
RECORD_RESERVE_SECONDS: Final = 3.0


@dataclass(frozen=True, slots=True)
class Handover:
    """A Post the live part did not finish: where its /historical windows start again, and when X takes it."""

    tweet_id: str
    start: datetime | None = None
    retry_at: datetime | None = None


def jobs_store() -> JobsDal:
    store = context.deps().jobs
    if store is None:
        raise RuntimeError("JOBS_TABLE is not set: this function has no jobs table")
    return store


def start_job(job: Job, outcomes: Sequence[JobPost], handovers: Sequence[Handover], *, now: datetime) -> None:
    """Record the job with every Post (settled by the live part, or queued), then queue the rest for the collector.

    Posts whose message SQS refuses end `failed` with the reason: none is left queued with nothing to run it."""
    from xengage.pipeline.jobs import queued, record

    store = jobs_store()
    settled = {post.tweet_id for post in outcomes}
    posts = [*outcomes, *queued(h.tweet_id for h in handovers if h.tweet_id not in settled)]
    if not store.create(job, posts, until=time.monotonic() + seconds_left() - RECORD_RESERVE_SECONDS):
        # Nothing is queued and no job is readable; what the live part fetched is stored all the same.
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "job_not_recorded",
            f"the job's {len(posts)} Posts could not be recorded in time; ask again",
            headers={"Retry-After": "1"},
        )
    unsent = _queue(job, handovers, now=now)
    if unsent:
        failed = [JobPost(tweet_id, status="failed", reason=NOT_QUEUED, updated_at=to_iso(now)) for tweet_id in unsent]
        record(store, job, {}, failed)
    count("JobsStarted")
    logger.info("job started", extra={"job_id": job.job_id, "posts": job.total, "queued": len(handovers)})


def seconds_left() -> float:
    """What the request has left: API Gateway's 29 s, or the function's own remaining time if shorter."""
    context_ = getattr(router, "lambda_context", None)
    if context_ is not None and hasattr(context_, "get_remaining_time_in_millis"):
        return min(API_GATEWAY_TIMEOUT_SECONDS, context_.get_remaining_time_in_millis() / 1000)
    return API_GATEWAY_TIMEOUT_SECONDS


def _queue(job: Job, handovers: Sequence[Handover], *, now: datetime) -> list[str]:
    """One message per batch of Posts that start at the same window; answers the ids SQS refused."""
    entries = [(message.to_body(), delay) for message, delay in _messages(job, handovers, now=now)]
    unsent: list[str] = []
    queue = context.deps().queue
    if queue is None:
        raise RuntimeError("COLLECT_QUEUE_URL is not set: this function cannot queue a job's Posts")
    for offset in range(0, len(entries), MAX_BATCH_ENTRIES):
        chunk = entries[offset : offset + MAX_BATCH_ENTRIES]
        try:
            queue.send_batch([body for body, _ in chunk], delays=[delay for _, delay in chunk])
        except SendFailed:
            logger.exception("job messages not sent", extra={"job_id": job.job_id})
            unsent += [tweet_id for body, _ in chunk for tweet_id in body["tweet_ids"]]
    return unsent


def _messages(job: Job, handovers: Sequence[Handover], *, now: datetime) -> Iterator[tuple[CollectMessage, int]]:
    from xengage.pipeline.messages import CollectMessage

    groups: dict[datetime | None, list[Handover]] = {}
    for handover in handovers:
        groups.setdefault(handover.start, []).append(handover)
    size = job.endpoint.max_ids
    for start, group in groups.items():
        for offset in range(0, len(group), size):
            batch = group[offset : offset + size]
            message = CollectMessage(
                endpoint=job.endpoint,
                tweet_ids=[h.tweet_id for h in batch],
                account_id=job.account_id,
                scheduled_time=floor_minute(now),
                start=start or (parse_iso(job.start) if job.start else None),
                end=parse_iso(job.end) if job.end else None,
                job_id=job.job_id,
                engagement_types=list(job.engagement_types) if job.engagement_types else None,
            )
            yield message, _delay(batch, now=utc_now())  # now, not when the request came: the live part took time


def _delay(batch: Iterable[Handover], *, now: datetime) -> int:
    """Until the latest next attempt of the batch: SQS holds the message until X will take it (at most 15 min)."""
    latest = max((h.retry_at for h in batch if h.retry_at is not None), default=now)
    return min(MAX_DELAY_SECONDS, max(0, math.ceil((latest - now).total_seconds())))


# --- reading a job -------------------------------------------------------------------------------------------------


def job_out(job: Job, *, limit: int, cursor: str | None) -> JobOut:
    store = jobs_store()
    scope = cursors.listing("jobs", job.job_id)
    page = store.page(job.job_id, limit=limit, cursor=cursors.unseal(scope, cursor))
    progress = progress_of(store.statuses(job.job_id), job.total)
    return JobOut(
        job_id=job.job_id,
        endpoint=job.endpoint,
        status="running" if progress.queued or progress.pending else "done",
        created_at=job.created_at,
        account_id=job.account_id,
        start=job.start,
        end=job.end,
        progress=progress,
        results={post.tweet_id: result_of(job, post) for post in page.items},
        next_cursor=cursors.seal(scope, page.cursor),
    )


def progress_of(counts: dict[str, int], total: int) -> JobProgress:
    queued_posts = counts.get(QUEUED, 0)
    pending = counts.get("rate_limited", 0) + counts.get("deferred", 0)
    return JobProgress(
        total=total,
        settled=sum(counts.values()) - queued_posts - pending,
        queued=queued_posts,
        pending=pending,
        by_status=dict(sorted(counts.items())),
    )


def result_of(job: Job, post: JobPost) -> LivePostResult:
    """One Post in the live query's result shape (points read back from the store, where the job put them)."""
    refused = [RefusedMetricOut(metric=metric, **why) for metric, why in sorted(post.refused_metrics.items())]
    pending: dict[str, Any] = {"next_attempt_at": post.next_attempt_at} if post.next_attempt_at else {}
    pending["refused"] = refused or None
    if post.status == QUEUED or not (post.status == "ok" or post.next_attempt_at):
        return LivePostResult(status=post.status, reason=post.reason, **pending)
    if job.endpoint is Endpoint.TOTALS:
        return LivePostResult(status=post.status, reason=post.reason, metrics=post.metrics or None, **pending)
    points, more = _points(job, post)
    return LivePostResult(status=post.status, reason=post.reason, points=points or None, more_points=more, **pending)


def _points(job: Job, post: JobPost) -> tuple[list[MetricPoint], str | None]:
    if not (post.first_hour and post.last_hour):
        return [], None
    page = context.deps().metrics.query_points(
        post.tweet_id, job.endpoint, start=post.first_hour, end=post.last_hour, limit=MAX_POINTS_PER_POST
    )
    wanted = set(job.engagement_types or ())
    points = [
        MetricPoint(at=point.at, metrics={k: v for k, v in point.metrics.items() if not wanted or k in wanted})
        for point in page.items
    ]
    if not page.cursor:
        return points, None
    scope = cursors.listing("metrics", post.tweet_id, job.endpoint.value, post.first_hour, post.last_hour)
    query = {
        "endpoint": job.endpoint.value,
        "from": post.first_hour,
        "to": post.last_hour,
        "cursor": cursors.seal(scope, page.cursor),
    }
    return points, f"tweets/{post.tweet_id}/metrics?{urlencode(query)}"


def require_job(job_id: str) -> Job:
    job = jobs_store().get(job_id)
    if job is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "job_not_found", f"job {job_id} does not exist (or expired after 7 days)")
    return job


@router.get(
    "/jobs/<job_id>",
    summary="A live query's job: progress, and its results page by page",
    description="A POST /engagement query that API Gateway's 29 s cannot finish answers 202 with a job; its Posts are "
    "collected through the queue, sharing the rate budget with scheduled collection. `status` is done when every Post "
    "is settled. `results` has the live query's shape, a page of Posts in id order (`limit`, `cursor`); a time-series "
    f"Post carries at most {MAX_POINTS_PER_POST} points here, and `more_points` pages the rest. Jobs are kept 7 days.",
    tags=["engagement"],
    responses=answers({400: "bad cursor", 404: "no such job (or expired)"}),
)
def get_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="as POST /engagement answered it")],
    limit: Annotated[int, Query(ge=1, le=1000, description="Posts per page (at most 10 on time series)")] = 100,
    cursor: CursorQuery = None,
) -> JobOut:
    job = require_job(job_id)
    if job.endpoint.is_time_series:
        limit = min(limit, 10)
    return job_out(job, limit=limit, cursor=cursor)
