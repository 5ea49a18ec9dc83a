"""PlannerFunction: on each EventBridge Scheduler tick, queue the Posts due on one endpoint.

Event (the schedule's Input): {"endpoint", "scheduled_time", "schedule_arn", "attempt", "schedule_expression"}; the
expression (`rate(15 minutes)`) tells how long until the next tick, which bounds what the contract can serve.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the process; collecting garbage among them
# while they load only costs time (~10% of the import). Frozen afterwards, later collections skip them too.
gc.disable()

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xengage.api_client.catalog import Endpoint
from xengage.api_client.deadline import Deadline
from xengage.deps import function_deps
from xengage.observability import logger, metrics, tracer
from xengage.pipeline.planner import PLANNER_RESERVE_SECONDS, plan, publish_staleness, schedule_interval
from xengage.settings import PlannerSettings
from xengage.timeutil import floor_minute, parse_iso, utc_now

gc.freeze()
gc.enable()


class InvalidScheduleEvent(ValueError):
    """The schedule Input is not what the template sends; the message names the field."""


def scheduled_time_of(event: dict[str, Any]) -> datetime:
    """The tick's time; a missing or unsubstituted placeholder (manual invoke) means now, floored to the minute."""
    raw = event.get("scheduled_time")
    if not raw or not isinstance(raw, str) or raw.startswith("<"):
        return floor_minute(utc_now())
    try:
        return parse_iso(raw)
    except ValueError as exc:
        raise InvalidScheduleEvent(f"scheduled_time: {exc}") from exc


def endpoint_of(event: dict[str, Any]) -> Endpoint:
    try:
        return Endpoint(str(event.get("endpoint")))
    except ValueError as exc:
        choices = ", ".join(endpoint.value for endpoint in Endpoint)
        raise InvalidScheduleEvent(f"endpoint must be one of {choices}, not {event.get('endpoint')!r}") from exc


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    endpoint = endpoint_of(event)
    scheduled_time = scheduled_time_of(event)
    # One tick = one correlation id, whichever attempt delivered it.
    logger.set_correlation_id(f"{endpoint.value}@{scheduled_time.isoformat()}")
    logger.append_keys(endpoint=endpoint.value, schedule_arn=event.get("schedule_arn"), attempt=event.get("attempt"))
    expression = event.get("schedule_expression")
    deadline = Deadline.after(context.get_remaining_time_in_millis() / 1000 - PLANNER_RESERVE_SECONDS)
    interval = schedule_interval(expression if isinstance(expression, str) else None)
    deps = function_deps(PlannerSettings)
    summary = plan(endpoint, scheduled_time, deps=deps, interval=interval, deadline=deadline)
    publish_staleness(summary)
    return summary.as_dict()
