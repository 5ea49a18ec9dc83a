"""MetricsTable: one item per Post per /totals snapshot, one per Post per hour for /28hr and /historical."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import InvalidCursor, Page, decode_cursor, encode_cursor, plain, query_pages

_CURSOR_KEYS: Final = frozenset({"pk", "sk"})


@dataclass(frozen=True, slots=True)
class MetricPoint:
    tweet_id: str
    endpoint: Endpoint
    at: str  # the snapshot's scheduled time (/totals) or the hour start (time series)
    metrics: dict[str, int]
    collected_at: str
    account_id: str = ""

    def to_item(self) -> dict[str, Any]:
        return {
            "pk": f"{self.tweet_id}#{self.endpoint.value}",
            "sk": self.at,
            "metrics": dict(self.metrics),
            "collected_at": self.collected_at,
            "account_id": self.account_id,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> MetricPoint:
        tweet_id, endpoint = item["pk"].rsplit("#", 1)
        return cls(
            tweet_id=tweet_id,
            endpoint=Endpoint(endpoint),
            at=item["sk"],
            metrics=plain(item.get("metrics") or {}),
            collected_at=item.get("collected_at", ""),
            account_id=item.get("account_id", ""),
        )


@dataclass(slots=True)
class WriteStats:
    items: int = 0
    batch_write_calls: int = 0  # BatchWriteItem requests sent, retries of UnprocessedItems included
    by_endpoint: dict[str, int] = field(default_factory=dict)


class MetricsDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def put_points(self, points: Iterable[MetricPoint]) -> WriteStats:
        """Upsert points with boto3's batch writer (BatchWriteItem, 25 per call, UnprocessedItems retried).

        overwrite_by_pkeys de-duplicates a key repeated within one batch, which BatchWriteItem would reject.
        """
        stats = WriteStats()
        events = self.table.meta.client.meta.events

        def count_call(**_: Any) -> None:
            stats.batch_write_calls += 1

        events.register("before-call.dynamodb.BatchWriteItem", count_call)
        try:
            with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for point in points:
                    batch.put_item(Item=point.to_item())
                    stats.items += 1
                    stats.by_endpoint[point.endpoint.value] = stats.by_endpoint.get(point.endpoint.value, 0) + 1
        finally:
            events.unregister("before-call.dynamodb.BatchWriteItem", count_call)
        return stats

    def query_points(
        self,
        tweet_id: str,
        endpoint: Endpoint,
        *,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        descending: bool = False,
    ) -> Page[MetricPoint]:
        """Points of one Post and endpoint with start <= at <= end, oldest first unless descending."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, not {limit}")
        if start and end and start > end:
            raise ValueError(f"start {start} is after end {end}")
        condition: Any = Key("pk").eq(f"{tweet_id}#{endpoint.value}")
        if start and end:
            condition &= Key("sk").between(start, end)
        elif start:
            condition &= Key("sk").gte(start)
        elif end:
            condition &= Key("sk").lte(end)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "Limit": limit,
            "ScanIndexForward": not descending,
        }
        exclusive_start = decode_cursor(
            cursor, required_keys=_CURSOR_KEYS, pinned={"pk": f"{tweet_id}#{endpoint.value}"}
        )
        if exclusive_start and not (start or "") <= exclusive_start["sk"] <= (end or "\uffff"):
            # DynamoDB refuses a start key outside the key condition: it came from a query with other bounds.
            raise InvalidCursor("cursor lies outside the from/to range")
        if exclusive_start:
            kwargs["ExclusiveStartKey"] = exclusive_start
        response = self.table.query(**kwargs)
        return Page(
            items=[MetricPoint.from_item(item) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )

    def latest_point(self, tweet_id: str, endpoint: Endpoint) -> MetricPoint | None:
        page = self.query_points(tweet_id, endpoint, limit=1, descending=True)
        return page.items[0] if page.items else None

    def purge_points(self, tweet_id: str) -> int:
        """Delete every point of a Post on every endpoint; returns how many were deleted."""
        deleted = 0
        with self.table.batch_writer() as batch:
            for endpoint in Endpoint:
                for item in query_pages(
                    self.table,
                    KeyConditionExpression=Key("pk").eq(f"{tweet_id}#{endpoint.value}"),
                    ProjectionExpression="pk, sk",
                ):
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                    deleted += 1
        return deleted
