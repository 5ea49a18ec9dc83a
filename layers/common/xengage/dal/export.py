"""What the analytics export reads and writes (docs/DESIGN.md, "The analytics export").

Reads, never a Scan: the tracked Posts in a fixed order (ListIndex: the app's Posts, then each account's by user
id), a day of each Post's metric items (/totals snapshots: one Query a Post; hour buckets: the day items, a
BatchGetItem of 50 Posts) and writes the export's Parquet objects (S3) under deterministic keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table, s3_client
from xengage.dal.metrics import MetricPoint
from xengage.dal.paging import batch_get, query_pages
from xengage.dal.registry import APP_CONTEXT
from xengage.dal.series import day_hours, hour_at

ACCOUNTS_LIST: Final = "ACCOUNTS"
DELETE_OBJECTS_MAX: Final = 1000  # keys per DeleteObjects request
TIME_SERIES: Final = (Endpoint.HOURLY_28HR, Endpoint.HISTORICAL)


@dataclass(frozen=True, slots=True)
class ListedPost:
    """A tracked Post where the listing found it: `context` is APP_CONTEXT or the account's user id."""

    context: str
    tweet_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class ListPosition:
    """Where a listing resumes: strictly after `after` (a tweet id) in `context`, or at its start (None)."""

    context: str = APP_CONTEXT
    after: str | None = None


class ExportDal:
    def __init__(self, registry_table: str, metrics_table: str, bucket: str) -> None:
        self.registry_table = registry_table
        self.metrics_table = metrics_table
        self.bucket = bucket

    # --- the registry: tracked Posts in a stable order ----------------------------------------------------------

    def iter_posts(self, start: ListPosition) -> Iterator[ListedPost]:
        """Every tracked Post from `start` on: the app's (bearer-only) Posts first, then each account's, accounts
        by user id and Posts by tweet id (ListIndex sort keys), so a listing resumed from a position goes on
        exactly where the last one stopped."""
        if start.context == APP_CONTEXT:
            yield from self._posts_of(APP_CONTEXT, start.after)
            accounts = self._account_ids(None)
        else:
            accounts = self._account_ids(start.context)
        for user_id in accounts:
            yield from self._posts_of(user_id, start.after if user_id == start.context else None)

    def _account_ids(self, from_user_id: str | None) -> Iterator[str]:
        bound = Key("list_sk").gte(from_user_id) if from_user_id is not None else None
        for item in self._listing(ACCOUNTS_LIST, bound, "list_sk"):
            yield str(item["list_sk"])

    def _posts_of(self, context: str, after: str | None) -> Iterator[ListedPost]:
        bound = Key("list_sk").gt(after) if after is not None else None
        for item in self._listing(f"POSTS#{context}", bound, "tweet_id, account_id"):
            yield ListedPost(context, str(item["tweet_id"]), str(item.get("account_id") or ""))

    def _listing(self, list_pk: str, bound: Any, projection: str) -> Iterator[dict[str, Any]]:
        """One ListIndex partition in sort-key order, from `bound` (a condition on list_sk) when given."""
        condition: Any = Key("list_pk").eq(list_pk)
        return query_pages(
            dynamodb_table(self.registry_table),
            IndexName="ListIndex",
            KeyConditionExpression=condition & bound if bound is not None else condition,
            ProjectionExpression=projection,
        )

    # --- the metrics of one UTC day -----------------------------------------------------------------------------

    def totals_of_day(self, tweet_id: str, day: str) -> list[MetricPoint]:
        """The Post's /totals snapshots taken on `day` (YYYY-MM-DD): one Query of its snapshot items."""
        items = query_pages(
            dynamodb_table(self.metrics_table),
            KeyConditionExpression=Key("pk").eq(f"{tweet_id}#{Endpoint.TOTALS.value}")
            & Key("sk").between(day, day + "~"),
        )
        return [MetricPoint.from_item(item) for item in items]

    def hours_of_day(self, tweet_ids: Sequence[str], day: str) -> dict[Endpoint, list[MetricPoint]]:
        """The hour buckets of `day` of each Post on /28hr and /historical: their day items, BatchGetItem."""
        keys = [{"pk": f"{tweet_id}#{endpoint.value}", "sk": day} for tweet_id in tweet_ids for endpoint in TIME_SERIES]
        found: dict[Endpoint, list[MetricPoint]] = {endpoint: [] for endpoint in TIME_SERIES}
        for item in batch_get(self.metrics_table, keys, consistent=False):
            tweet_id, endpoint_name = item["pk"].rsplit("#", 1)
            endpoint = Endpoint(endpoint_name)
            found[endpoint] += [
                MetricPoint(tweet_id, endpoint, hour_at(day, hour), values, item.get("c", ""), item.get("a", ""))
                for hour, values in day_hours(item).items()
            ]
        return found

    # --- the bucket ---------------------------------------------------------------------------------------------

    def put_object(self, key: str, body: bytes) -> None:
        s3_client().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet")

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [entry["Key"] for entry in page.get("Contents", [])]
        return keys

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Delete objects (DeleteObjects, 1,000 a request); raises when S3 reports any it could not delete."""
        pending = list(keys)
        for offset in range(0, len(pending), DELETE_OBJECTS_MAX):
            chunk = pending[offset : offset + DELETE_OBJECTS_MAX]
            response = s3_client().delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
            )
            errors: list[Mapping[str, Any]] = response.get("Errors", [])
            if errors:
                raise RuntimeError(f"S3 did not delete {len(errors)} object(s): {errors[0].get('Code')}")
        return len(pending)
