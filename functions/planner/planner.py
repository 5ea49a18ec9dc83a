"""PlannerFunction: on each EventBridge Scheduler tick, queue the Posts due on one endpoint.

Event: the schedule's Input, parsed as `ScheduleTick` (xengage.pipeline.events); its expression (`rate(15 minutes)`)
tells how long until the next tick, which bounds what the contract can serve. A malformed Input raises
InvalidScheduleEvent naming the field.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the process; collecting garbage among them
# while they load only costs time (~10% of the import). Frozen afterwards, later collections skip them too.
gc.disable()

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xengage.api_client.deadline import Deadline
from xengage.deps import function_deps
from xengage.observability import logger, metrics, tracer
from xengage.pipeline.events import InvalidScheduleEvent, ScheduleTick, parse_event
from xengage.pipeline.planner import PLANNER_RESERVE_SECONDS, plan, publish_staleness, schedule_interval
from xengage.settings import PlannerSettings
from xengage.timeutil import floor_minute, utc_now

gc.freeze()
gc.enable()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tick = parse_event(ScheduleTick, event, InvalidScheduleEvent)
    endpoint = tick.endpoint
    scheduled_time = tick.scheduled_time or floor_minute(utc_now())  # a manual invoke: now
    # One tick = one correlation id, whichever attempt delivered it.
    logger.set_correlation_id(f"{endpoint.value}@{scheduled_time.isoformat()}")
    logger.append_keys(endpoint=endpoint.value, schedule_arn=tick.schedule_arn, attempt=tick.attempt)
    deadline = Deadline.after(context.get_remaining_time_in_millis() / 1000 - PLANNER_RESERVE_SECONDS)
    interval = schedule_interval(tick.schedule_expression)
    deps = function_deps(PlannerSettings)
    summary = plan(endpoint, scheduled_time, deps=deps, interval=interval, deadline=deadline)
    publish_staleness(summary)
    return summary.as_dict()
