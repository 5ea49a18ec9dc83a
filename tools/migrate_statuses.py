"""Copy a deployed stack's StatusTable onto the due markers, before deploying the version without it.

    python -m tools.migrate_statuses --status-table <StatusTableName> --registry-table <RegistryTableName> [--dry-run]

Statuses now live on each Post's due marker in RegistryTable (docs/DESIGN.md, "Settling a Post"), and the deploy
deletes StatusTable: run this first (the stack's outputs name both tables). Uses the caller's AWS credentials (Scan
on StatusTable; BatchGetItem and UpdateItem on RegistryTable). Run again at will: a marker keeps a newer status of
its own, taking only older first-seen / first-ok times. Skipping it loses only those first times: every status is
written again at the Post's next collection.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict

from xengage.dal.migrate import migrate_statuses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--status-table", required=True, help="the stack's StatusTableName output (before upgrade)")
    parser.add_argument("--registry-table", required=True, help="the stack's RegistryTableName output")
    parser.add_argument("--dry-run", action="store_true", help="count the statuses, change nothing")
    args = parser.parse_args(argv)
    stats = migrate_statuses(args.status_table, args.registry_table, dry_run=args.dry_run)
    print(json.dumps({"dry_run": args.dry_run, **asdict(stats)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
