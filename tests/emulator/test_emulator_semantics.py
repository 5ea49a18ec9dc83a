"""What the data endpoints answer: unavailable and protected Posts, age rules, response shapes, consistency."""

from __future__ import annotations

from datetime import timedelta
from itertools import permutations
from typing import Any

from local.emulator import FaultConfig, PostState
from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, NOW, PUBLIC_METRICS, UNRELATED_USER_ID, Api

FOUR = ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]


def _post_aged(api: Api, user_id: str, age: timedelta, *, video: bool | None = None) -> str:
    """A new public Post of `user_id` created `age` before the emulator's now (ids minted from the time)."""
    post = api.world.add_post(user_id, NOW - age, has_video=bool(video))
    return post.tweet_id


def test_protected_post_fails_the_whole_request_without_naming_it(api: Api) -> None:
    # Given two public Posts and one protected Post of the same owner
    public = api.ids(BRAND_USER_ID)[:2]
    (protected,) = api.ids(BRAND_USER_ID, PostState.PROTECTED)
    # When asking about all three, even with the owner's own tokens
    response = api.query("totals", [*public, protected], ["impressions"], auth=api.oauth(BRAND_USER_ID))
    # Then 400 "Tweet ID(s) are unavailable" and no id anywhere in the body (the client must bisect)
    assert response.status_code == 400
    assert response.json() == {"errors": ["Tweet ID(s) are unavailable"]}
    assert all(tweet_id not in response.text for tweet_id in [*public, protected])


def test_protected_post_is_400_for_the_bearer_too(api: Api) -> None:
    # Given a protected Post / When read with the app bearer / Then the same 400
    (protected,) = api.ids(CLIENT_USER_ID, PostState.PROTECTED)
    response = api.query("totals", [protected], ["favorites"], headers=api.bearer())
    assert response.status_code == 400
    assert response.json() == {"errors": ["Tweet ID(s) are unavailable"]}


def test_deleted_and_unknown_posts_are_listed_unavailable_with_data_for_the_rest(api: Api) -> None:
    # Given a public Post, a deleted Post and an id that never existed
    public = api.ids(BRAND_USER_ID)[0]
    (deleted,) = api.ids(BRAND_USER_ID, PostState.DELETED)
    never = "1234567890123456789"
    # When asking about all of them
    response = api.query("28hr", [public, deleted, never], ["impressions"], auth=api.oauth(BRAND_USER_ID))
    # Then 200: data for the public Post only, the others in unavailable_tweet_ids
    assert response.status_code == 200
    body = response.json()
    assert body["unavailable_tweet_ids"] == [deleted, never]
    assert set(body["per_tweet"]) == {public}


def test_deleting_a_post_while_running_moves_it_to_unavailable(api: Api) -> None:
    # Given a Post that answers normally
    tweet_id = api.ids(BRAND_USER_ID)[0]
    assert tweet_id in api.query("totals", [tweet_id], ["favorites"], headers=api.bearer()).json()["per_tweet"]
    # When it is deleted in the world / Then the next call lists it as unavailable
    api.world.set_state(tweet_id, PostState.DELETED)
    body = api.query("totals", [tweet_id], ["favorites"], headers=api.bearer()).json()
    assert body["unavailable_tweet_ids"] == [tweet_id]
    assert body["per_tweet"] == {}


def test_totals_leaves_out_impressions_for_posts_older_than_90_days(api: Api) -> None:
    # Given Posts aged 89 and 91 days
    young = _post_aged(api, BRAND_USER_ID, timedelta(days=89))
    old = _post_aged(api, BRAND_USER_ID, timedelta(days=91))
    # When /totals is asked for impressions, engagements and favorites
    response = api.query(
        "totals", [young, old], ["impressions", "engagements", "favorites"], auth=api.oauth(BRAND_USER_ID)
    )
    # Then 200: the old Post keeps favorites only, is listed, and the documented error string is present
    assert response.status_code == 200
    body = response.json()
    assert set(body["per_tweet"][young]) == {"impressions", "engagements", "favorites"}
    assert set(body["per_tweet"][old]) == {"favorites"}
    assert body["unsupported_for_impressions_engagements_tweet_ids"] == [old]
    (message,) = body["errors"]
    assert message.startswith("Impressions & engagements for tweets older than 90 days (")
    assert message.endswith(") are not supported")


def test_the_90_day_rule_follows_the_injected_clock(api: Api) -> None:
    # Given a Post 80 days old at the emulator's now
    tweet_id = _post_aged(api, BRAND_USER_ID, timedelta(days=80))
    auth = api.oauth(BRAND_USER_ID)
    assert (
        "unsupported_for_impressions_engagements_tweet_ids"
        not in api.query("totals", [tweet_id], ["impressions"], auth=auth).json()
    )
    # When the clock moves 20 days on / Then the same Post is now too old for impressions
    api.emu.set_now(NOW + timedelta(days=20))
    body = api.query("totals", [tweet_id], ["impressions"], auth=api.oauth(BRAND_USER_ID)).json()
    assert body["unsupported_for_impressions_engagements_tweet_ids"] == [tweet_id]


