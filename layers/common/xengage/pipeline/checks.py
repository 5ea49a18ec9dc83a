"""Data checks on a Post's series (docs/DESIGN.md, "Data checks"): a /totals series that decreases, and /totals
values that drift from the sum of the /historical hour buckets.

Plain functions over what the due markers keep (`SeriesState`): the collector runs them as it settles, and
`GET /tweets/{id}` shows what they found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint, MetricsDal
from xengage.dal.series_state import HourSums, SeriesState
from xengage.timeutil import floor_hour, parse_iso, snowflake_created_at, to_iso

# A difference is drift only past both bounds: counts differ by a few between the two endpoints' roll-ups, and
# the /totals snapshot compared is taken up to SNAPSHOT_GAP from the end of the hours summed (engagement in between).
DRIFT_MIN_DIFFERENCE: Final = 5
DRIFT_SHARE: Final = 0.05
SNAPSHOT_GAP: Final = timedelta(hours=24)
HOUR: Final = timedelta(hours=1)

DriftStatus = Literal["ok", "drift", "not_comparable"]
OK: Final = "ok"
DRIFT: Final = "drift"
NOT_COMPARABLE: Final = "not_comparable"


def totals_decrease(previous: SeriesState, totals: Mapping[str, int], at: str) -> dict[str, Any] | None:
    """The metrics of a /totals snapshot taken at `at` that are lower than in the previous one, or None.

    A snapshot no newer than the one kept (a redelivery, a live query in between) is not compared.
    """
    if previous.latest_totals_at is None or previous.latest_totals_at >= at:
        return None
    fell = {
        metric: {"from": previous.latest_totals[metric], "to": value}
        for metric, value in totals.items()
        if metric in previous.latest_totals and value < previous.latest_totals[metric]
    }
    return {"metrics": fell, "at": at, "previous_at": previous.latest_totals_at} if fell else None


def next_hour_sums(state: SeriesState, hours: Sequence[tuple[datetime, Mapping[str, int]]]) -> HourSums | None:
    """The /historical sums moved on by the hours fetched that they do not hold yet (at or after
    `hour_sums_through`), or None when there are none: hours fetched again are never added twice."""
    through = state.hour_sums_through
    new = [(hour, values) for hour, values in hours if through is None or to_iso(hour) >= through]
    if not new:
        return None
    sums: Counter[str] = Counter(state.hour_sums)
    for _hour, values in new:
        sums.update(values)
    first = state.hour_sums_from or to_iso(min(hour for hour, _ in new))
    return HourSums(dict(sums), first, to_iso(max(hour for hour, _ in new) + HOUR), through)


@dataclass(frozen=True, slots=True)
class MetricDrift:
    metric: str
    totals: int
    hours_sum: int

    @property
    def difference(self) -> int:
        return self.totals - self.hours_sum

    @property
    def drifts(self) -> bool:
        return abs(self.difference) > max(DRIFT_MIN_DIFFERENCE, DRIFT_SHARE * abs(self.totals))


@dataclass(frozen=True, slots=True)
class DriftCheck:
    status: DriftStatus  # NOT_COMPARABLE: `reason` says why
    reason: str | None = None
    totals_at: str | None = None
    hours_from: str | None = None
    hours_through: str | None = None
    metrics: tuple[MetricDrift, ...] = ()


def historical_drift(tweet_id: str, state: SeriesState, snapshot: MetricPoint | None) -> DriftCheck:
    """Compare the /historical sums of a Post (its /historical marker's `state`) with the /totals `snapshot` taken
    nearest the end of the hours summed."""
    unusable = _not_comparable(tweet_id, state, snapshot)
    if unusable is not None:
        return DriftCheck(NOT_COMPARABLE, reason=unusable)
    assert snapshot is not None
    metrics = tuple(
        MetricDrift(metric, value, state.hour_sums[metric])
        for metric, value in sorted(snapshot.metrics.items())
        if metric in state.hour_sums
    )
    if not metrics:
        return DriftCheck(NOT_COMPARABLE, reason="no metric is in both the /totals snapshot and the hour sums")
    return DriftCheck(
        DRIFT if any(metric.drifts for metric in metrics) else OK,
        totals_at=snapshot.at,
        hours_from=state.hour_sums_from,
        hours_through=state.hour_sums_through,
        metrics=metrics,
    )


def drift_of(tweet_id: str, state: SeriesState, metrics: MetricsDal) -> DriftCheck:
    """`historical_drift` with the /totals snapshot nearest the end of the hours summed, read from the series (two
    Queries of one item: the one before, the one after), and only when the sums cover the Post from its first hour."""
    through = state.hour_sums_through
    if _sums_unusable(tweet_id, state) is not None or through is None:
        return historical_drift(tweet_id, state, None)
    before = metrics.query_points(tweet_id, Endpoint.TOTALS, end=through, limit=1, descending=True).items
    after = metrics.query_points(tweet_id, Endpoint.TOTALS, start=through, limit=1).items
    end = parse_iso(through)
    nearest = min(before + after, key=lambda point: abs(parse_iso(point.at) - end), default=None)
    return historical_drift(tweet_id, state, nearest)


def _sums_unusable(tweet_id: str, state: SeriesState) -> str | None:
    if state.hour_sums_from is None or state.hour_sums_through is None:
        return "no /historical hours collected yet"
    if state.hour_sums_from > to_iso(floor_hour(snowflake_created_at(tweet_id))):
        return "the /historical hours start after the Post's first hour (collected from later on)"
    return None


def _not_comparable(tweet_id: str, state: SeriesState, snapshot: MetricPoint | None) -> str | None:
    unusable = _sums_unusable(tweet_id, state)
    if unusable is not None:
        return unusable
    assert state.hour_sums_through is not None
    if snapshot is None:
        return "no /totals snapshot stored"
    if abs(parse_iso(state.hour_sums_through) - parse_iso(snapshot.at)) > SNAPSHOT_GAP:
        return f"the nearest /totals snapshot is more than {SNAPSHOT_GAP} from the end of the hours summed"
    return None
