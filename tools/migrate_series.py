"""Fold a deployed MetricsTable's hour items into day items (docs/DESIGN.md, "The time-series layout").

    python -m tools.migrate_series --table <MetricsTableName> --rollups-table <RollupsTableName> [--dry-run]

Uses the caller's AWS credentials (Scan, BatchGetItem, BatchWriteItem, UpdateItem and TransactWriteItems on the
tables: hours folded into a rolled-up day item go to its account's rollup too); the stack's functions are granted
no Scan. Stop it at any time and run it again: it resumes where hour items remain.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from xengage.dal.migrate import migrate_hour_items


def run_metrics_migration(
    description: str | None, migrate: Callable[..., Any], dry_run_help: str, argv: Sequence[str] | None
) -> int:
    """The command line of a migration of MetricsTable that keeps RollupsTable exact: parse, run, print its stats."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the stack's MetricsTableName output")
    parser.add_argument("--rollups-table", required=True, help="the stack's RollupsTableName output")
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    args = parser.parse_args(argv)
    stats = migrate(args.table, args.rollups_table, dry_run=args.dry_run)
    print(json.dumps({"table": args.table, "dry_run": args.dry_run, **asdict(stats)}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_metrics_migration(__doc__, migrate_hour_items, "count the hour items, change nothing", argv)


if __name__ == "__main__":
    raise SystemExit(main())
