"""MetricsTable: one item per Post per /totals snapshot, one per Post and UTC day for /28hr and /historical.

The day items' shape is in `xengage.dal.series`; here are the reads and writes of both kinds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import (
    BATCH_GET_MAX,
    InvalidCursor,
    Page,
    batch_get,
    ceil_div,
    decode_cursor,
    encode_cursor,
    plain,
    query_pages,
)
from xengage.dal.series import (
    HOURS_ATTRIBUTE,
    HOURS_PER_DAY,
    DayWrite,
    columns_for,
    columns_of,
    day_hours,
    day_of,
    hour_at,
    hour_of,
    hour_texts,
    is_day_item,
    join_hours,
)
from xengage.dal.updates import ItemUpdate
from xengage.timeutil import snowflake_created_at

_CURSOR_KEYS: Final = frozenset({"pk", "sk"})
MAX_DAY_WRITE_ROUNDS: Final = 4  # conditional day-item updates retried after another writer changed the item


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
    items: int = 0  # points stored (upserted, or found already stored as they are)
    batch_write_calls: int = 0  # BatchWriteItem requests sent, retries of UnprocessedItems included
    update_calls: int = 0  # UpdateItem requests: hours added to a day item that exists or that they do not fill
    get_calls: int = 0  # BatchGetItem / GetItem requests reading the day items before writing them
    item_writes: int = 0  # items put or updated
    hours_unchanged: int = 0  # hour buckets not written: the day item already holds them as they are
    by_endpoint: dict[str, int] = field(default_factory=dict)


class MetricsDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def put_points(self, points: Iterable[MetricPoint], *, keep_stored: bool = False) -> WriteStats:
        """Store points: /totals snapshots as items of their own, hour buckets into their day items.

        Day items are read first (BatchGetItem) so that only hours whose values changed are written: a day the
        answer fills whole (from the Post's creation hour) and that is not stored yet is put in a batch, any other
        day gets one UpdateItem setting just its changed hours. `keep_stored` writes only the hours a day item
        lacks (the migration from hour items: what the collector stored since is newer).
        """
        stats = WriteStats()
        snapshots: list[MetricPoint] = []
        days: dict[tuple[str, str], DayWrite] = {}
        for point in points:
            stats.items += 1
            stats.by_endpoint[point.endpoint.value] = stats.by_endpoint.get(point.endpoint.value, 0) + 1
            if point.endpoint.is_time_series:
                _add_hour(days, point)
            else:
                snapshots.append(point)
        puts = [point.to_item() for point in snapshots]
        if days:
            puts += self._write_days(list(days.values()), stats, keep_stored=keep_stored)
        self._batch_put(puts, stats)
        return stats

    def _batch_put(self, items: list[dict[str, Any]], stats: WriteStats) -> None:
        """boto3's batch writer (BatchWriteItem, 25 per call, UnprocessedItems retried); overwrite_by_pkeys
        de-duplicates a key repeated within one batch, which BatchWriteItem would reject."""
        if not items:
            return
        events = self.table.meta.client.meta.events

        def count_call(**_: Any) -> None:
            stats.batch_write_calls += 1

        events.register("before-call.dynamodb.BatchWriteItem", count_call)
        try:
            with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for item in items:
                    batch.put_item(Item=item)
        finally:
            events.unregister("before-call.dynamodb.BatchWriteItem", count_call)
        stats.item_writes += len(items)

    def _write_days(self, writes: list[DayWrite], stats: WriteStats, *, keep_stored: bool) -> list[dict[str, Any]]:
        """Update the day items that need it; return the whole new days to put."""
        keys = [write.key for write in writes]
        stored = {(item["pk"], item["sk"]): item for item in batch_get(self.table_name, keys, consistent=False)}
        stats.get_calls += ceil_div(len(keys), BATCH_GET_MAX)
        puts: list[dict[str, Any]] = []
        for write in writes:
            item = stored.get((write.pk, write.day))
            if item is None and write.covers_day_from(_first_hour(write)):
                puts.append(write.full_item(columns_for(columns_of(None), write.names())))
            else:
                self._update_day(write, item, stats, keep_stored=keep_stored)
        return puts

    def _update_day(
        self, write: DayWrite, item: Mapping[str, Any] | None, stats: WriteStats, *, keep_stored: bool
    ) -> None:
        """Write the changed hours into the day, on the condition that the item is as it was read; when another
        writer got there first, read the item again and redo the difference."""
        for _ in range(MAX_DAY_WRITE_ROUNDS):
            columns = columns_for(columns_of(item), write.names())
            changed = write.changed_hours(item, columns, keep_stored=keep_stored)
            written = not changed or self._write_day(write, _day_update(write, item, columns, changed), stats)
            if written:
                stats.hours_unchanged += len(write.hours) - len(changed)
                return
            item = next(batch_get(self.table_name, [write.key], consistent=True), None)
            stats.get_calls += 1
        raise RuntimeError(f"day item {write.key} kept changing under this write ({MAX_DAY_WRITE_ROUNDS} rounds)")

    def _write_day(self, write: DayWrite, update: ItemUpdate, stats: WriteStats) -> bool:
        """One conditional UpdateItem of a day item; False when the item changed since it was read."""
        stats.update_calls += 1
        written = update.apply(self.table, write.key)
        stats.item_writes += written
        return written

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
        """Points of one Post and endpoint with start <= at <= end, oldest first unless descending.

        The cursor is the last point's key ({pk, sk = its time}) for hour buckets too, so it means the same on
        either layout of a time series.
        """
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, not {limit}")
        if start and end and start > end:
            raise ValueError(f"start {start} is after end {end}")
        pk = f"{tweet_id}#{endpoint.value}"
        after = decode_cursor(cursor, required_keys=_CURSOR_KEYS, pinned={"pk": pk})
        if after and not (start or "") <= after["sk"] <= (end or "\uffff"):
            # DynamoDB refuses a start key outside the key condition: it came from a query with other bounds.
            raise InvalidCursor("cursor lies outside the from/to range")
        if endpoint.is_time_series:
            return self._hour_points(pk, _Range(start, end, after["sk"] if after else None, descending), limit)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": _sk_between(Key("pk").eq(pk), start, end),
            "Limit": limit,
            "ScanIndexForward": not descending,
        }
        if after:
            kwargs["ExclusiveStartKey"] = after
        response = self.table.query(**kwargs)
        return Page(
            items=[MetricPoint.from_item(item) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )

    def _hour_points(self, pk: str, bounds: _Range, limit: int) -> Page[MetricPoint]:
        """Hour buckets from the day items (and any items of the previous layout) of `bounds`, a page of them."""
        low, high = bounds.days()
        items = query_pages(
            self.table,
            KeyConditionExpression=_sk_between(Key("pk").eq(pk), low, high),
            ScanIndexForward=not bounds.descending,
            Limit=ceil_div(limit, HOURS_PER_DAY) + 2,  # a page of whole days, a partial first one, and one beyond
        )
        points: list[MetricPoint] = []
        for _day, group in itertools.groupby(items, key=lambda item: day_of(item["sk"])):
            points += (point for point in _day_points(pk, group, bounds.descending) if bounds.holds(point.at))
            if len(points) > limit:
                break
        more = len(points) > limit
        points = points[:limit]
        return Page(items=points, cursor=encode_cursor({"pk": pk, "sk": points[-1].at}) if more else None)

    def latest_point(self, tweet_id: str, endpoint: Endpoint) -> MetricPoint | None:
        page = self.query_points(tweet_id, endpoint, limit=1, descending=True)
        return page.items[0] if page.items else None

    def purge_points(self, tweet_id: str) -> int:
        """Delete every point of a Post on every endpoint; returns how many points (hours of day items) were deleted."""
        deleted = 0
        with self.table.batch_writer() as batch:
            for endpoint in Endpoint:
                for item in query_pages(
                    self.table, KeyConditionExpression=Key("pk").eq(f"{tweet_id}#{endpoint.value}")
                ):
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                    deleted += len(day_hours(item)) if is_day_item(item) else 1
        return deleted


@dataclass(frozen=True, slots=True)
class _Range:
    """The hours a page may hold: start <= at <= end, and strictly beyond `after` (the cursor) in reading order."""

    start: str | None
    end: str | None
    after: str | None
    descending: bool

    def days(self) -> tuple[str | None, str | None]:
        """Sort-key bounds of the days to read; "~" sorts after a day's hour items of the previous layout."""
        low, high = self.start, self.end
        if self.after is not None:
            low, high = (low, self.after) if self.descending else (self.after, high)
        return (day_of(low) if low else None, day_of(high) + "~" if high else None)

    def holds(self, at: str) -> bool:
        if (self.start and at < self.start) or (self.end and at > self.end):
            return False
        if self.after is None:
            return True
        return at < self.after if self.descending else at > self.after


def _sk_between(condition: Any, low: str | None, high: str | None) -> Any:
    if low and high:
        return condition & Key("sk").between(low, high)
    if low:
        return condition & Key("sk").gte(low)
    if high:
        return condition & Key("sk").lte(high)
    return condition


def _add_hour(days: dict[tuple[str, str], DayWrite], point: MetricPoint) -> None:
    pk, day = f"{point.tweet_id}#{point.endpoint.value}", day_of(point.at)
    write = days.get((pk, day))
    if write is None:
        write = days[(pk, day)] = DayWrite(pk=pk, day=day, account_id=point.account_id)
    write.hours[hour_of(point.at)] = point.metrics
    write.collected_at = max(write.collected_at, point.collected_at)


def _first_hour(write: DayWrite) -> int:
    """The first hour of the day a Post can have: its creation hour on the day it was created, else 0."""
    created = snowflake_created_at(write.pk.rsplit("#", 1)[0])
    return created.hour if created.strftime("%Y-%m-%d") == write.day else 0


def _day_update(
    write: DayWrite, item: Mapping[str, Any] | None, columns: tuple[str, ...], changed: Mapping[int, str]
) -> ItemUpdate:
    """SET the day's hours with the changed ones (and the columns, when they grew), on the condition that the item
    is still as it was read: a concurrent writer's hours are never overwritten unseen."""
    stored = item or {}
    update = ItemUpdate()
    update.set(HOURS_ATTRIBUTE, join_hours({**hour_texts(item), **changed}))
    # The newest collection time and the account it was made for (hour items being folded in may be older)
    update.set("c", max(write.collected_at, stored.get("c", "")))
    update.set("a", write.account_id or stored.get("a", ""))
    if columns != columns_of(item):
        update.set("m", list(columns))
    if item is None:
        update.conditions.append("attribute_not_exists(pk)")
        return update
    update.conditions.append(f"{HOURS_ATTRIBUTE} = :seen_h")
    update.values[":seen_h"] = stored.get(HOURS_ATTRIBUTE, "")
    if "m" in item:
        update.conditions.append("m = :seen_m")
        update.values[":seen_m"] = list(columns_of(item))
    else:
        update.conditions.append("attribute_not_exists(m)")
    return update


def _day_points(pk: str, group: Iterable[Mapping[str, Any]], descending: bool) -> Iterator[MetricPoint]:
    """One day's hour buckets from its day item and any hour items of the previous layout (the day item wins)."""
    tweet_id, endpoint_name = pk.rsplit("#", 1)
    endpoint = Endpoint(endpoint_name)
    items = list(group)
    if len(items) == 1 and is_day_item(items[0]):  # the common case: hours come out of the item in order
        yield from _hours_of(tweet_id, endpoint, items[0], descending)
        return
    by_hour: dict[str, MetricPoint] = {}
    for item in sorted(items, key=is_day_item):  # hour items first: the day item's hours replace theirs
        if is_day_item(item):
            by_hour.update((point.at, point) for point in _hours_of(tweet_id, endpoint, item, descending))
        else:
            by_hour[item["sk"]] = MetricPoint.from_item(item)
    for at in sorted(by_hour, reverse=descending):
        yield by_hour[at]


def _hours_of(tweet_id: str, endpoint: Endpoint, item: Mapping[str, Any], descending: bool) -> list[MetricPoint]:
    day, collected_at, account_id = item["sk"], item.get("c", ""), item.get("a", "")
    points = [
        MetricPoint(tweet_id, endpoint, hour_at(day, hour), values, collected_at, account_id)
        for hour, values in day_hours(item).items()
    ]
    return points[::-1] if descending else points
