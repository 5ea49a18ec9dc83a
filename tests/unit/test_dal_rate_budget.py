"""The shared rate budget against a moto RegistryTable built from template.yaml: two budgets stand for two Lambda
instances (or a collector and a live query) spending one per-minute allowance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.stack_dal import app_state_dal
from xengage.api_client.catalog import Endpoint
from xengage.api_client.pacing import BOUNDARY_MARGIN_SECONDS
from xengage.dal.rate_budget import PROBE_RETRY_SECONDS, SharedRateBudget, rate_key

START = datetime(2026, 12, 3, 9, 0, 10, tzinfo=UTC)  # 10 s into a minute
TOTALS = Endpoint.TOTALS.value


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgets(aws, clock):
    table = aws.registry_table
    return SharedRateBudget(table, now=clock.now), SharedRateBudget(table, now=clock.now)


def _answered(budget: SharedRateBudget, limit: int, remaining: int, endpoint: str = TOTALS) -> None:
    budget.record_response(endpoint, {"x-per-minute-limit": str(limit), "x-per-minute-remaining": str(remaining)})


def _takes(budget: SharedRateBudget, endpoint: str = TOTALS) -> bool:
    return budget.delay_before_call(endpoint) == 0.0


def test_two_callers_share_one_allowance_and_get_it_back_the_next_minute(budgets, clock) -> None:
    first, second = budgets
    # Given the limit (3 a minute) learned from the first call's answer
    assert _takes(first)
    _answered(first, limit=3, remaining=2)
    # When both callers ask for slots in the same minute
    granted = [_takes(second), _takes(first), _takes(second), _takes(first)]
    # Then only the two slots left are granted, whoever asks
    assert granted == [True, True, False, False]
    # And the one held back waits for the next minute (50 s left in this one)
    assert second.delay_before_call(TOTALS) == pytest.approx(50 + BOUNDARY_MARGIN_SECONDS)
    # And the next minute the allowance is whole again, for each endpoint apart
    clock.advance(50 + BOUNDARY_MARGIN_SECONDS)
    assert [_takes(second), _takes(first), _takes(second), _takes(first)] == [True, True, True, False]
    assert _takes(first, Endpoint.HISTORICAL.value)


def test_before_the_limit_is_known_one_call_probes_and_the_others_ask_again_soon(budgets) -> None:
    first, second = budgets
    # Given a first call out and no answer yet
    assert _takes(first)
    # Then another caller is held back briefly, not for the rest of the minute
    assert second.delay_before_call(TOTALS) == PROBE_RETRY_SECONDS
    # And once the probe's answer taught the limit, the other caller takes a slot
    _answered(first, limit=5, remaining=4)
    assert _takes(second)
    assert second.limit(TOTALS) == 5


def test_the_app_state_reads_while_the_probe_is_out(budgets) -> None:
    first, _ = budgets
    # Given the budget's item written before any answer taught the limit
    assert _takes(first)
    # Then the app state reads, with no limit known yet
    assert app_state_dal().get().rate_limits == {}


def test_calls_x_counted_from_elsewhere_shrink_what_is_left(budgets) -> None:
    first, second = budgets
    assert _takes(first)
    # When the answer says 28 of 30 are used (27 by callers outside this deployment)
    _answered(first, limit=30, remaining=2)
    # Then two slots are left this minute, not 29
    assert [_takes(second), _takes(first), _takes(second)] == [True, True, False]


def test_an_answer_saying_nothing_is_left_spends_the_minute(budgets) -> None:
    first, second = budgets
    assert _takes(first)
    _answered(first, limit=30, remaining=0)
    assert not _takes(second)


def test_a_429_spends_the_minute_for_every_caller(budgets) -> None:
    first, second = budgets
    assert _takes(first)
    _answered(first, limit=100, remaining=99)
    # When a call is refused with 429 (X's minute began earlier than ours)
    wait = first.record_throttled(TOTALS)
    # Then nobody calls again before the next minute
    assert wait == pytest.approx(50 + BOUNDARY_MARGIN_SECONDS)
    assert second.delay_before_call(TOTALS) == pytest.approx(50 + BOUNDARY_MARGIN_SECONDS)


def test_the_learned_limit_is_the_app_states_and_recording_it_keeps_the_count(budgets) -> None:
    first, second = budgets
    assert _takes(first)
    _answered(first, limit=2, remaining=1)
    assert app_state_dal().get().rate_limits == {Endpoint.TOTALS: 2}
    # When the collector records the same limit (as it did before the budget existed)
    app_state_dal().record_rate_limit(Endpoint.TOTALS, 2, now="2026-12-03T09:00:11Z")
    # Then the minute's count is kept: one slot is left, not two
    assert [_takes(second), _takes(second)] == [True, False]


def test_an_unreachable_table_falls_back_to_pacing_on_the_answers(aws, clock) -> None:
    budget = SharedRateBudget("no-such-table", now=clock.now)
    # Then calls still go, paced by what the answers say, and the fallback is counted
    assert _takes(budget)
    _answered(budget, limit=3, remaining=0)
    assert budget.delay_before_call(TOTALS) == pytest.approx(50 + BOUNDARY_MARGIN_SECONDS)
    assert budget.stats.fallbacks == 2


def test_a_budget_item_deleted_under_running_callers_is_rebuilt_with_its_limit(aws, budgets, clock) -> None:
    first, second = budgets
    assert _takes(first)
    _answered(first, limit=100, remaining=99)
    assert _takes(second)
    # When the item is deleted while both callers remember the limit (a table emptied or restored)
    boto3.client("dynamodb").delete_item(TableName=aws.registry_table, Key=rate_key(TOTALS))
    clock.advance(50 + BOUNDARY_MARGIN_SECONDS)
    # Then the next call's answer writes the limit again, and the other caller is not held to one call a minute
    assert _takes(first)
    _answered(first, limit=100, remaining=99)
    assert [_takes(second), _takes(second), _takes(first)] == [True, True, True]
