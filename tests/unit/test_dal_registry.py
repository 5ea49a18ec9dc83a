"""RegistryTable DAL against moto tables built from template.yaml."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.stack_dal import registry_dal
from tests.unit.fakes import TICK, post_ids
from xengage.api_client.catalog import Endpoint
from xengage.dal import InvalidCursor, NotFound
from xengage.dal.registry import DUE_SHARDS, due_shard
from xengage.timeutil import to_iso

NOW = to_iso(TICK)


def test_account_round_trip_keeps_created_at_and_converts_status(aws):
    # Given an account registered, then re-registered later (re-authorization)
    registry = registry_dal()
    registry.put_account("42", "first", now="2026-11-01T00:00:00Z")
    registry.set_account_status("42", "needs_reauth", now="2026-11-02T00:00:00Z", last_error="401 from X")

    # When it is registered again
    account = registry.put_account("42", "renamed", now=NOW)

    # Then created_at is the first one, the status is active again and the old error is gone
    assert account.created_at == "2026-11-01T00:00:00Z"
    assert account.screen_name == "renamed"
    assert account.status == "active"
    assert account.last_error is None
    assert registry.get_account("42") == account


def test_set_account_status_records_error_and_refuses_unknown_accounts(aws):
    # Given one registered account
    registry = registry_dal()
    registry.put_account("7", "seven", now=NOW)

    # When it is marked needs_reauth, and an unknown account is marked too
    registry.set_account_status("7", "needs_reauth", now=NOW, last_error="account 7: Unauthorized (HTTP 401)")

    # Then the error is stored, and the unknown one raises NotFound without creating an item
    account = registry.get_account("7")
    assert account is not None and account.needs_reauth
    assert account.last_error == "account 7: Unauthorized (HTTP 401)"
    with pytest.raises(NotFound, match="account 8"):
        registry.set_account_status("8", "active", now=NOW)
    assert registry.get_account("8") is None
    with pytest.raises(ValueError, match="status"):
        registry.set_account_status("7", "sleeping", now=NOW)


def test_list_accounts_pages_with_opaque_cursor(aws):
    # Given five accounts
    registry = registry_dal()
    for user_id in ["1", "2", "3", "4", "5"]:
        registry.put_account(user_id, f"u{user_id}", now=NOW)

    # When they are listed two at a time following the cursor
    seen, cursor, pages = [], None, 0
    while True:
        page = registry.list_accounts(limit=2, cursor=cursor)
        seen += [account.user_id for account in page.items]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break

    # Then every account is seen once, in order, over three or four pages; a forged cursor is refused
    assert seen == ["1", "2", "3", "4", "5"]
    assert pages in (3, 4)
    with pytest.raises(InvalidCursor):
        registry.list_accounts(cursor="not-a-cursor")


def test_delete_account(aws):
    registry = registry_dal()
    registry.put_account("9", "nine", now=NOW)
    assert registry.delete_account("9") is True
    assert registry.get_account("9") is None
    assert registry.delete_account("9") is False


def test_track_post_creates_due_markers_per_auth_context(aws):
    # Given one Post tracked with the app only and one with an account
    registry = registry_dal()
    app_id, owned_id = post_ids(2)

    # When both are tracked
    app_post = registry.track_post(app_id, None, now=NOW)
    owned_post = registry.track_post(owned_id, "42", now=NOW)

    # Then the app Post is due on /totals only, the owned Post on all three endpoints, both due now
    assert app_post.account_id == ""
    assert owned_post.account_id == "42"
    assert app_post.created_at == to_iso(TICK - timedelta(hours=3))
    assert [e for e in Endpoint if registry.get_due_marker(app_id, e)] == [Endpoint.TOTALS]
    assert [e for e in Endpoint if registry.get_due_marker(owned_id, e)] == list(Endpoint)
    marker = registry.get_due_marker(owned_id, Endpoint.HISTORICAL)
    assert marker is not None and marker.next_due_at == NOW and marker.account_id == "42"


def test_retracking_keeps_history(aws):
    # Given a tracked Post that has been collected (latest totals, advanced marker)
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    registry.track_post(tweet_id, None, now=NOW)
    registry.update_latest_totals(tweet_id, {"favorites": 5}, at=NOW)
    registry.advance_due(tweet_id, Endpoint.TOTALS, next_due_at="2026-11-25T18:16:00Z", collected_at=NOW)

    # When it is tracked again later
    again = registry.track_post(tweet_id, None, now="2026-11-25T19:00:00Z")

    # Then nothing was reset
    assert again.tracked_at == NOW
    assert again.latest_totals == {"favorites": 5}
    marker = registry.get_due_marker(tweet_id, Endpoint.TOTALS)
    assert marker is not None and marker.next_due_at == "2026-11-25T18:16:00Z" and marker.last_collected_at == NOW


def test_latest_totals_never_goes_back_in_time(aws):
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    registry.track_post(tweet_id, None, now=NOW)
    registry.update_latest_totals(tweet_id, {"favorites": 9}, at="2026-11-25T18:30:00Z")
    registry.update_latest_totals(tweet_id, {"favorites": 3}, at="2026-11-25T18:15:00Z")  # a late redelivery
    post = registry.get_post(tweet_id)
    assert post is not None and post.latest_totals == {"favorites": 9}
    assert isinstance(post.latest_totals["favorites"], int)


def test_untrack_deletes_post_and_markers(aws):
    # Given an owned Post with three markers
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    registry.track_post(tweet_id, "42", now=NOW)

    # When it is untracked
    assert registry.untrack_post(tweet_id) is True

    # Then neither the Post nor any marker remains, and it is no longer due
    assert registry.get_post(tweet_id) is None
    assert all(registry.get_due_marker(tweet_id, e) is None for e in Endpoint)
    assert list(registry.iter_due(Endpoint.TOTALS, NOW)) == []
    assert registry.untrack_post(tweet_id) is False


def test_list_posts_by_account_and_app_with_cursor(aws):
    # Given three app Posts and two Posts of account 42
    registry = registry_dal()
    app_ids = post_ids(3)
    owned_ids = post_ids(2, first=10)
    registry.track_posts(app_ids, None, now=NOW)
    registry.track_posts(owned_ids, "42", now=NOW)

    # When each context is listed
    first = registry.list_posts(None, limit=2)
    second = registry.list_posts("", limit=2, cursor=first.cursor)
    owned = registry.list_posts("42", limit=10)

    # Then the pages hold exactly each context's Posts
    assert [p.tweet_id for p in first.items + second.items] == sorted(app_ids)
    assert [p.tweet_id for p in owned.items] == sorted(owned_ids)


def test_iter_due_streams_every_shard_and_only_due_markers(aws):
    # Given 40 Posts spread over all 16 shards, due now, and 5 due only tomorrow
    registry = registry_dal()
    due_now = post_ids(40)
    later = post_ids(5, first=100)
    registry.track_posts(due_now, None, now=NOW)
    registry.track_posts(later, None, now=NOW)
    for tweet_id in later:
        registry.advance_due(tweet_id, Endpoint.TOTALS, next_due_at="2026-11-26T18:15:00Z", collected_at=NOW)
    assert {due_shard(tweet_id) for tweet_id in due_now} == set(range(DUE_SHARDS))

    # When due markers are streamed with tiny pages
    streamed = list(registry.iter_due(Endpoint.TOTALS, NOW, page_size=3))

    # Then exactly the due Posts come back, once each, with next_due_at read from the index key
    assert sorted(m.tweet_id for m in streamed) == sorted(due_now)
    assert {m.next_due_at for m in streamed} == {NOW}
    assert list(registry.iter_due(Endpoint.HOURLY_28HR, NOW)) == []


def test_advance_due_to_none_stops_collection_but_keeps_history(aws):
    # Given an owned Post due on /28hr
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    registry.track_post(tweet_id, "42", now=NOW)

    # When its /28hr marker is advanced with no next time
    assert registry.advance_due(
        tweet_id, Endpoint.HOURLY_28HR, next_due_at=None, collected_at=NOW, last_hour_collected="2026-11-25T17:00:00Z"
    )

    # Then it is never due again, but the marker remembers the last collection
    assert list(registry.iter_due(Endpoint.HOURLY_28HR, "2030-01-01T00:00:00Z")) == []
    marker = registry.get_due_marker(tweet_id, Endpoint.HOURLY_28HR)
    assert marker is not None and marker.last_hour_collected == "2026-11-25T17:00:00Z" and marker.next_due_at is None


def test_advance_due_does_not_resurrect_untracked_posts(aws):
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    assert registry.advance_due(tweet_id, Endpoint.TOTALS, next_due_at=NOW, collected_at=NOW) is False
    assert registry.get_due_marker(tweet_id, Endpoint.TOTALS) is None


def test_track_post_rejects_non_numeric_ids(aws):
    with pytest.raises(ValueError, match="digits"):
        registry_dal().track_post("12a", None, now=NOW)


def test_a_cursor_of_another_partition_is_refused_before_dynamodb_sees_it(aws):
    # Given two accounts' Post lists, each longer than a page, and two Posts' hourly points
    from tests.stack_dal import metrics_dal
    from xengage.dal.metrics import MetricPoint

    registry = registry_dal()
    for account, first in (("7", 1861234567890123456), ("8", 1861234567890123556)):
        registry.put_account(account, f"a{account}", now=NOW)
        registry.write_new_posts([str(first + n) for n in range(3)], account, now=NOW)
    points = [
        MetricPoint(tweet_id, Endpoint.HOURLY_28HR, f"2026-11-20T0{h}:00:00Z", {"impressions": h}, NOW, "7")
        for tweet_id in ("1861234567890123456", "1861234567890123457")
        for h in range(3)
    ]
    metrics_dal().put_points(points)
    posts_cursor = registry.list_posts("7", limit=1).cursor
    points_cursor = metrics_dal().query_points("1861234567890123456", Endpoint.HOURLY_28HR, limit=1).cursor

    # Then a cursor used on another partition, or outside the from/to it was not issued for, is InvalidCursor
    with pytest.raises(InvalidCursor):
        registry.list_posts("8", limit=1, cursor=posts_cursor)
    with pytest.raises(InvalidCursor):
        metrics_dal().query_points("1861234567890123457", Endpoint.HOURLY_28HR, limit=1, cursor=points_cursor)
    with pytest.raises(InvalidCursor):
        metrics_dal().query_points(
            "1861234567890123456", Endpoint.HOURLY_28HR, start="2026-11-20T01:00:00Z", cursor=points_cursor
        )
    # And on its own listing it pages on
    assert registry.list_posts("7", limit=1, cursor=posts_cursor).items
