"""MetricsTable and status DAL against moto tables built from template.yaml."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tests.stack_dal import metrics_dal, registry_dal, status_dal
from tests.unit.fakes import TICK, post_ids, scan_keys, stored_points
from xengage.api_client.catalog import Endpoint
from xengage.dal import MetricPoint
from xengage.timeutil import to_iso

NOW = to_iso(TICK)
FROZEN_COLUMNS_FINGERPRINT = "b48d68733033bab0"  # sha256 of the 17 column names as first stored (2026-12-03)


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


def test_put_points_writes_totals_snapshots_in_batches_of_25(aws):
    # Given 60 /totals snapshots of 60 Posts
    points = [MetricPoint(i, Endpoint.TOTALS, NOW, {"favorites": 1}, NOW) for i in post_ids(60)]

    # When they are written
    stats = metrics_dal().put_points(points)

    # Then 60 items exist after ceil(60 / 25) BatchWriteItem calls, nothing read or updated one by one
    assert (stats.items, stats.item_writes) == (60, 60)
    assert stats.batch_write_calls == math.ceil(60 / 25)
    assert stats.update_calls == stats.get_calls == 0
    assert len(scan_keys(aws.metrics_table)) == 60


def test_hours_are_stored_one_item_per_post_and_day(aws):
    # Given 60 hours of one Post ending at the tick's hour (17:00): 3 days, the first one not whole
    (tweet_id,) = post_ids(1, age=timedelta(days=5))
    points = _hourly_points(tweet_id, 60)

    # When they are written
    stats = metrics_dal().put_points(points)

    # Then 3 day items hold the 60 hours, written in one transaction with the 10 six-hour blocks of their account's
    # rollup that the hours fall in
    keys = scan_keys(aws.metrics_table)
    assert [sk for _, sk in keys] == sorted({p.at[:10] for p in points}) and len(keys) == 3
    assert len(stored_points(aws.metrics_table)) == 60
    assert (stats.items, stats.item_writes, stats.transact_calls, stats.rollup_writes) == (60, 3, 1, 10)
    assert stats.batch_write_calls == stats.update_calls == 0

    # And reading them back gives every hour with its value
    page = metrics_dal().query_points(tweet_id, Endpoint.HOURLY_28HR, limit=1000)
    assert [(p.at, p.metrics) for p in page.items] == [(p.at, p.metrics) for p in points]


def test_only_changed_hours_are_written_again(aws):
    # Given 28 hours stored, as an hourly /28hr tick stores them
    (tweet_id,) = post_ids(1, age=timedelta(days=5))
    metrics = metrics_dal()
    metrics.put_points(_hourly_points(tweet_id, 28))

    # When the next tick brings the same 28 hours, the last one grown, and the same again (a redelivery)
    again = _hourly_points(tweet_id, 28)
    again[-1] = MetricPoint(tweet_id, again[-1].endpoint, again[-1].at, {"impressions": 500}, NOW, "42")
    changed = metrics.put_points(again)
    redelivered = metrics.put_points(again)

    # Then one transaction sets the one changed hour (and its rollup), and the redelivery writes nothing
    assert (changed.transact_calls, changed.item_writes, changed.rollup_writes, changed.hours_unchanged) == (
        1,
        1,
        1,
        27,
    )
    assert (redelivered.item_writes, redelivered.hours_unchanged) == (0, 28)
    latest = metrics.latest_point(tweet_id, Endpoint.HOURLY_28HR)
    assert latest is not None and latest.metrics == {"impressions": 500}


def test_rewriting_the_same_keys_overwrites(aws):
    # Given points written once
    (tweet_id,) = post_ids(1)
    metrics = metrics_dal()
    metrics.put_points(_hourly_points(tweet_id, 5, value=1))

    # When the same hours are written again with new values (a redelivered message), twice in one batch
    metrics.put_points(_hourly_points(tweet_id, 5, value=100) + _hourly_points(tweet_id, 5, value=200))

    # Then there are still 5 items, holding the last values, as ints
    assert len(stored_points(aws.metrics_table)) == 5
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
    assert {pk.split("#")[0] for pk, _ in stored_points(aws.metrics_table)} == {keep}


def test_status_keeps_first_seen_and_first_ok(aws):
    # Given a tracked Post first seen unavailable, then ok twice
    (tweet_id,) = post_ids(1)
    registry_dal().track_posts([tweet_id], None, now=NOW)
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
    # And its marker still schedules it: the status sits beside the schedule, one item
    marker = registry_dal().get_due_marker(tweet_id, Endpoint.TOTALS)
    assert marker is not None and marker.next_due_at == NOW


def test_status_of_a_post_without_a_marker_is_not_kept(aws):
    # Given an untracked Post and an app-only tracked Post (markers for /totals only)
    untracked, app_only = post_ids(2)
    registry_dal().track_posts([app_only], None, now=NOW)

    # When outcomes are recorded for what has no marker
    kept = [
        status_dal().record(untracked, Endpoint.TOTALS, "ok", at=NOW),
        status_dal().record(app_only, Endpoint.HOURLY_28HR, "ok", at=NOW),
    ]

    # Then nothing is written: no status, and no marker-shaped item is created
    assert kept == [False, False]
    assert status_dal().get_statuses(untracked) == status_dal().get_statuses(app_only) == []
    assert registry_dal().get_due_marker(app_only, Endpoint.HOURLY_28HR) is None


def test_query_by_status_pages_newest_first(aws):
    # Given three not_owned Posts and one ok Post, tracked for account 42
    ids = post_ids(4)
    registry_dal().track_posts(ids, "42", now=NOW)
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


def _hour_item(point: MetricPoint) -> dict[str, object]:
    """An item of the layout before day items: one per Post and hour."""
    return {
        "pk": f"{point.tweet_id}#{point.endpoint.value}",
        "sk": point.at,
        "metrics": point.metrics,
        "account_id": "42",
    }


def _store_as_hour_items(points: list[MetricPoint]) -> None:
    with metrics_dal().table.batch_writer() as batch:
        for point in points:
            batch.put_item(Item=_hour_item(point))


def test_hour_items_of_the_previous_layout_read_with_day_items_and_the_day_item_wins(aws):
    # Given 6 hours stored as hour items, then the last 3 stored again as a day item with other values
    (tweet_id,) = post_ids(1, age=timedelta(days=5))
    old = _hourly_points(tweet_id, 6, value=1)
    _store_as_hour_items(old)
    metrics_dal().put_points(_hourly_points(tweet_id, 3, value=50))

    # When they are read 2 at a time, oldest first, and newest first
    pages, cursor = [], None
    while True:
        page = metrics_dal().query_points(tweet_id, Endpoint.HOURLY_28HR, limit=2, cursor=cursor)
        pages.append(page.items)
        if not (cursor := page.cursor):
            break
    newest = metrics_dal().query_points(tweet_id, Endpoint.HOURLY_28HR, limit=4, descending=True).items

    # Then each of the 6 hours comes once, the 3 newest with the day item's values
    read = [(p.at, p.metrics["impressions"]) for page in pages for p in page]
    assert read == [(p.at, i + 1) for i, p in enumerate(old[:3])] + [(p.at, 50 + i) for i, p in enumerate(old[3:])]
    assert [len(page) for page in pages] == [2, 2, 2]
    assert [p.at for p in newest] == [p.at for p in old[:-5:-1]]


def test_migration_folds_hour_items_into_day_items_keeping_newer_hours(aws):
    # Given 30 hours stored as hour items, the last 2 also in a newer day item, and a /totals snapshot
    from xengage.dal.migrate import migrate_hour_items

    (tweet_id,) = post_ids(1, age=timedelta(days=5))
    old = _hourly_points(tweet_id, 30, value=1)
    _store_as_hour_items(old)
    metrics_dal().put_points(_hourly_points(tweet_id, 2, value=90))
    metrics_dal().put_points([MetricPoint(tweet_id, Endpoint.TOTALS, NOW, {"favorites": 1}, NOW)])
    before = [(p.at, p.metrics) for p in metrics_dal().query_points(tweet_id, Endpoint.HOURLY_28HR, limit=1000).items]

    # When the table is migrated (a dry run first), and migrated again
    dry = migrate_hour_items(aws.metrics_table, aws.rollups_table, dry_run=True)
    stats = migrate_hour_items(aws.metrics_table, aws.rollups_table)
    again = migrate_hour_items(aws.metrics_table, aws.rollups_table)

    # Then only day items and the snapshot remain, every hour reads as before, and a second run finds nothing
    assert (dry.hour_items, dry.deleted) == (30, 0)
    assert (stats.hour_items, stats.hours_written, stats.deleted) == (30, 28, 30)
    assert again.hour_items == 0
    assert all(
        len(sk) in (10, 20) and (len(sk) == 10) == pk.endswith("28hr") for pk, sk in scan_keys(aws.metrics_table)
    )
    after = metrics_dal().query_points(tweet_id, Endpoint.HOURLY_28HR, limit=1000).items
    assert [(p.at, p.metrics) for p in after] == before
    assert [metrics["impressions"] for _, metrics in before[-2:]] == [90, 91]


def test_a_day_item_changed_by_another_writer_is_read_again_and_merged(aws, monkeypatch):
    # Given a day item with hours 10..12, and a writer that read it before another writer added a new column
    from xengage.dal import series

    (tweet_id,) = post_ids(1, age=timedelta(days=5))
    metrics = metrics_dal()
    day = "2026-11-20"
    point = lambda hour, values: MetricPoint(tweet_id, Endpoint.HISTORICAL, f"{day}T{hour:02d}:00:00Z", values, NOW)  # noqa: E731
    metrics.put_points([point(hour, {"impressions": hour}) for hour in (10, 11, 12)])
    seen = series.columns_of
    calls = []

    def stale_then_real(item):
        # The first read returns the item as it was before the other writer's change
        calls.append(item)
        if len(calls) == 1:
            metrics.put_points([point(13, {"impressions": 13, "new_metric": 7})])
        return seen(item)

    monkeypatch.setattr("xengage.dal.metrics.columns_of", stale_then_real)

    # When it writes hour 14
    stats = metrics.put_points([point(14, {"impressions": 14})])

    # Then its first conditional update fails, it reads again, and every hour is kept under the grown columns
    assert stats.update_calls == 2 and stats.get_calls == 2
    hours = metrics.query_points(tweet_id, Endpoint.HISTORICAL, limit=10).items
    assert [(p.at[11:13], p.metrics) for p in hours] == [
        ("10", {"impressions": 10}),
        ("11", {"impressions": 11}),
        ("12", {"impressions": 12}),
        ("13", {"impressions": 13, "new_metric": 7}),
        ("14", {"impressions": 14}),
    ]


def test_status_migration_copies_old_statuses_onto_markers_and_keeps_newer_ones(aws):
    # Given the old StatusTable (pk=tweet id, sk=endpoint) with three statuses: one of a Post whose marker has no
    # status yet, one of a Post whose marker has a newer one, one of a Post no longer tracked
    from xengage.dal.aws import dynamodb_resource
    from xengage.dal.migrate import migrate_statuses

    old_table = dynamodb_resource().create_table(
        TableName="old-StatusTable",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    fresh, renewed, gone = post_ids(3)
    registry_dal().track_posts([fresh, renewed], None, now=NOW)
    status_dal().record(renewed, Endpoint.TOTALS, "ok", at="2026-11-25T12:00:00Z")

    def old(tweet_id: str, status: str, seen: str) -> dict[str, str]:
        return {
            "pk": tweet_id,
            "sk": "totals",
            "status": status,
            "first_seen_at": "2026-11-01T00:00:00Z",
            "last_seen_at": seen,
            "status_pk": f"STATUS#{status}",
            "status_sk": f"{seen}#{tweet_id}",
            **(
                {"reason_code": status, "message": "gone"}
                if status != "ok"
                else {"first_ok_at": seen, "last_ok_at": seen}
            ),
        }

    for item in (
        old(fresh, "unavailable", "2026-11-20T00:00:00Z"),
        old(renewed, "ok", "2026-11-20T00:00:00Z"),
        old(gone, "ok", "2026-11-20T00:00:00Z"),
    ):
        old_table.put_item(Item=item)

    # When it is migrated, twice
    stats = migrate_statuses("old-StatusTable", aws.registry_table)
    again = migrate_statuses("old-StatusTable", aws.registry_table)

    # Then the fresh marker holds the old status, the renewed one keeps its own but takes the older first-seen time,
    # the untracked Post's status has nowhere to go, and a second run changes nothing
    (copied,) = status_dal().get_statuses(fresh)
    (kept,) = status_dal().get_statuses(renewed)
    assert (copied.status, copied.message, copied.last_seen_at) == ("unavailable", "gone", "2026-11-20T00:00:00Z")
    assert (kept.status, kept.last_seen_at, kept.first_seen_at) == (
        "ok",
        "2026-11-25T12:00:00Z",
        "2026-11-01T00:00:00Z",
    )
    assert (stats.statuses, stats.copied, stats.kept_newer, stats.no_marker) == (3, 1, 1, 1)
    assert (again.copied, again.kept_newer) == (0, 2)
    assert [s.tweet_id for s in status_dal().query_by_status("unavailable").items] == [fresh]


def test_the_day_item_columns_are_a_frozen_storage_format() -> None:
    # Items without `m` are read with DAY_COLUMNS: reordering or editing them would misread every stored hour.
    # (New catalog metrics become extra columns of the items that hold them; this tuple never changes.)
    import hashlib

    from xengage.dal.series import DAY_COLUMNS

    fingerprint = hashlib.sha256(",".join(DAY_COLUMNS).encode()).hexdigest()
    assert (len(DAY_COLUMNS), fingerprint[:16]) == (17, FROZEN_COLUMNS_FINGERPRINT)
