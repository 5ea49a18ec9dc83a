"""The monthly @handle cap under concurrent collectors, against dynalite (DynamoDB's conditional-write semantics)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from xengage.dal.usage import UsageDal
from xengage.pipeline.usage import UsageGuard

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)


def test_collectors_racing_for_the_last_slots_never_go_past_the_cap(dynalite_table: str) -> None:
    # Given a cap of 3 and 12 collector processes, each about to count a different new @handle at the same moment
    cap, racers = 3, 12
    start = threading.Barrier(racers)

    def race(index: int) -> bool:
        guard = UsageGuard(UsageDal(dynalite_table), cap)
        start.wait()
        return guard.admit(str(100 + index), f"handle{index}", now=NOW)

    # When they all count at once
    with ThreadPoolExecutor(max_workers=racers) as pool:
        admitted = list(pool.map(race, range(racers)))

    # Then exactly 3 got a slot, the month's set holds exactly those, and a redelivery of an admitted one still passes
    usage = UsageDal(dynalite_table).month("2026-12")
    winners = sorted(str(100 + index) for index, won in enumerate(admitted) if won)
    assert sum(admitted) == cap and [account.account_id for account in usage.accounts] == winners
    assert UsageGuard(UsageDal(dynalite_table), cap).admit(winners[0], "again", now=NOW)
    assert usage.unique_handles == cap
