"""Property tests of parse_response over generated grouping shapes: level orders, grouping names,
value forms (integer string or bare number) and a day level above a requested hour level (trap 12)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from xengage.api_client import parse_response
from xengage.api_client.parsing import RESERVED_KEYS

ID, TYPE, DAY, HOUR = "tweet.id", "engagement.type", "engagement.day", "engagement.hour"

Key = tuple[str, str, str | None, int | None]  # tweet id, metric, day, hour

metric_names = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True)
grouping_names = st.text(min_size=1, max_size=20).filter(lambda name: name not in RESERVED_KEYS)
days = st.dates(min_value=date(2015, 1, 1), max_value=date(2027, 12, 31)).map(date.isoformat)


@st.composite
def answers(draw: st.DrawFn, *, short_ids: bool) -> tuple[dict[str, Any], dict[str, list[str]] | None, dict[Key, int]]:
    """An answer body, the group_by the request sent (None: unknown), and the leaves it must yield."""
    id_pattern = r"[1-9][0-9]{0,18}" if short_ids else r"[1-9][0-9]{2,18}"
    ids = draw(st.lists(st.from_regex(id_pattern, fullmatch=True), min_size=1, max_size=4, unique=True))
    metrics = draw(st.lists(metric_names, min_size=1, max_size=4, unique=True))
    time_levels = draw(st.sampled_from(["none", "day", "day+hour"]))
    levels = [ID, TYPE] + {"none": [], "day": [DAY], "day+hour": [DAY, HOUR]}[time_levels]
    order = draw(st.permutations(levels))
    if HOUR in order and order.index(DAY) > order.index(HOUR):
        # The API never nests an hour above its day; put the day right above the hour.
        order = [level for level in order if level != DAY]
        order.insert(order.index(HOUR), DAY)
    leaves: dict[Key, int] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        key: Key = (
            draw(st.sampled_from(ids)),
            draw(st.sampled_from(metrics)),
            draw(days) if DAY in order else None,
            draw(st.integers(min_value=0, max_value=23)) if HOUR in order else None,
        )
        leaves[key] = draw(st.integers(min_value=0, max_value=10**12))
    tree: dict[str, Any] = {}
    as_bare = draw(st.booleans())
    for (tweet_id, metric, day, hour), value in leaves.items():
        parts = {ID: tweet_id, TYPE: metric, DAY: day or "", HOUR: f"{hour:02d}" if hour is not None else ""}
        node = tree
        for level in order[:-1]:
            node = node.setdefault(parts[level], {})
        node[parts[order[-1]]] = value if as_bare and draw(st.booleans()) else str(value)
    name = draw(grouping_names)
    asked = [level for level in order if level != DAY or draw(st.booleans()) or HOUR not in order]  # trap 12
    group_by = {name: asked} if draw(st.booleans()) or short_ids else None
    return {name: tree, "start": "2015-01-01T00:00:00Z"}, group_by, leaves


def _flatten(parsed_posts: dict[str, Any]) -> dict[Key, int]:
    found: dict[Key, int] = {}
    for tweet_id, post in parsed_posts.items():
        for metric, value in post.totals.items():
            found[(tweet_id, metric, None, None)] = value
        for day, values in post.daily.items():
            for metric, value in values.items():
                found[(tweet_id, metric, day, None)] = value
        for hour_start, values in post.hourly.items():
            assert hour_start.tzinfo is UTC and hour_start.minute == 0
            for metric, value in values.items():
                found[(tweet_id, metric, hour_start.date().isoformat(), hour_start.hour)] = value
    return found


@settings(max_examples=100, deadline=None)
@given(answers(short_ids=True))
def test_every_leaf_is_recovered_when_the_request_group_by_is_known(case: Any) -> None:
    # Given an answer nested in any order (day possibly not asked but present), values string or bare
    body, group_by, leaves = case
    # When it is parsed with the group_by the request sent
    parsed = parse_response(body, group_by)
    # Then exactly the generated leaves come back, keyed by Post, metric, day and hour
    assert _flatten(parsed.posts) == leaves
    assert parsed.start == datetime.combine(date(2015, 1, 1), time(0), tzinfo=UTC)


@settings(max_examples=100, deadline=None)
@given(answers(short_ids=False))
def test_every_leaf_is_recovered_from_key_shapes_alone(case: Any) -> None:
    # Given an answer whose Tweet ids cannot be mistaken for hours (3+ digits)
    body, group_by, leaves = case
    # When it is parsed with or without the request's group_by
    parsed = parse_response(body, group_by)
    # Then the levels are inferred from the key shapes and every leaf comes back
    assert _flatten(parsed.posts) == leaves
