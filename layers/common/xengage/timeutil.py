"""ISO-8601 UTC time helpers (`YYYY-MM-DDTHH:MM:SSZ`, the one format stored everywhere) and Post age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# X snowflake ids carry their creation time: (id >> 22) ms after this epoch (2010-11-04T01:42:54.657Z).
SNOWFLAKE_EPOCH_MS = 1288834974657


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """Format an aware datetime as `YYYY-MM-DDTHH:MM:SSZ` (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp or date into an aware UTC datetime; ValueError names the bad text."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"not an ISO-8601 UTC timestamp: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + timedelta(hours=1)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def snowflake_created_at(tweet_id: str | int) -> datetime:
    """Creation time of a Post from its snowflake id (ids before Nov 2010 are not snowflakes: clamp to the epoch)."""
    millis = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def post_age(tweet_id: str | int, at: datetime) -> timedelta:
    return at - snowflake_created_at(tweet_id)