def test_video_views_older_than_1800_days_are_unsupported_but_other_metrics_stay(api: Api) -> None:
    # Given video Posts aged 1,790 and 1,810 days
    young = _post_aged(api, UNRELATED_USER_ID, timedelta(days=1790), video=True)
    old = _post_aged(api, UNRELATED_USER_ID, timedelta(days=1810), video=True)
    # When the bearer asks for public metrics
    response = api.query("totals", [young, old], PUBLIC_METRICS, headers=api.bearer())
    # Then the old one is listed as unsupported for video views, its other metrics still come back,
    # and its video_views reads "0" exactly as in the documented example
    assert response.status_code == 200
    body = response.json()
    assert body["unsupported_for_video_views_tweet_ids"] == [old]
    assert body["per_tweet"][old]["video_views"] == "0"
    assert int(body["per_tweet"][old]["favorites"]) > 0
    assert int(body["per_tweet"][young]["video_views"]) > 0
    assert "errors" not in body


def _tree_depth(node: Any) -> int:
    return 1 + max(map(_tree_depth, node.values())) if isinstance(node, dict) else 0


def test_grouping_shapes_follow_group_by_order(api: Api) -> None:
    # Given two Posts and three groupings in different orders
    tweet_ids = api.ids(BRAND_USER_ID)[:2]
    groupings = {
        "by_id": {"group_by": FOUR},
        "by_type": {"group_by": ["engagement.type", "tweet.id", "engagement.hour"]},
        "daily": {"group_by": ["engagement.type", "engagement.day"]},
    }
    # When /28hr is requested
    body = api.query("28hr", tweet_ids, ["impressions", "favorites"], groupings, auth=api.oauth(BRAND_USER_ID)).json()
    # Then each grouping nests in its own order with day keys YYYY-MM-DD and hour keys "00".."23"
    first = tweet_ids[0]
    day = NOW.strftime("%Y-%m-%d")
    assert set(body["by_id"]) == set(tweet_ids)
    assert set(body["by_id"][first]) == {"impressions", "favorites"}
    assert set(body["by_type"]) == {"impressions", "favorites"}
    assert set(body["by_type"]["impressions"]) == set(tweet_ids)
    assert body["by_id"][first]["impressions"][day]["12"] == body["by_type"]["impressions"][first][day]["12"]
    assert all(len(h) == 2 and h.isdigit() for h in body["by_id"][first]["impressions"][day])
    # and the daily grouping sums both Posts per day
    per_day = sum(int(v) for tid in tweet_ids for v in body["by_id"][tid]["impressions"][day].values())
    assert int(body["daily"]["impressions"][day]) == per_day


def test_hour_without_day_still_nests_a_day_level(api: Api) -> None:
    # Given group_by tweet.id, engagement.type, engagement.hour (doc trap 12)
    tweet_id = api.ids(BRAND_USER_ID)[0]
    groupings = {"g": {"group_by": ["tweet.id", "engagement.type", "engagement.hour"]}}
    # When requested
    body = api.query("28hr", [tweet_id], ["impressions"], groupings, auth=api.oauth(BRAND_USER_ID)).json()
    # Then there is a day level above the hour level: 4 levels deep, not 3
    series = body["g"][tweet_id]["impressions"]
    assert set(series) == {(NOW - timedelta(days=1)).strftime("%Y-%m-%d"), NOW.strftime("%Y-%m-%d")}
    assert _tree_depth(body["g"]) == 4


def test_grand_totals_sum_over_posts(api: Api) -> None:
    # Given the documented "Grand Totals" grouping next to a per-Post grouping
    tweet_ids = api.ids(BRAND_USER_ID)[:3]
    groupings = {
        "Grand Totals": {"group_by": ["engagement.type"]},
        "per": {"group_by": ["tweet.id", "engagement.type"]},
    }
    # When /totals is requested with the bearer
    body = api.query("totals", tweet_ids, ["favorites", "replies", "retweets"], groupings, headers=api.bearer()).json()
    # Then each grand total is the sum of the per-Post values
    for metric in ("favorites", "replies", "retweets"):
        assert int(body["Grand Totals"][metric]) == sum(int(body["per"][t][metric]) for t in tweet_ids)


def test_time_level_above_tweet_id_is_served(api: Api) -> None:
    # Given an unusual order with the day first
    tweet_id = api.ids(BRAND_USER_ID)[0]
    groupings = {"g": {"group_by": ["engagement.day", "tweet.id"]}}
    body = api.query("28hr", [tweet_id], ["impressions"], groupings, auth=api.oauth(BRAND_USER_ID)).json()
    # Then days are the top level and the per-Post values below them are integer strings
    assert set(body["g"]) == {(NOW - timedelta(days=1)).strftime("%Y-%m-%d"), NOW.strftime("%Y-%m-%d")}
    assert all(values[tweet_id].isdigit() for values in body["g"].values())


