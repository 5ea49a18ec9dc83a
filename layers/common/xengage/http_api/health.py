"""GET /collection/health: Posts by status, accounts needing re-authorization, the oldest overdue Post per endpoint.

Read by the dashboard (and anyone watching the collection); every figure is a bounded read (`dal.health`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, get_args

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from xengage.api_client.catalog import STATUS_OK, Endpoint
from xengage.http_api import context
from xengage.http_api.errors import answers
from xengage.http_api.models import (
    AccountsNeedingReauthOut,
    CollectionHealthOut,
    OverdueOut,
    ReauthAccountOut,
    StatusCountOut,
    StatusName,
)
from xengage.timeutil import parse_iso, to_iso, utc_now

router = Router()

STATUSES: Final = (STATUS_OK, *sorted(set(get_args(StatusName)) - {STATUS_OK}))


def collection_health(now: datetime, count_limit: int) -> CollectionHealthOut:
    checked_at = to_iso(now)
    health = context.deps().health
    counts = health.count_statuses(STATUSES, bound=count_limit)
    flagged, looked_at_all = context.deps().registry.accounts_needing_reauth(bound=count_limit)
    overdue = health.oldest_overdue(tuple(Endpoint), now=checked_at)
    return CollectionHealthOut(
        checked_at=checked_at,
        count_limit=count_limit,
        statuses=[
            StatusCountOut(status=status, count=counts[status].count, at_least=not counts[status].complete)
            for status in STATUSES
        ],
        accounts_needing_reauth=AccountsNeedingReauthOut(
            accounts=[
                ReauthAccountOut(
                    user_id=account.user_id, screen_name=account.screen_name, last_error=account.last_error
                )
                for account in flagged
            ],
            at_least=not looked_at_all,
        ),
        oldest_overdue=[
            OverdueOut(
                endpoint=endpoint,
                tweet_id=marker.tweet_id,
                account_id=marker.account_id or None,
                next_due_at=marker.next_due_at,
                overdue_seconds=max(0, int((now - parse_iso(marker.next_due_at)).total_seconds())),
            )
            for endpoint in Endpoint
            if (marker := overdue.get(endpoint)) is not None and marker.next_due_at is not None  # read off DueIndex
        ],
    )


@router.get(
    "/collection/health",
    summary="Collection health: Posts by status, accounts needing re-authorization, the oldest overdue Post",
    description="Counts are of entries (a Post on one endpoint) by their last outcome, each bounded by "
    "`count_limit` (`at_least` says a count stopped there). `oldest_overdue` names, per endpoint, the Post whose "
    "next collection is due longest ago and no tick holds.",
    tags=["app"],
    responses=answers(),
)
def get_collection_health(
    count_limit: Annotated[int, Query(ge=1, le=10000, description="stop each count here")] = 1000,
) -> CollectionHealthOut:
    return collection_health(utc_now(), count_limit)
