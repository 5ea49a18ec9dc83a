"""Staleness: every planner tick publishes how late the most overdue Post waiting for collection is.

The ticks run through the planner's handler, which publishes the gauges (plan() itself prints nothing)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import FakeLambdaContext
from tests.stack_dal import app_state_dal, planner_deps, registry_dal
from tests.unit.fakes import TICK, post_ids
from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_resource
from xengage.dal.registry import DUE_SHARDS
from xengage.observability import metrics
from xengage.pipeline.planner import PlanSummary
from xengage.timeutil import to_iso

NOW = to_iso(TICK)


def tick(endpoint: Endpoint = Endpoint.TOTALS, expression: str = "rate(15 minutes)") -> PlanSummary:
    """One scheduler tick at TICK through the planner's handler (the schedule's Input)."""
    from functions.planner.planner import lambda_handler

    event = {"endpoint": endpoint.value, "scheduled_time": NOW, "schedule_expression": expression}
    return PlanSummary(**lambda_handler(event, FakeLambdaContext()))


def _gauges(out: str) -> list[dict[str, Any]]:
    """The EMF records printed that carry the staleness gauges: their dimensions and values."""
    records = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return [record for record in records if "OldestOverdueSeconds" in record]


def test_the_tick_publishes_how_late_the_oldest_post_waiting_for_collection_is(aws, capsys):
    # Given /totals Posts of an account needing re-authorization, due 3 h ago, and app Posts due 40 and 10 min ago
    registry = registry_dal()
    registry.put_account("2", "user2", now=NOW)
    registry.set_account_status("2", "needs_reauth", now=NOW, last_error="401")
    registry.track_posts(post_ids(2, first=50), "2", now=to_iso(TICK - timedelta(hours=3)))
    registry.track_posts(post_ids(3), None, now=to_iso(TICK - timedelta(minutes=40)))
    registry.track_posts(post_ids(3, first=10), None, now=to_iso(TICK - timedelta(minutes=10)))

    # When a tick of a 15-minute schedule is planned
    summary = tick()

    # Then the oldest Post that waits for the collector (not for new tokens) sets it: 40 min, 2.67 periods
    assert summary.needs_reauth == 2
    assert summary.oldest_due_at == to_iso(TICK - timedelta(minutes=40))
    assert summary.oldest_overdue_seconds == 2400
    assert summary.oldest_overdue_periods == pytest.approx(40 / 15)
    # And one EMF record carries both gauges under the function's service (planner, in the template) and the endpoint
    (record,) = _gauges(capsys.readouterr().out)
    assert (record["service"], record["endpoint"]) == (metrics.service, "totals")
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["endpoint", "service"]]
    assert record["OldestOverdueSeconds"] == [2400.0]
    assert record["OldestOverdueSchedulePeriods"] == [pytest.approx(40 / 15)]


def test_a_tick_with_nothing_overdue_publishes_zero(aws, capsys):
    # Given nothing due (a Post due after the tick)
    registry_dal().track_posts(post_ids(1), None, now=to_iso(TICK + timedelta(minutes=5)))

    # When the tick is planned
    summary = tick()

    # Then 0 is published, not nothing: the alarm sees the endpoint is fresh
    assert (summary.due, summary.oldest_overdue_seconds, summary.oldest_overdue_periods) == (0, 0.0, 0.0)
    (record,) = _gauges(capsys.readouterr().out)
    assert (record["OldestOverdueSeconds"], record["OldestOverdueSchedulePeriods"]) == ([0.0], [0.0])


def test_a_schedule_without_a_rate_publishes_seconds_only(aws, capsys):
    # Given a Post due an hour ago and a tick whose schedule is not a rate(...) (interval unknown)
    registry_dal().track_posts(post_ids(1), None, now=to_iso(TICK - timedelta(hours=1)))

    # When the tick is planned
    summary = tick(expression="cron(0 * * * ? *)")

    # Then the seconds are published and the periods are not (no threshold can be read against them)
    assert (summary.oldest_overdue_seconds, summary.oldest_overdue_periods) == (3600.0, None)
    (record,) = _gauges(capsys.readouterr().out)
    assert record["OldestOverdueSeconds"] == [3600.0] and "OldestOverdueSchedulePeriods" not in record


def test_a_paused_tick_still_publishes_staleness_from_one_cheap_read(aws, capsys):
    # Given Posts due an hour ago while X refuses the app's credentials (planning paused)
    registry_dal().track_posts(post_ids(5), None, now=to_iso(TICK - timedelta(hours=1)))
    version = planner_deps().secret_version()
    app_state_dal().flag_credentials("Invalid or expired bearer token", secret_version=version, now=NOW)
    queries = _record_queries()

    # When the tick is planned
    summary = tick()

    # Then nothing is planned, staleness is 4 periods, and it cost one Query of one item per DueIndex shard
    assert summary.paused and summary.planned == 0
    assert summary.oldest_overdue_periods == 4.0
    due_reads = [query["Limit"] for query in queries if query.get("IndexName") == "DueIndex"]
    assert due_reads == [1] * DUE_SHARDS
    (record,) = _gauges(capsys.readouterr().out)
    assert record["OldestOverdueSchedulePeriods"] == [4.0]


def test_oldest_due_is_the_first_marker_the_planner_would_stream(aws):
    # Given Posts spread over every shard, due at different times, some after the bound
    registry = registry_dal()
    for minutes, first in ((90, 0), (30, 100), (200, 200), (-30, 300)):
        registry.track_posts(post_ids(20, first=first), "7", now=to_iso(TICK - timedelta(minutes=minutes)))

    # When the cheap read and the stream are compared, for each endpoint the Posts have
    for endpoint in Endpoint:
        streamed = next(registry.iter_due(endpoint, NOW))
        # Then they agree: the oldest marker due by the tick (200 min ago)
        assert registry.oldest_due(endpoint, NOW) == streamed.next_due_at == to_iso(TICK - timedelta(minutes=200))
    assert registry.oldest_due(Endpoint.TOTALS, to_iso(TICK - timedelta(hours=5))) is None


def _record_queries() -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = []
    dynamodb_resource().meta.client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: queries.append(dict(params))
    )
    return queries
