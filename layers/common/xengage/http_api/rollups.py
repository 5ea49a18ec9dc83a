"""An account's figures per hour or per UTC day: the sums over its Posts' hour buckets, read from its rollup items
(kept by the collector's writes, docs/DESIGN.md "Rollups"): one Query, whatever the number of Posts."""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from xengage.api_client.catalog import Endpoint
from xengage.dal.series import day_of, hour_at
from xengage.http_api import context
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import answers, bad_request
from xengage.http_api.metrics import CSV_CONTENT_TYPE, as_csv, wants_csv
from xengage.http_api.models import AccountMetricsOut, MetricPoint
from xengage.http_api.params import TIMESTAMP_MAX, UserIdPath, metric_names, parse_range
from xengage.timeutil import to_iso, utc_now

router = Router()

Granularity = Literal["hour", "day"]
DEFAULT_RANGE: Final = timedelta(days=7)
MAX_RANGE: Final[dict[str, timedelta]] = {"hour": timedelta(days=31), "day": timedelta(days=366)}


def account_range(granularity: str, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """from/to with their defaults (to: now; from: 7 days before to), no longer than the granularity allows."""
    end = end or max(utc_now(), start or utc_now())
    start = start or end - DEFAULT_RANGE
    if end - start > MAX_RANGE[granularity]:
        raise bad_request(
            "range_too_long",
            f"from/to: granularity={granularity} answers at most {MAX_RANGE[granularity].days} days, "
            f"not {(end - start) / timedelta(days=1):.1f}",
        )
    return start, end


def account_points(
    account_id: str, endpoint: Endpoint, granularity: str, start: datetime, end: datetime, names: list[str]
) -> list[tuple[str, dict[str, int]]]:
    """(at, sums) per hour in [start, end], or per UTC day from day(start) to day(end) (whole days)."""
    low, high = to_iso(start), to_iso(end)
    wanted = set(names)
    points: list[tuple[str, dict[str, int]]] = []
    for day, hours in context.deps().metrics.account_days(
        account_id, endpoint, first_day=day_of(low), last_day=day_of(high)
    ):
        if granularity == "day":
            sums: dict[str, int] = {}
            for values in hours.values():
                for name, value in values.items():
                    sums[name] = sums.get(name, 0) + value
            points.append((hour_at(day, 0), sums))
        else:
            points += [(at, values) for hour, values in hours.items() if low <= (at := hour_at(day, hour)) <= high]
    if wanted:
        points = [(at, {name: value for name, value in sums.items() if name in wanted}) for at, sums in points]
    return points


@router.get(
    "/accounts/<user_id>/metrics",
    summary="An account's figures per hour or per day: the sums over its Posts' hour buckets",
    description="From the account's rollups, which the collector's writes keep equal to the sums of its Posts' "
    "stored /28hr or /historical hour buckets. granularity=hour: one point per hour in [from, to] (at most 31 "
    "days); day: one per UTC day from the day of `from` to the day of `to`, whole days (at most 366). Defaults: "
    "to = now, from = 7 days before. A metric that sums to 0 may be absent. CSV (`at,<metric>...`) with "
    "`Accept: text/csv` or `?format=csv`.",
    tags=["metrics"],
    responses=answers(
        {400: "not a time-series endpoint, unknown metric, bad or too long range", 404: "account not registered"},
        custom={
            200: {
                "description": "the account's points",
                "content": {
                    "application/json": {"model": AccountMetricsOut},
                    CSV_CONTENT_TYPE: {"schema": {"type": "string"}},
                },
            }
        },
    ),
)
def get_account_metrics(
    user_id: UserIdPath,
    endpoint: Annotated[Endpoint, Query(description="28hr or historical")],
    granularity: Annotated[Granularity, Query()] = "hour",
    from_: Annotated[
        str | None, Query(alias="from", max_length=TIMESTAMP_MAX, description="ISO-8601 UTC, inclusive")
    ] = None,
    to: Annotated[str | None, Query(max_length=TIMESTAMP_MAX, description="ISO-8601 UTC, inclusive")] = None,
    metrics: Annotated[str | None, Query(description="comma-separated metric names", max_length=1000)] = None,
    format_: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
) -> Response[Any]:
    if not endpoint.is_time_series:
        raise bad_request("unsupported_endpoint", "endpoint: rollups sum hour buckets: use 28hr or historical")
    names = metric_names(endpoint, (metrics or "").split(","), field="metrics")
    start, end = account_range(granularity, *parse_range("from", from_, "to", to))
    require_account(user_id)
    points = account_points(user_id, endpoint, granularity, start, end, names)
    if wants_csv(format_, router.current_event.headers.get("Accept")):
        return Response(HTTPStatus.OK, content_type=CSV_CONTENT_TYPE, body=as_csv(endpoint, points, names))
    out = AccountMetricsOut(
        account_id=user_id,
        endpoint=endpoint,
        granularity=granularity,
        from_=to_iso(start),
        to=to_iso(end),
        points=[MetricPoint(at=at, metrics=sums) for at, sums in points],
    )
    return Response(HTTPStatus.OK, content_type="application/json", body=out.model_dump_json(by_alias=True))
