"""Fold MetricsTable's hour items (the layout before day items) into day items; run once per table after deploying.

    python -m tools.migrate_series --table <MetricsTableName> [--dry-run]    (operator credentials)

Safe to run while collectors write, and to stop and run again: each Scan page's hour items are written into their
day items only where the day item lacks that hour (what a collector stored since is newer), and deleted only after
that write succeeded. Reads stay right throughout: the API reads both kinds and a day item's hour wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from xengage.dal.aws import dynamodb_table
from xengage.dal.metrics import MetricPoint, MetricsDal
from xengage.dal.series import is_day_item

SCAN_PAGE: Final = 500


@dataclass(slots=True)
class MigrationStats:
    hour_items: int = 0  # items of the previous layout found
    hours_written: int = 0  # hours a day item lacked, written from them
    deleted: int = 0


def _legacy_hour_items(table_name: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of the table's time-series hour items (a one-off Scan: nothing else in the project scans)."""
    table = dynamodb_table(table_name)
    kwargs: dict[str, Any] = {"Limit": SCAN_PAGE}
    while True:
        page = table.scan(**kwargs)
        yield [item for item in page["Items"] if _is_hour_item(item)]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _is_hour_item(item: dict[str, Any]) -> bool:
    return not item["pk"].endswith("#totals") and not is_day_item(item)


def migrate_hour_items(table_name: str, *, dry_run: bool = False) -> MigrationStats:
    stats = MigrationStats()
    metrics = MetricsDal(table_name)
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
