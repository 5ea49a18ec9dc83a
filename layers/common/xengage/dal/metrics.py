"""MetricsTable: one item per Post per /totals snapshot, one per Post and UTC day for /28hr and /historical.

The day items' shape is in `xengage.dal.series`; here are the reads and writes of both kinds.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table, is_conditional_failure
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
from xengage.dal.rollups import (
    MAX_TRANSACTION_ITEMS,
    ROLLED_UP,
    Sums,
    Transaction,
    delete_action,
    deltas,
    rollup_hours,
    rollup_pk,
    transact_write,
    update_action,
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
from xengage.observability import tracer

_CURSOR_KEYS: Final = frozenset({"pk", "sk"})
MAX_DAY_WRITE_ROUNDS: Final = 6  # conditional day-item writes retried after another writer changed the item


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
    update_calls: int = 0  # UpdateItem / DeleteItem requests of day items of Posts without an account
    transact_calls: int = 0  # TransactWriteItems requests: day items with their rollups' differences
    transacted_days: int = 0  # day items those transactions wrote
    rollup_writes: int = 0  # rollup items updated (ADD) by those transactions
    get_calls: int = 0  # BatchGetItem / GetItem requests reading the day items before writing them
    item_writes: int = 0  # items put or updated
    hours_unchanged: int = 0  # hour buckets not written: the day item already holds them as they are
    by_endpoint: dict[str, int] = field(default_factory=dict)


class MetricsDal:
    def __init__(self, table_name: str, rollups_table: str) -> None:
        self.table_name = table_name
        self.rollups_table = rollups_table

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    @tracer.capture_method(capture_response=False)
    def put_points(self, points: Iterable[MetricPoint], *, keep_stored: bool = False) -> WriteStats:
        """Store points: /totals snapshots as items of their own, hour buckets into their day items.

        Day items are read first (BatchGetItem) so that only days whose hours changed are written, each with the
        difference it makes to its account's rollup in the same TransactWriteItems (a Post without an account:
        one conditional UpdateItem). `keep_stored` writes only the hours a day item lacks (the migration from hour
        items: what the collector stored since is newer).
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
        if days:
            self._write_days(list(days.values()), stats, keep_stored=keep_stored)
        self._batch_put([point.to_item() for point in snapshots], stats)
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

    def _write_days(self, writes: list[DayWrite], stats: WriteStats, *, keep_stored: bool) -> None:
        """Write the changed hours of each day, with its rollup's difference (docs/DESIGN.md, "Rollups")."""
        by_key = {(write.pk, write.day): write for write in writes}
        stored = self._read_days(list(by_key), stats, consistent=False)

        def change(key: tuple[str, str], item: Mapping[str, Any] | None) -> DayChange | None:
            return _hours_change(by_key[key], item, stats, keep_stored=keep_stored)

        self._transition(stored, change, stats)

    def _read_days(
        self, keys: list[tuple[str, str]], stats: WriteStats, *, consistent: bool
    ) -> dict[tuple[str, str], Mapping[str, Any] | None]:
        found = {
            (item["pk"], item["sk"]): item
            for item in batch_get(self.table_name, [{"pk": pk, "sk": sk} for pk, sk in keys], consistent=consistent)
        }
        stats.get_calls += ceil_div(len(keys), BATCH_GET_MAX)
        return {key: found.get(key) for key in keys}

    def _transition(
        self,
        stored: dict[tuple[str, str], Mapping[str, Any] | None],
        change: Callable[[tuple[str, str], Mapping[str, Any] | None], DayChange | None],
        stats: WriteStats,
    ) -> None:
        """Apply `change` to each day item as read; those another writer changed first are read again (consistent)
        and changed anew, up to MAX_DAY_WRITE_ROUNDS: no writer's hours are overwritten unseen."""
        for attempt in range(MAX_DAY_WRITE_ROUNDS):
            if attempt:
                # Conflicting transactions are cancelled, not queued: a short jittered pause spreads the retries.
                time.sleep(random.uniform(0, 0.02 * 2**attempt))
            changes = [found for key, item in stored.items() if (found := change(key, item)) is not None]
            lost = self._apply(changes, stats)
            if not lost:
                return
            stored = self._read_days(lost, stats, consistent=True)
        raise RuntimeError(
            f"day items {sorted(stored)[:3]} kept changing under this write ({MAX_DAY_WRITE_ROUNDS} rounds)"
        )

    def _apply(self, changes: list[DayChange], stats: WriteStats) -> list[tuple[str, str]]:
        """Write the changes; return the keys of those not written (their item changed since it was read)."""
        lost: list[tuple[str, str]] = []
        transaction = self._transaction()
        for item_change in sorted(changes, key=lambda found: (found.endpoint, found.day)):
            if not item_change.deltas:  # nothing for any rollup: a plain conditional write
                if not self._write_alone(item_change, stats):
                    lost.append(item_change.key)
                continue
            if transaction.size_with(item_change.endpoint, item_change.day, item_change.deltas) > MAX_TRANSACTION_ITEMS:
                lost += self._commit(transaction, stats)
                transaction = self._transaction()
            transaction.add_day(
                item_change.action(self.table_name), item_change.endpoint, item_change.day, item_change.deltas
            )
            transaction.keys.append(item_change.key)
        return lost + self._commit(transaction, stats)

    def _transaction(self) -> Transaction:
        return Transaction(self.table_name, self.rollups_table)

    def _write_alone(self, item_change: DayChange, stats: WriteStats) -> bool:
        stats.update_calls += 1
        key = dict(zip(("pk", "sk"), item_change.key, strict=True))
        if item_change.after is None:
            written = _delete_if(self.table, key, item_change.update)
        else:
            written = item_change.update.apply(self.table, key)
        stats.item_writes += written
        return written

    def _commit(self, transaction: Transaction, stats: WriteStats) -> list[tuple[str, str]]:
        """One TransactWriteItems; the keys of its day items when it was cancelled (nothing of it written)."""
        actions = transaction.actions()
        if not actions:
            return []
        stats.transact_calls += 1
        if not transact_write(actions):
            return transaction.keys
        stats.item_writes += len(transaction.days)
        stats.transacted_days += len(transaction.days)
        stats.rollup_writes += len(actions) - len(transaction.days)
        return []

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

    def query_days(
        self,
        tweet_id: str,
        endpoint: Endpoint,
        *,
        first_day: str | None = None,
        last_day: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[MetricPoint]:
        """A time series' daily figures: per UTC day from first_day to last_day (YYYY-MM-DD, whole days), the sums
        of its hour buckets, at = the day's 00:00, oldest first. The cursor is the last day's key ({pk, sk=day})."""
        if not endpoint.is_time_series:
            raise ValueError(f"/{endpoint.value} has no hour buckets to sum by day")
        pk = f"{tweet_id}#{endpoint.value}"
        after = decode_cursor(cursor, required_keys=_CURSOR_KEYS, pinned={"pk": pk})
        if after and not (first_day or "") <= after["sk"] <= (last_day or "\uffff"):
            raise InvalidCursor("cursor lies outside the from/to range")
        low = after["sk"] + "~" if after else first_day  # "~": past that day's hour items of the previous layout
        items = query_pages(
            self.table,
            KeyConditionExpression=_sk_between(Key("pk").eq(pk), low, last_day + "~" if last_day else None),
            Limit=limit + 2,
        )
        points: list[MetricPoint] = []
        for day, group in itertools.groupby(items, key=lambda item: day_of(item["sk"])):
            if len(points) == limit:
                return Page(items=points, cursor=encode_cursor({"pk": pk, "sk": points[-1].at[:10]}))
            points.append(_day_sum(tweet_id, endpoint, day, list(_day_points(pk, group, descending=False))))
        return Page(items=points, cursor=None)

    def latest_point(self, tweet_id: str, endpoint: Endpoint) -> MetricPoint | None:
        page = self.query_points(tweet_id, endpoint, limit=1, descending=True)
        return page.items[0] if page.items else None

    def purge_points(self, tweet_id: str) -> int:
        """Delete every point of a Post on every endpoint; returns how many points (hours of day items) were deleted.
        Day items go with their rollup's difference, so the account's sums lose exactly what the Post brought."""
        deleted = 0
        stats = WriteStats()
        with self.table.batch_writer() as batch:
            for endpoint in Endpoint:
                days: dict[tuple[str, str], Mapping[str, Any] | None] = {}
                for item in query_pages(
                    self.table, KeyConditionExpression=Key("pk").eq(f"{tweet_id}#{endpoint.value}")
                ):
                    if endpoint.is_time_series and is_day_item(item):
                        days[(item["pk"], item["sk"])] = item
                        deleted += len(day_hours(item))
                    else:
                        batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                        deleted += 1
                self._transition(days, _deletion, stats)
        return deleted

    def roll_up(self, items: Iterable[Mapping[str, Any]]) -> WriteStats:
        """Bring day items stored before rollups existed into their accounts' rollups (`r` set with the ADD of
        their hours, once: an item already rolled up is left as it is)."""
        stats = WriteStats()
        stored: dict[tuple[str, str], Mapping[str, Any] | None] = {
            (item["pk"], item["sk"]): item for item in items if is_day_item(item)
        }
        self._transition(stored, _rolled_up, stats)
        return stats

    def account_days(
        self, account_id: str, endpoint: Endpoint, *, first_day: str, last_day: str
    ) -> Iterator[tuple[str, dict[int, dict[str, int]]]]:
        """(day, sums by hour) of an account's rollup items from first_day to last_day, oldest first."""
        items = query_pages(
            dynamodb_table(self.rollups_table),
            KeyConditionExpression=Key("pk").eq(rollup_pk(account_id, endpoint.value))
            & Key("sk").between(first_day, last_day + "~"),  # "~" sorts after the day's blocks ("#0".."#3")
        )
        for day, blocks in itertools.groupby(items, key=lambda item: day_of(item["sk"])):
            hours: dict[int, dict[str, int]] = {}
            for block in blocks:
                hours.update(rollup_hours(block))
            yield day, dict(sorted(hours.items()))


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


@dataclass(slots=True)
class DayChange:
    """A day item from `before` (as read, None: absent) to `after` (None: deleted): the conditional write, on the
    item still being as read, and what the change brings to each account's rollup of the day."""

    key: tuple[str, str]
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    update: ItemUpdate
    deltas: dict[str, Sums] = field(init=False)

    def __post_init__(self) -> None:
        self.deltas = deltas(self.before, self.after)
        _condition_on(self.update, self.before)

    @property
    def endpoint(self) -> str:
        return self.key[0].rsplit("#", 1)[1]

    @property
    def day(self) -> str:
        return self.key[1]

    def action(self, table_name: str) -> dict[str, Any]:
        key = {"pk": self.key[0], "sk": self.key[1]}
        if self.after is None:
            return delete_action(table_name, key, self.update)
        return update_action(table_name, key, self.update)


def _hours_change(
    write: DayWrite, item: Mapping[str, Any] | None, stats: WriteStats, *, keep_stored: bool
) -> DayChange | None:
    """SET the day's hours with the changed ones (and the columns when they grew); None when nothing changed."""
    columns = columns_for(columns_of(item), write.names())
    changed = write.changed_hours(item, columns, keep_stored=keep_stored)
    if not changed:
        stats.hours_unchanged += len(write.hours)
        return None
    stats.hours_unchanged += len(write.hours) - len(changed)
    stored = item or {}
    after: dict[str, Any] = {
        **stored,
        **write.key,
        HOURS_ATTRIBUTE: join_hours({**hour_texts(item), **changed}),
        # The newest collection time and the account it was made for (hour items being folded in may be older)
        "c": max(write.collected_at, stored.get("c", "")),
        "a": write.account_id or stored.get("a", ""),
        ROLLED_UP: 1,
    }
    update = ItemUpdate()
    for name in (HOURS_ATTRIBUTE, "c", "a", ROLLED_UP):
        update.set(name, after[name])
    if columns != columns_of(item):
        after["m"] = list(columns)
        update.set("m", after["m"])
    return DayChange((write.pk, write.day), item, after, update)


def _deletion(key: tuple[str, str], item: Mapping[str, Any] | None) -> DayChange | None:
    return None if item is None else DayChange(key, item, None, ItemUpdate())


def _rolled_up(key: tuple[str, str], item: Mapping[str, Any] | None) -> DayChange | None:
    if item is None or item.get(ROLLED_UP):
        return None
    update = ItemUpdate()
    update.set(ROLLED_UP, 1)
    return DayChange(key, item, {**item, ROLLED_UP: 1}, update)


def _condition_on(update: ItemUpdate, item: Mapping[str, Any] | None) -> None:
    """The write holds only while the item is as read: its hours, columns, account and rollup flag (what its
    contribution to a rollup is computed from)."""
    if item is None:
        update.conditions.append("attribute_not_exists(pk)")
        return
    update.conditions.append(f"{HOURS_ATTRIBUTE} = :seen_h")
    update.values[":seen_h"] = item.get(HOURS_ATTRIBUTE, "")
    for name in ("m", "a"):
        if name in item:
            update.conditions.append(f"{name} = :seen_{name}")
            update.values[f":seen_{name}"] = list(item[name]) if name == "m" else item[name]
        else:
            update.conditions.append(f"attribute_not_exists({name})")
    update.conditions.append(
        f"attribute_exists({ROLLED_UP})" if item.get(ROLLED_UP) else f"attribute_not_exists({ROLLED_UP})"
    )


def _delete_if(table: Any, key: Mapping[str, str], update: ItemUpdate) -> bool:
    arguments = update.arguments()
    arguments.pop("UpdateExpression", None)
    try:
        table.delete_item(Key=dict(key), **arguments)
    except ClientError as exc:
        if is_conditional_failure(exc):
            return False
        raise
    return True


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


def _day_sum(tweet_id: str, endpoint: Endpoint, day: str, hours: list[MetricPoint]) -> MetricPoint:
    sums: dict[str, int] = {}
    for point in hours:
        for name, value in point.metrics.items():
            sums[name] = sums.get(name, 0) + value
    collected_at = max((point.collected_at for point in hours), default="")
    return MetricPoint(tweet_id, endpoint, hour_at(day, 0), sums, collected_at, hours[-1].account_id if hours else "")


def _hours_of(tweet_id: str, endpoint: Endpoint, item: Mapping[str, Any], descending: bool) -> list[MetricPoint]:
    day, collected_at, account_id = item["sk"], item.get("c", ""), item.get("a", "")
    points = [
        MetricPoint(tweet_id, endpoint, hour_at(day, hour), values, collected_at, account_id)
        for hour, values in day_hours(item).items()
    ]
    return points[::-1] if descending else points
