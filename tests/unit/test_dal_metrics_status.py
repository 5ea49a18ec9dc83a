"""MetricsTable and StatusTable DAL against moto tables built from template.yaml."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tests.unit.fakes import TICK, post_ids, scan_keys
from xengage.api_client.catalog import Endpoint
from xengage.dal import MetricPoint, metrics_dal, status_dal
from xengage.timeutil import to_iso

NOW = to_iso(TICK)


def _hourly_points(tweet_id: str, hours: int, *, value: int = 1) -> list[MetricPoint]:
    return [
        MetricPoint(
            tweet_id,
            Endpoint.HOURLY_28HR,
            to_iso(TICK.replace(minute=0) - timedelta(hours=hours - index)),
            {"impressions": value + index},
            NOW,
            "42",
        )
        for index in range(hours)
    ]


def test_put_points_uses_batch_write_item_in_25s_and_counts_calls(aws):
    # Given 60 points
    (tweet_id,) = post_ids(1)
    points = _hourly_points(tweet_id, 60)

    # When they are written
    stats = metrics_dal().put_points(points)

    # Then 60 items exist after ceil(60 / 25) BatchWriteItem calls
    assert stats.items == 60
    assert stats.batch_write_calls == math.ceil(60 / 25)
    assert len(scan_keys(aws.metrics_table)) == 60


def test_rewriting_the_same_keys_overwrites(aws):
    # Given points written once
    (tweet_id,) = post_ids(1)
    metrics = metrics_dal()
    metrics.put_points(_hourly_points(tweet_id, 5, value=1))

    # When the same hours are written again with new values (a redelivered message), twice in one batch
    metrics.put_points(_hourly_points(tweet_id, 5, value=100) + _hourly_points(tweet_id, 5, value=200))

    # Then there are still 5 items, holding the last values, as ints
    assert len(scan_keys(aws.metrics_table)) == 5
    latest = metrics.latest_point(tweet_id, Endpoint.HOURLY_28HR)
    assert latest is not None and latest.metrics == {"impressions": 204}
    assert type(latest.metrics["impressions"]) is int


def test_query_points_range_limit_cursor_and_order(aws):
    # Given 10 hourly points
    (tweet_id,) = post_ids(1)
    metrics = metrics_dal()
    points = _hourly_points(tweet_id, 10)
    metrics.put_points(points)
    hours = [point.at for point in points]

    # When a range of 6 hours is read 4 at a time
    first = metrics.query_points(tweet_id, Endpoint.HOURLY_28HR, start=hours[2], end=hours[7], limit=4)
    second = metrics.query_points(
        tweet_id, Endpoint.HOURLY_28HR, start=hours[2], end=hours[7], limit=4, cursor=first.cursor
    )
    newest = metrics.query_points(tweet_id, Endpoint.HOURLY_28HR, limit=3, descending=True)

    # Then the pages cover exactly the range in order, and descending starts from the newest
    assert [p.at for p in first.items + second.items] == hours[2:8]
    assert second.cursor is None
    assert [p.at for p in newest.items] == hours[:-4:-1]
    assert metrics.query_points(tweet_id, Endpoint.TOTALS).items == []
    with pytest.raises(ValueError, match="after end"):
        metrics.query_points(tweet_id, Endpoint.TOTALS, start=hours[5], end=hours[1])


def test_purge_points_removes_every_endpoint_of_one_post_only(aws):
    # Given points of two Posts on two endpoints
    keep, purge = post_ids(2)
    metrics = metrics_dal()
    metrics.put_points(_hourly_points(purge, 30) + _hourly_points(keep, 2))
    metrics.put_points([MetricPoint(purge, Endpoint.TOTALS, NOW, {"favorites": 1}, NOW)])

    # When one Post is purged
    deleted = metrics.purge_points(purge)

    # Then only its 31 points are gone
    assert deleted == 31
    assert {pk.split("#")[0] for pk, _ in scan_keys(aws.metrics_table)} == {keep}


def test_status_keeps_first_seen_and_first_ok(aws):
    # Given a Post first seen unavailable, then ok twice
    (tweet_id,) = post_ids(1)
    statuses = status_dal()
    statuses.record(tweet_id, Endpoint.TOTALS, "unavailable", at="2026-11-25T10:00:00Z", message="gone")
    statuses.record(tweet_id, Endpoint.TOTALS, "ok", at="2026-11-25T11:00:00Z")
    statuses.record(tweet_id, Endpoint.TOTALS, "ok", at="2026-11-25T12:00:00Z")

    # When its statuses are read
    (status,) = statuses.get_statuses(tweet_id)

    # Then first times are kept, last times follow, and the old reason is cleared
    assert status.status == "ok"
    assert status.first_seen_at == "2026-11-25T10:00:00Z"
    assert status.first_ok_at == "2026-11-25T11:00:00Z"
    assert status.last_ok_at == status.last_seen_at == "2026-11-25T12:00:00Z"
    assert status.reason_code is None and status.message is None


def test_query_by_status_pages_newest_first(aws):
    # Given three not_owned Posts and one ok Post
    ids = post_ids(4)
    statuses = status_dal()
    for index, tweet_id in enumerate(ids[:3]):
        statuses.record(tweet_id, Endpoint.HISTORICAL, "not_owned", at=f"2026-11-25T1{index}:00:00Z", message="no")
    statuses.record(ids[3], Endpoint.TOTALS, "ok", at=NOW)

    # When not_owned Posts are listed two at a time
    first = statuses.query_by_status("not_owned", limit=2)
    second = statuses.query_by_status("not_owned", limit=2, cursor=first.cursor)

    # Then all three come back newest first, each with its reason
    assert [s.tweet_id for s in first.items + second.items] == [ids[2], ids[1], ids[0]]
    assert {s.reason_code for s in first.items} == {"not_owned"}
    with pytest.raises(ValueError, match="status must be one of"):
        statuses.query_by_status("sleeping")
