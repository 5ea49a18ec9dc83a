"""How often each endpoint is collected, by Post age (age from the snowflake id, no API call needed).

/totals (a snapshot of lifetime counts):
    every tick while the Post is < 48 h old, hourly while < 30 days, every 6 h while < 90 days, daily after.
/28hr (hourly series of the last 28 hours; each run re-reads the window, so overlaps just upsert):
    hourly while the Post is < 7 days old, daily up to 30 days, then never again — /historical covers it.
/historical (hourly series over an explicit window):
    daily while the Post is < 365 days old (the API's look-back), each run asking for the hours from
    `last_hour_collected` (or the Post's creation hour, but never more than 365 days back) to the scheduled hour.

`next_due_at` returns None when an endpoint stops; the collector then drops the marker from DueIndex.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from xengage.api_client.catalog import HISTORICAL_LOOKBACK, Endpoint
from xengage.timeutil import ceil_hour, floor_hour, post_age, snowflake_created_at

# The schedule's finest granularity is a minute, so "due a minute later" means "due at the next tick".
NEXT_TICK: Final = timedelta(minutes=1)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)


def next_due_at(endpoint: Endpoint, tweet_id: str, collected_for: datetime) -> datetime | None:
    """When `endpoint` is next due for this Post, after a collection for the tick `collected_for`."""
    age = post_age(tweet_id, collected_for)
    if endpoint is Endpoint.TOTALS:
        if age < timedelta(hours=48):
            return collected_for + NEXT_TICK
        if age < timedelta(days=30):
            return collected_for + HOUR
        if age < timedelta(days=90):
            return collected_for + timedelta(hours=6)
        return collected_for + DAY
    if endpoint is Endpoint.HOURLY_28HR:
        if age < timedelta(days=7):
            return collected_for + HOUR
        if age < timedelta(days=30):
            return collected_for + DAY
        return None
    if age < HISTORICAL_LOOKBACK:
        return collected_for + DAY
    return None


def historical_window(
    tweet_id: str, last_hour_collected: datetime | None, scheduled_time: datetime
) -> tuple[datetime, datetime] | None:
    """The hours /historical should fetch at this tick, or None when there is no whole hour to fetch yet."""
    end = floor_hour(scheduled_time)
    start = last_hour_collected if last_hour_collected is not None else floor_hour(snowflake_created_at(tweet_id))
    start = max(start, earliest_historical_start(scheduled_time))
    if start >= end:
        return None
    return start, end


def earliest_historical_start(now: datetime) -> datetime:
    """The oldest whole hour /historical still serves at `now`: the first hour boundary within 365 days.

    The collector clamps a planned window to this again when it runs: a message planned at 06:00 and collected
    at 06:45 would otherwise ask for 45 minutes beyond the look-back, which the API (and the client) refuse.
    """
    return ceil_hour(now - HISTORICAL_LOOKBACK)
