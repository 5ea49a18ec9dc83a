"""Data checks: a /totals series that decreases, and /totals drifting from the sum of the /historical hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.unit.fakes import TICK, FakeEngagementClient, fake_deps, post_ids, register_account
from xengage.api_client.catalog import Endpoint
from xengage.dal import MetricPoint, SeriesState
from xengage.observability import metrics
from xengage.pipeline import checks
from xengage.pipeline.collector import collect, parse_message
from xengage.timeutil import floor_hour, snowflake_created_at, to_iso

NOW = to_iso(TICK)
HOUR = TICK.replace(minute=0)
LATER = TICK + timedelta(minutes=15)


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _emitted() -> dict[str, float]:
    return {name: sum(values["Value"]) for name, values in metrics.metric_set.items()}


def _message(endpoint: Endpoint, ids: list[str], account_id: str | None = None, at: str = NOW, **extra: str):
    body = {"endpoint": endpoint.value, "tweet_ids": ids, "account_id": account_id, "scheduled_time": at, **extra}
    return parse_message(body)


# --- the checks themselves ------------------------------------------------------------------------------------


def test_a_decrease_names_each_metric_that_fell_and_ignores_snapshots_not_newer():
    previous = SeriesState(latest_totals={"favorites": 10, "retweets": 4}, latest_totals_at=NOW)
    later = to_iso(LATER)
    # A newer snapshot with fewer favorites and more retweets: only favorites fell
    assert checks.totals_decrease(previous, {"favorites": 8, "retweets": 5, "replies": 1}, later) == {
        "metrics": {"favorites": {"from": 10, "to": 8}},
        "at": later,
        "previous_at": NOW,
    }
    # Nothing fell, or the snapshot is not newer than the one kept (a redelivery): no decrease
    assert checks.totals_decrease(previous, {"favorites": 10, "retweets": 4}, later) is None
    assert checks.totals_decrease(previous, {"favorites": 1}, NOW) is None
    assert checks.totals_decrease(SeriesState(), {"favorites": 1}, later) is None


def test_hour_sums_add_only_the_hours_they_do_not_hold_yet():
    hours = [(HOUR - timedelta(hours=n), {"engagements": n}) for n in (3, 2, 1)]
    first = checks.next_hour_sums(SeriesState(), hours)
    assert first is not None
    assert (dict(first.sums), first.first_hour, first.through) == (
        {"engagements": 6},
        to_iso(HOUR - timedelta(hours=3)),
        to_iso(HOUR),
    )
    assert first.previous_through is None
    # The same hours again (a redelivery): nothing to add
    assert checks.next_hour_sums(first.as_state(), hours) is None
    # A window overlapping the last one: only the new hour is added, the start stays
    moved = checks.next_hour_sums(first.as_state(), [*hours[1:], (HOUR, {"engagements": 10})])
    assert moved is not None
    assert (dict(moved.sums), moved.first_hour, moved.through) == (
        {"engagements": 16},
        first.first_hour,
        to_iso(HOUR + timedelta(hours=1)),
    )
    assert moved.previous_through == first.through


def _state(tweet_id: str, sums: dict[str, int], *, late_start: bool = False) -> SeriesState:
    created = floor_hour(snowflake_created_at(tweet_id))
    start = created + timedelta(hours=1) if late_start else created
    return SeriesState(hour_sums=sums, hour_sums_from=to_iso(start), hour_sums_through=to_iso(HOUR))


def _snapshot(tweet_id: str, values: dict[str, int], at: str = NOW) -> MetricPoint:
    return MetricPoint(tweet_id, Endpoint.TOTALS, at, values, collected_at=at)


@pytest.mark.parametrize(
    ("totals", "summed", "status"),
    [
        (105, 100, "ok"),  # 5 apart: not past the absolute bound
        (106, 100, "drift"),  # 6 apart: past 5, and past 5% of 106 (5.3)
        (200, 191, "ok"),  # 9 apart: past 5 but not past 5% of 200 (10)
        (200, 189, "drift"),  # 11 apart: past both
    ],
)
def test_drift_is_a_difference_past_both_the_absolute_and_the_relative_bound(totals, summed, status):
    tweet_id = post_ids(1, age=timedelta(hours=6))[0]
    state = _state(tweet_id, {"engagements": summed})
    check = checks.historical_drift(tweet_id, state, _snapshot(tweet_id, {"engagements": totals, "favorites": 1}))
    assert check.status == status
    # Only the metrics in both are compared
    assert [(m.metric, m.totals, m.hours_sum, m.difference) for m in check.metrics] == [
        ("engagements", totals, summed, totals - summed)
    ]


def test_drift_is_not_judged_where_the_two_cannot_be_compared():
    tweet_id = post_ids(1, age=timedelta(hours=6))[0]
    snapshot = _snapshot(tweet_id, {"engagements": 5})
    cases = {
        "no /historical hours collected yet": (SeriesState(), snapshot),
        "start after the Post's first hour": (_state(tweet_id, {"engagements": 5}, late_start=True), snapshot),
        "no /totals snapshot stored": (_state(tweet_id, {"engagements": 5}), None),
        "more than 1 day": (
            _state(tweet_id, {"engagements": 5}),
            _snapshot(tweet_id, {"engagements": 5}, at=to_iso(TICK - timedelta(days=2))),
        ),
        "no metric is in both": (_state(tweet_id, {"impressions": 5}), snapshot),
    }
    for reason, (state, point) in cases.items():
        check = checks.historical_drift(tweet_id, state, point)
        assert check.status == "not_comparable" and check.reason is not None and reason in check.reason, reason


# --- run by the collector --------------------------------------------------------------------------------------


def test_the_collector_flags_a_totals_snapshot_lower_than_the_previous_one(aws):
    # Given a Post collected on /totals with 10 favorites
    client = FakeEngagementClient(totals={"favorites": 10, "retweets": 3})
    deps = fake_deps(client)
    ids = post_ids(1)
    deps.registry.track_posts(ids, None, now=NOW)
    collect(_message(Endpoint.TOTALS, ids), deps)
    assert _emitted().get("TotalsDecreased") is None

    # When the next tick answers 7 favorites
    client.totals = {"favorites": 7, "retweets": 3}
    summary = collect(_message(Endpoint.TOTALS, ids, at=to_iso(LATER)), deps.replace(now=lambda: LATER))

    # Then the marker keeps the decrease, the summary counts it and the metric says it
    marker = deps.registry.get_due_marker(ids[0], Endpoint.TOTALS)
    assert marker is not None and marker.series.totals_decrease == {
        "metrics": {"favorites": {"from": 10, "to": 7}},
        "at": to_iso(LATER),
        "previous_at": NOW,
    }
    assert summary.totals_decreased == 1 and _emitted()["TotalsDecreased"] == 1


def _historical(deps, tweet_id: str, end=HOUR):
    created = to_iso(floor_hour(snowflake_created_at(tweet_id)))
    return collect(_message(Endpoint.HISTORICAL, [tweet_id], "42", start=created, end=to_iso(end)), deps)


@pytest.mark.parametrize(("engagements", "drifts"), [(6, False), (60, True)])
def test_the_collector_compares_totals_with_the_historical_hour_sums(aws, engagements, drifts):
    # Given an owned Post 6 hours old whose six hours each hold one engagement, and its /totals snapshot
    client = FakeEngagementClient(series_hours=24, totals={"engagements": engagements})
    deps = fake_deps(client)
    register_account(deps, "42")
    tweet_id = post_ids(1, age=timedelta(hours=6))[0]
    deps.registry.track_posts([tweet_id], "42", now=NOW)
    collect(_message(Endpoint.TOTALS, [tweet_id], "42"), deps)

    # When its /historical hours are collected, twice (a redelivery)
    summary = _historical(deps, tweet_id)
    _historical(deps, tweet_id)

    # Then the marker sums each hour once, and drift is counted only where /totals is far from the sums
    marker = deps.registry.get_due_marker(tweet_id, Endpoint.HISTORICAL)
    assert marker is not None and marker.series.hour_sums["engagements"] == 6
    assert marker.series.hour_sums_through == to_iso(HOUR)
    assert summary.totals_drift == int(drifts)
    assert (_emitted().get("TotalsDrift") == 1) is drifts
    check = checks.drift_of(tweet_id, marker.series, deps.metrics)
    assert check.status == ("drift" if drifts else "ok") and check.totals_at == NOW


def test_hour_sums_move_on_with_each_new_window(aws):
    # Given a Post whose hours were collected up to the last hour
    client = FakeEngagementClient(series_hours=24)
    deps = fake_deps(client)
    register_account(deps, "42")
    tweet_id = post_ids(1, age=timedelta(hours=6))[0]
    deps.registry.track_posts([tweet_id], "42", now=NOW)
    _historical(deps, tweet_id, end=HOUR - timedelta(hours=2))

    # When the next day's tick collects the next window (the last two hours)
    next_day = TICK + timedelta(days=1)
    start = HOUR - timedelta(hours=2)
    message = _message(
        Endpoint.HISTORICAL, [tweet_id], "42", at=to_iso(next_day), start=to_iso(start), end=to_iso(HOUR)
    )
    collect(message, deps.replace(now=lambda: next_day))

    # Then the sums hold all six hours, once each
    marker = deps.registry.get_due_marker(tweet_id, Endpoint.HISTORICAL)
    assert marker is not None and marker.series.hour_sums["engagements"] == 6
    assert marker.series.hour_sums_from == to_iso(floor_hour(snowflake_created_at(tweet_id)))
