"""GET /usage: the @handle billing guard's ledger for a month (docs/DESIGN.md, "The @handle billing guard")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Final

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from xengage.http_api import context
from xengage.http_api.errors import answers, bad_request
from xengage.http_api.models import CallCounts, UsageAccountOut, UsageDayOut, UsageOut
from xengage.timeutil import utc_now

if TYPE_CHECKING:
    from xengage.dal.usage import MonthUsage

router = Router()

MONTH_FORMAT: Final = "%Y-%m"


def parse_month(month: str | None, *, today: date) -> date:
    """The first day of `month` (YYYY-MM; none: this month); 400 for anything else or a month still to come."""
    if not month:
        return today.replace(day=1)
    try:
        first = datetime.strptime(month, MONTH_FORMAT).date()
    except ValueError:
        raise bad_request("invalid_month", f"month: {month[:20]!r} is not a month as YYYY-MM (e.g. 2026-12)") from None
    if len(month) != 7 or first > today:
        raise bad_request("invalid_month", f"month: {month[:20]!r} is not YYYY-MM of this month or a past one")
    return first


def month_days(first: date, *, today: date) -> list[date]:
    """The month's days, up to today for the current month."""
    after = (first + timedelta(days=32)).replace(day=1)
    last = min(after - timedelta(days=1), today)
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def usage_report(usage: MonthUsage, first: date, *, cap: int | None, today: date) -> UsageOut:
    new_by_day: dict[str, int] = {}
    for account in usage.accounts:
        day = account.first_call_at[:10]
        new_by_day[day] = new_by_day.get(day, 0) + 1
    days = [
        UsageDayOut(
            day=day.isoformat(),
            new_handles=new_by_day.get(day.isoformat(), 0),
            calls=CallCounts.model_validate(usage.calls_by_day.get(day.isoformat(), {})),
        )
        for day in month_days(first, today=today)
    ]
    month_calls: dict[str, int] = {}
    for calls in usage.calls_by_day.values():
        for endpoint, made in calls.items():
            month_calls[endpoint] = month_calls.get(endpoint, 0) + made
    return UsageOut(
        month=usage.month,
        unique_handles=usage.unique_handles,
        cap=cap,
        capped=cap is not None and usage.unique_handles >= cap,
        accounts=[
            UsageAccountOut(account_id=a.account_id, handle=a.handle, first_call_at=a.first_call_at)
            for a in usage.accounts
        ],
        days=days,
        calls=CallCounts.model_validate(month_calls),
    )


@router.get(
    "/usage",
    summary="A month's unique @handles (what X bills the Engagement API by), by account and day, and calls",
    description="Every call signed with an account's tokens counts the account's @handle in its UTC month (once); "
    "`calls` count every Engagement API call by endpoint, bearer-signed ones too. With the `MonthlyHandleCap` "
    "parameter set, `capped` says the month is full: Posts of @handles not counted yet wait (`usage_capped`).",
    tags=["usage"],
    responses=answers({400: "month is not YYYY-MM, or is still to come (invalid_month)"}),
)
def get_usage(
    month: Annotated[
        str | None, Query(max_length=20, description="YYYY-MM (UTC); this month when absent", examples=["2026-12"])
    ] = None,
) -> UsageOut:
    today = utc_now().astimezone(UTC).date()
    first = parse_month(month, today=today)
    usage = context.deps().usage_store.month(first.strftime(MONTH_FORMAT))
    return usage_report(usage, first, cap=context.deps().settings.handle_cap, today=today)
