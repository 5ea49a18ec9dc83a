"""What `GET /collection/health` reads: bounded counts of Posts by status, and the oldest overdue Post per endpoint.

Every read is bounded: `Select=COUNT` still reads (and bills) each item it counts, so counting 'ok' over a million
Posts would read the whole StatusIndex partition. Counts stop at a bound and say so; the oldest overdue Post costs one
Query of one item per DueIndex shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_client
from xengage.dal.registry import DueMarker, RegistryDal
from xengage.dal.status import KNOWN_STATUSES

READ_WORKERS: Final = 8  # queries in flight at once: the answer waits on their round trips, not on DynamoDB


@dataclass(frozen=True, slots=True)
class BoundedCount:
    count: int
    complete: bool  # False: counting stopped at the bound, so there are at least `count`


class HealthDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def count_statuses(self, statuses: Iterable[str], *, bound: int) -> dict[str, BoundedCount]:
        """Entries (a Post on an endpoint) whose last outcome is each status, each counted up to `bound`."""
        names = sorted(set(statuses))
        unknown = set(names) - KNOWN_STATUSES
        if unknown:
            raise ValueError(f"unknown statuses {sorted(unknown)}")
        if bound < 1:
            raise ValueError(f"bound must be positive, not {bound}")
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(names) or 1)) as pool:
            counts = list(pool.map(lambda status: self._count_status(status, bound), names))
        return dict(zip(names, counts, strict=True))

    def _count_status(self, status: str, bound: int) -> BoundedCount:
        client = dynamodb_client()
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "StatusIndex",
            "KeyConditionExpression": "status_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"STATUS#{status}"}},
            "Select": "COUNT",
        }
        count = 0
        while True:
            response = client.query(**kwargs, Limit=bound - count)
            count += int(response.get("Count", 0))
            last = response.get("LastEvaluatedKey")
            if not last:
                return BoundedCount(count, complete=True)
            if count >= bound:
                return BoundedCount(count, complete=False)
            kwargs["ExclusiveStartKey"] = last

    def oldest_overdue(self, endpoints: Iterable[Endpoint], *, now: str) -> dict[Endpoint, DueMarker]:
        """Per endpoint, the marker due longest ago (next_due_at <= now), as the planner reads it when paused."""
        registry = RegistryDal(self.table_name)
        oldest = {endpoint: registry.oldest_due_marker(endpoint, now) for endpoint in endpoints}
        return {endpoint: marker for endpoint, marker in oldest.items() if marker is not None}
