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

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict

from xengage.dal.migrate import migrate_rollups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the stack's MetricsTableName output")
    parser.add_argument("--rollups-table", required=True, help="the stack's RollupsTableName output")
    parser.add_argument("--dry-run", action="store_true", help="count the day items not rolled up, change nothing")
    args = parser.parse_args(argv)
    stats = migrate_rollups(args.table, args.rollups_table, dry_run=args.dry_run)
    print(json.dumps({"table": args.table, "dry_run": args.dry_run, **asdict(stats)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