def test_totals_grow_monotonically_as_time_passes(api: Api) -> None:
    # Given a Post 2 hours old
    tweet_id = _post_aged(api, BRAND_USER_ID, timedelta(hours=2), video=True)
    metrics = ["impressions", "engagements", *PUBLIC_METRICS]
    readings = []
    # When /totals is read every 3 hours for two days of emulator time
    for step in range(16):
        api.emu.set_now(NOW + timedelta(hours=3 * step))
        body = api.query("totals", [tweet_id], metrics, auth=api.oauth(BRAND_USER_ID)).json()
        readings.append({m: int(v) for m, v in body["per_tweet"][tweet_id].items()})
    # Then no metric ever goes down, and impressions actually grew
    for metric in metrics:
        values = [reading[metric] for reading in readings]
        assert values == sorted(values), metric
    assert readings[-1]["impressions"] > readings[0]["impressions"]


def test_hourly_buckets_sum_to_totals_for_a_young_post(api: Api) -> None:
    # Given a Post 20 hours old: /28hr covers its whole life
    tweet_id = _post_aged(api, BRAND_USER_ID, timedelta(hours=20), video=True)
    metrics = ["impressions", "engagements", "favorites", "retweets", "replies", "video_views"]
    auth = api.oauth(BRAND_USER_ID)
    # When reading /28hr and /totals at the same emulator time
    hourly = api.query("28hr", [tweet_id], metrics, {"h": {"group_by": FOUR}}, auth=auth).json()["h"][tweet_id]
    totals = api.query("totals", [tweet_id], metrics, auth=api.oauth(BRAND_USER_ID)).json()["per_tweet"][tweet_id]
    # Then for every metric the hourly buckets add up to the total
    for metric in metrics:
        bucket_sum = sum(int(v) for hours in hourly[metric].values() for v in hours.values())
        assert bucket_sum == int(totals[metric]), metric


def test_historical_window_sum_matches_difference_of_totals(api: Api) -> None:
    # Given a Post 10 days old and a historical window from 6 days ago to 2 days ago
    tweet_id = _post_aged(api, BRAND_USER_ID, timedelta(days=10))
    start, end = NOW.replace(minute=0) - timedelta(days=6), NOW.replace(minute=0) - timedelta(days=2)
    auth = api.oauth
    window = api.query(
        "historical",
        [tweet_id],
        ["favorites"],
        auth=auth(BRAND_USER_ID),
        start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ).json()["per_tweet"][tweet_id]["favorites"]
    # When the totals are read with the clock at the window's start and end
    readings = []
    for moment in (start, end):
        api.emu.set_now(moment)
        readings.append(
            int(
                api.query("totals", [tweet_id], ["favorites"], headers=api.bearer()).json()["per_tweet"][tweet_id][
                    "favorites"
                ]
            )
        )
    # Then the window's sum is exactly their difference
    assert int(window) == readings[1] - readings[0]


def test_bare_number_share_turns_some_values_into_numbers(api: Api) -> None:
    # Given half the values configured to come back as bare numbers (doc trap 3)
    api.emu.set_faults(FaultConfig(bare_number_share=0.5))
    tweet_ids = api.ids(BRAND_USER_ID)[:5]
    # When /totals is read
    grouping = api.query("totals", tweet_ids, PUBLIC_METRICS, headers=api.bearer()).json()["per_tweet"]
    values = [v for metrics in grouping.values() for v in metrics.values()]
    # Then both strings and ints appear, and they still parse as the same kind of integers
    assert any(isinstance(v, int) for v in values) and any(isinstance(v, str) for v in values)
    assert all(int(str(v)) >= 0 for v in values)


def _leaves(node: Any) -> list[int]:
    return [leaf for child in node.values() for leaf in _leaves(child)] if isinstance(node, dict) else [int(node)]


def test_every_group_by_order_nests_as_asked_and_keeps_the_grand_total(api: Api) -> None:
    # Given every ordered choice of 1 to 3 group_by items, and the two 4-item orders
    items = ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]
    smaller = [list(p) for size in (1, 2, 3) for p in permutations(items, size)]
    orders = [FOUR, *smaller, ["engagement.type", "tweet.id", "engagement.day", "engagement.hour"]]
    tweet_ids = api.ids(BRAND_USER_ID)[:3]
    metrics = ["impressions", "favorites"]
    grand_total = None
    # When each is requested (three groupings per request, at most one with 4 items)
    for offset in range(0, len(orders), 3):
        chunk = {f"g{offset + i}": {"group_by": order} for i, order in enumerate(orders[offset : offset + 3])}
        response = api.query("28hr", tweet_ids, metrics, chunk, auth=api.oauth(BRAND_USER_ID))
        assert response.status_code == 200, response.text
        body = response.json()
        for name, spec in chunk.items():
            group_by = spec["group_by"]
            # Then the depth is the number of levels, plus a day level when only the hour was asked for
            expected_depth = len(group_by) + ("engagement.hour" in group_by and "engagement.day" not in group_by)
            assert _tree_depth(body[name]) == expected_depth, group_by
            # and summing every leaf gives the same grand total whatever the order
            total = sum(_leaves(body[name]))
            grand_total = total if grand_total is None else grand_total
            assert total == grand_total, group_by
    assert grand_total is not None and grand_total > 0
