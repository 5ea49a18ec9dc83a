"""One-off migrations of a deployed stack's tables to the layouts of this version (`tools/`, operator credentials).

MetricsTable: fold hour items (the layout before day items) into day items; run once per table after deploying.

    python -m tools.migrate_series --table <MetricsTableName> --rollups-table <RollupsTableName> [--dry-run]

RollupsTable: add the day items stored before it existed to their accounts' rollups (after migrate_series).

    python -m tools.migrate_rollups --table <MetricsTableName> --rollups-table <RollupsTableName> [--dry-run]

Safe to run while collectors write, and to stop and run again: each Scan page's hour items are written into their
day items only where the day item lacks that hour (what a collector stored since is newer), and deleted only after
that write succeeded. Reads stay right throughout: the API reads both kinds and a day item's hour wins.

Statuses: copy the old StatusTable's items onto the due markers; run it BEFORE deploying (the deploy deletes it).

    python -m tools.migrate_statuses --status-table <StatusTableName> --registry-table <RegistryTableName>
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from boto3.dynamodb.conditions import Attr

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.metrics import MetricPoint, MetricsDal
from xengage.dal.paging import batch_get
from xengage.dal.rollups import ROLLED_UP
from xengage.dal.series import is_day_item
from xengage.dal.status import marker_key
from xengage.dal.updates import ItemUpdate

SCAN_PAGE: Final = 500


@dataclass(slots=True)
class MigrationStats:
    hour_items: int = 0  # items of the previous layout found
    hours_written: int = 0  # hours a day item lacked, written from them
    deleted: int = 0


def _legacy_hour_items(table_name: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of the table's time-series hour items (a one-off Scan: nothing else in the project scans)."""
    for page in _scan_pages(table_name):
        yield [item for item in page if _is_hour_item(item)]


def _scan_pages(table_name: str, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
    table = dynamodb_table(table_name)
    kwargs["Limit"] = SCAN_PAGE
    while True:
        page = table.scan(**kwargs)
        yield page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _is_hour_item(item: dict[str, Any]) -> bool:
    return not item["pk"].endswith("#totals") and not is_day_item(item)


def migrate_hour_items(table_name: str, rollups_table: str, *, dry_run: bool = False) -> MigrationStats:
    stats = MigrationStats()
    metrics = MetricsDal(table_name, rollups_table)
    for items in _legacy_hour_items(table_name):
        stats.hour_items += len(items)
        if dry_run or not items:
            continue
        written = metrics.put_points((MetricPoint.from_item(item) for item in items), keep_stored=True)
        stats.hours_written += written.items - written.hours_unchanged
        with metrics.table.batch_writer() as batch:
            for item in items:
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        stats.deleted += len(items)
    return stats


# --- rollups: day items stored before RollupsTable existed -> their accounts' rollups --------------------------


@dataclass(slots=True)
class RollupMigrationStats:
    day_items: int = 0  # time-series day items found without `r` (not in any rollup yet)
    rolled_up: int = 0  # brought into their account's rollup by this run
    transactions: int = 0


def migrate_rollups(table_name: str, rollups_table: str, *, dry_run: bool = False) -> RollupMigrationStats:
    """Add each day item that is not rolled up yet to its account's rollup, setting its `r` in the same
    transaction (conditional on the item as read): idempotent, resumable, and exact while collectors write."""
    stats = RollupMigrationStats()
    metrics = MetricsDal(table_name, rollups_table)
    for page in _scan_pages(table_name, FilterExpression=Attr(ROLLED_UP).not_exists()):
        items = [item for item in page if not item["pk"].endswith("#totals") and is_day_item(item)]
        stats.day_items += len(items)
        if dry_run or not items:
            continue
        written = metrics.roll_up(items)
        stats.rolled_up += written.item_writes
        stats.transactions += written.transact_calls
    return stats


# --- statuses: StatusTable (before 2026-12) -> the due markers ---------------------------------------------------

STATUS_FIELDS: Final = (
    "status",
    "reason_code",
    "message",
    "first_seen_at",
    "last_seen_at",
    "first_ok_at",
    "last_ok_at",
    "next_attempt_at",
    "unsupported_metrics",
    "status_pk",
    "status_sk",
)


@dataclass(slots=True)
class StatusMigrationStats:
    statuses: int = 0  # items of the old StatusTable
    copied: int = 0  # onto a marker that had no status, or an older one
    kept_newer: int = 0  # the marker's own status was newer: only the first-seen / first-ok times were taken
    no_marker: int = 0  # the Post is not tracked (or not on that endpoint) any more: nothing to keep it on


def migrate_statuses(status_table: str, registry_table: str, *, dry_run: bool = False) -> StatusMigrationStats:
    """Copy each status of the old StatusTable (`pk={tweet_id}`, `sk={endpoint}`) onto its due marker.

    Run it before deploying the version without StatusTable (CloudFormation deletes that table). A marker that has
    a newer status of its own keeps it, taking only the older first-seen / first-ok times.
    """
    stats = StatusMigrationStats()
    source = dynamodb_table(status_table)
    kwargs: dict[str, Any] = {"Limit": SCAN_PAGE}
    while True:
        page = source.scan(**kwargs)
        stats.statuses += len(page["Items"])
        if not dry_run:
            _copy_statuses(page["Items"], registry_table, stats)
        if "LastEvaluatedKey" not in page:
            return stats
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _copy_statuses(items: list[dict[str, Any]], registry_table: str, stats: StatusMigrationStats) -> None:
    keys = [marker_key(item["pk"], Endpoint(item["sk"])) for item in items]
    markers = {(m["pk"], m["sk"]): m for m in batch_get(registry_table, keys)}
    table = dynamodb_table(registry_table)
    for item, key in zip(items, keys, strict=True):
        marker = markers.get((key["pk"], key["sk"]))
        if marker is None:
            stats.no_marker += 1
            continue
        update = _status_copy(item, marker, stats)
        if update.sets and not update.apply(table, key):
            stats.no_marker += 1  # untracked between the read and the write


def _status_copy(item: dict[str, Any], marker: dict[str, Any], stats: StatusMigrationStats) -> ItemUpdate:
    update = ItemUpdate(conditions=["attribute_exists(pk)"])
    if marker.get("last_seen_at", "") < item["last_seen_at"]:
        for name in STATUS_FIELDS:
            if name in item:
                update.set(name, item[name])
        stats.copied += 1
        return update
    for name in ("first_seen_at", "first_ok_at"):
        if name in item and (name not in marker or item[name] < marker[name]):
            update.set(name, item[name])
    stats.kept_newer += 1  # with nothing older to take, nothing is written
    return update
