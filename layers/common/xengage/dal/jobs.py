"""Live-query jobs in JobsTable (docs/DESIGN.md, "Live queries and jobs"): what a query that did not fit API Gateway's
29 s still has to do, and what every one of its Posts came to.

- `pk=JOB#{id}`, `sk=META`: the query (endpoint, account, engagement types, window), its size, when it was made.
- `pk=JOB#{id}`, `sk=POST#{tweet_id}`: one Post's outcome: `status` (`queued` until a collector settles it, then `ok`
  or a reason code; `rate_limited` / `deferred` while a continuation carries it), its words, its /totals values, the
  hours stored for it (time series), and for /historical `through`, the end of the last window stored: a
  redelivered or continued message starts there, so no window is fetched twice.

Every item expires (`expires_at`, DynamoDB TTL) a week after the job was made; the metrics themselves are in
MetricsTable like every other collection's. Progress is counted from the Post items (one Query of small items), so it
is exact whatever order collectors settle in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import Page, batch_get, decode_cursor, encode_cursor, plain, query_pages

JOB_PREFIX: Final = "JOB#"
META_SK: Final = "META"
POST_PREFIX: Final = "POST#"
QUEUED: Final = "queued"  # not settled by any collector yet
_CURSOR_KEYS: Final = frozenset({"pk", "sk"})


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    endpoint: Endpoint
    total: int  # Posts asked (distinct ids)
    created_at: str
    expires_at: int  # epoch seconds (TTL)
    account_id: str | None = None
    engagement_types: tuple[str, ...] | None = None
    start: str | None = None  # /historical window
    end: str | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": f"{JOB_PREFIX}{self.job_id}",
            "sk": META_SK,
            "endpoint": self.endpoint.value,
            "total": self.total,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }
        optional = {"account_id": self.account_id, "start": self.start, "end": self.end}
        item.update({name: value for name, value in optional.items() if value})
        if self.engagement_types:
            item["engagement_types"] = list(self.engagement_types)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Job:
        types = item.get("engagement_types")
        return cls(
            job_id=str(item["pk"]).removeprefix(JOB_PREFIX),
            endpoint=Endpoint(item["endpoint"]),
            total=int(item["total"]),
            created_at=item["created_at"],
            expires_at=int(item["expires_at"]),
            account_id=item.get("account_id"),
            engagement_types=tuple(types) if types else None,
            start=item.get("start"),
            end=item.get("end"),
        )


@dataclass(frozen=True, slots=True)
class JobPost:
    """One Post of a job, as last settled."""

    tweet_id: str
    status: str = QUEUED
    reason: str | None = None
    metrics: dict[str, int] = field(default_factory=dict)  # /totals values
    refused_metrics: dict[str, dict[str, str]] = field(default_factory=dict)  # metric -> {reason, message}
    first_hour: str | None = None  # time series: the hours stored for it by this job
    last_hour: str | None = None
    through: str | None = None  # /historical: the end of the last window stored
    next_attempt_at: str | None = None
    updated_at: str | None = None

    @property
    def settled(self) -> bool:
        """Final for this job: neither waiting for its first collection nor carried on by a continuation."""
        return self.status not in (QUEUED, "rate_limited", "deferred")

    def to_item(self, job_id: str, expires_at: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": f"{JOB_PREFIX}{job_id}",
            "sk": f"{POST_PREFIX}{self.tweet_id}",
            "status": self.status,
            "expires_at": expires_at,
        }
        optional = {
            "reason": self.reason,
            "metrics": self.metrics,
            "refused_metrics": self.refused_metrics,
            "first_hour": self.first_hour,
            "last_hour": self.last_hour,
            "through": self.through,
            "next_attempt_at": self.next_attempt_at,
            "updated_at": self.updated_at,
        }
        item.update({name: value for name, value in optional.items() if value})
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobPost:
        values = plain(dict(item))
        return cls(
            tweet_id=str(values["sk"]).removeprefix(POST_PREFIX),
            status=values["status"],
            reason=values.get("reason"),
            metrics=dict(values.get("metrics") or {}),
            refused_metrics=dict(values.get("refused_metrics") or {}),
            first_hour=values.get("first_hour"),
            last_hour=values.get("last_hour"),
            through=values.get("through"),
            next_attempt_at=values.get("next_attempt_at"),
            updated_at=values.get("updated_at"),
        )


class JobsDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def create(self, job: Job, posts: Iterable[JobPost], *, until: float) -> bool:
        """The job and every one of its Posts (queued, or settled by the live part of the query): BatchWriteItem calls
        several at a time (10,000 Posts are 400 calls), by `until` (monotonic). False, and no job, when they did not
        all fit: the job item is written last, so a job is readable only once all its Posts are."""
        from xengage.dal.batch import batch_put_within

        items = [post.to_item(job.job_id, job.expires_at) for post in posts]
        if batch_put_within(self.table_name, items, until=until).left:
            return False
        self.table.put_item(Item=job.to_item())
        return True

    def get(self, job_id: str) -> Job | None:
        item = self.table.get_item(Key={"pk": f"{JOB_PREFIX}{job_id}", "sk": META_SK}, ConsistentRead=True).get("Item")
        return Job.from_item(item) if item else None

    def put_posts(self, job: Job, posts: Iterable[JobPost]) -> None:
        """BatchWriteItem (25 a call, unprocessed items retried by boto3's batch writer)."""
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for post in posts:
                batch.put_item(Item=post.to_item(job.job_id, job.expires_at))

    def get_posts(self, job_id: str, tweet_ids: Sequence[str]) -> dict[str, JobPost]:
        keys = [{"pk": f"{JOB_PREFIX}{job_id}", "sk": f"{POST_PREFIX}{tweet_id}"} for tweet_id in tweet_ids]
        posts = (JobPost.from_item(item) for item in batch_get(self.table_name, keys))
        return {post.tweet_id: post for post in posts}

    def page(self, job_id: str, *, limit: int, cursor: str | None) -> Page[JobPost]:
        """The job's Posts in id order, a page of them."""
        pk = f"{JOB_PREFIX}{job_id}"
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(pk) & Key("sk").begins_with(POST_PREFIX),
            "Limit": limit,
            "ConsistentRead": True,
        }
        after = decode_cursor(cursor, required_keys=_CURSOR_KEYS, pinned={"pk": pk})
        if after:
            kwargs["ExclusiveStartKey"] = after
        response = self.table.query(**kwargs)
        return Page(
            items=[JobPost.from_item(item) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )

    def statuses(self, job_id: str) -> dict[str, int]:
        """Posts by status: one Query of the status attribute alone (10,000 Posts read in a few pages)."""
        counts: dict[str, int] = {}
        for status in self._statuses(job_id):
            counts[status] = counts.get(status, 0) + 1
        return counts

    def _statuses(self, job_id: str) -> Iterator[str]:
        items = query_pages(
            self.table,
            KeyConditionExpression=Key("pk").eq(f"{JOB_PREFIX}{job_id}") & Key("sk").begins_with(POST_PREFIX),
            ProjectionExpression="#status",
            ExpressionAttributeNames={"#status": "status"},
            ConsistentRead=True,
        )
        return (str(item["status"]) for item in items)
