"""Bring a deployed MetricsTable's day items into RollupsTable (docs/DESIGN.md, "Rollups").

    python -m tools.migrate_rollups --table <MetricsTableName> --rollups-table <RollupsTableName> [--dry-run]

Day items written before this version have no `r`: they are in no rollup, and an account's sums count only the
days collected since the deploy. This Scan adds each of them to its account's rollup in one transaction that also
sets its `r`, on the condition that the item is still as read (a collector that wrote it first already rolled it
up). Stop it at any time and run it again: it resumes where items without `r` remain, and never adds one twice.
Run it after `make migrate-series` (hour items folded into day items are rolled up by that tool's writes).
Uses the caller's AWS credentials (Scan on MetricsTable, TransactWriteItems: UpdateItem on both tables).
"""

from __future__ import annotations

from collections.abc import Sequence

from tools.migrate_series import run_metrics_migration
from xengage.dal.migrate import migrate_rollups


def main(argv: Sequence[str] | None = None) -> int:
    return run_metrics_migration(__doc__, migrate_rollups, "count the day items not rolled up, change nothing", argv)


if __name__ == "__main__":
    raise SystemExit(main())
