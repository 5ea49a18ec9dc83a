"""EventBridge Scheduler, locally: `ScheduleRunner` fires each `ScheduleV2` event of the functions.

It fires at the event's `rate(...)`, or at the daily `cron(...)` form the template's export schedule uses
(sped up by `speed`), fills the `<aws.scheduler.*>` placeholders of its `Input`, retries function errors per
`RetryPolicy` and then sends the input to the schedule's `DeadLetterConfig` queue, as Scheduler does.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local.stack.functions import Invocation, Invoker

logger = logging.getLogger("local.stack")


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- schedule expressions --------------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
# AWS cron as template.yaml writes it: minutes and hours (numbers, comma lists, or `*` hours), every day.
_DAILY_CRON = re.compile(r"^cron\(\s*(\d+(?:,\d+)*)\s+(\*|\d+(?:,\d+)*)\s+(?:\* \* \?|\? \* \*) \*\s*\)$")


class ScheduleExpressionError(ValueError):
    """A schedule expression the local stack cannot run (the message quotes it)."""


@dataclass(frozen=True)
class RateSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


@dataclass(frozen=True)
class DailyCronSchedule:
    """`cron(M H * * ? *)`: every day at the given minutes of the given hours (UTC)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]

    def next_after(self, moment: datetime) -> datetime:
        day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        times = [timedelta(hours=hour, minutes=minute) for hour in self.hours for minute in self.minutes]
        return min(
            day + offset for offset in (*times, *(t + timedelta(days=1) for t in times)) if day + offset > moment
        )


Schedule = RateSchedule | DailyCronSchedule


def parse_schedule_expression(expression: str) -> Schedule:
    """The template's schedule expressions: `rate(N minutes|hours|days)`, and the daily `cron(M H * * ? *)`."""
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if amount <= 0:
            raise ScheduleExpressionError(f"{expression!r}: the rate must be positive")
        return RateSchedule(timedelta(**{f"{unit}s": amount}))
    cron = _DAILY_CRON.match(expression)
    if cron:
        minutes = tuple(sorted(int(m) for m in cron.group(1).split(",")))
        hours = tuple(range(24)) if cron.group(2) == "*" else tuple(sorted(int(h) for h in cron.group(2).split(",")))
        if max(minutes) > 59 or max(hours) > 23:
            raise ScheduleExpressionError(f"{expression!r}: a minute or hour is out of range")
        return DailyCronSchedule(minutes, hours)
    raise ScheduleExpressionError(
        f"{expression!r}: the local stack runs rate(...) and daily cron(M H * * ? *) expressions"
    )


# --- schedules -------------------------------------------------------------------------------------


@dataclass
class ScheduleTarget:
    """One `ScheduleV2` event of a function."""

    function_id: str
    event_name: str
    schedule_name: str
    schedule_arn: str
    function_arn: str
    expression: Schedule
    input_text: str
    enabled: bool
    maximum_retry_attempts: int
    dead_letter_queue_url: str | None

    def event(self, scheduled_time: str, execution_id: str, attempt: int) -> Any:
        """What this schedule delivers on one attempt of one tick."""
        return render_schedule_input(
            self.input_text,
            scheduled_time=scheduled_time,
            schedule_arn=self.schedule_arn,
            execution_id=execution_id,
            attempt=attempt,
        )


@dataclass
class TickOutcome:
    """What one scheduled tick did: its attempts, the final invocation, and whether it was dead-lettered."""

    target: ScheduleTarget
    scheduled_time: str
    execution_id: str
    attempts: int
    invocation: Invocation
    dead_lettered: bool


def render_schedule_input(
    input_text: str, *, scheduled_time: str, schedule_arn: str, execution_id: str, attempt: int
) -> Any:
    """The Lambda event Scheduler delivers: `Input` with its context placeholders filled in."""
    text = (
        input_text.replace("<aws.scheduler.scheduled-time>", scheduled_time)
        .replace("<aws.scheduler.schedule-arn>", schedule_arn)
        .replace("<aws.scheduler.execution-id>", execution_id)
        .replace("<aws.scheduler.attempt-number>", str(attempt))
    )
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


DEFAULT_SCHEDULE_RETRIES = 2  # locally; Scheduler's own default (185 retries over 24 h) is too slow to watch


def schedule_targets(
    specs: Iterable[Any], *, region: str, account_id: str, queue_url_for_arn: Callable[[str], str | None]
) -> list[ScheduleTarget]:
    """Every `ScheduleV2` event of the given `FunctionSpec`s (their `events` are already resolved)."""
    targets = []
    for spec in specs:
        for event_name, event in spec.events.items():
            if event.get("Type") != "ScheduleV2":
                continue
            properties = event.get("Properties") or {}
            name = properties.get("Name") or f"{spec.logical_id}{event_name}"
            group = properties.get("GroupName") or "default"
            dead_letter = properties.get("DeadLetterConfig") or {}
            dlq_url = queue_url_for_arn(dead_letter["Arn"]) if dead_letter.get("Arn") else None
            retry = properties.get("RetryPolicy") or {}
            targets.append(
                ScheduleTarget(
                    function_id=spec.logical_id,
                    event_name=event_name,
                    schedule_name=name,
                    schedule_arn=f"arn:aws:scheduler:{region}:{account_id}:schedule/{group}/{name}",
                    function_arn=spec.function_arn,
                    expression=parse_schedule_expression(properties["ScheduleExpression"]),
                    input_text=properties.get("Input") or "{}",
                    enabled=str(properties.get("State", "ENABLED")).upper() != "DISABLED",
                    maximum_retry_attempts=int(retry.get("MaximumRetryAttempts", DEFAULT_SCHEDULE_RETRIES)),
                    dead_letter_queue_url=dlq_url,
                )
            )
    return targets


class ScheduleRunner:
    """Fires schedules: on demand (`fire`, `fire_all_once`) and, once started, on their timetable."""

    def __init__(
        self,
        targets: list[ScheduleTarget],
        invoke: Invoker,
        sqs_client: Any,
        *,
        speed: float = 1.0,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("schedule speed must be positive")
        self.targets = targets
        self.invoke = invoke
        self.sqs = sqs_client
        self.speed = speed
        self.retry_delay_seconds = retry_delay_seconds
        self.outcomes: list[TickOutcome] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outcomes_lock = threading.Lock()

    def fire(self, target: ScheduleTarget, scheduled_time: datetime | str | None = None) -> TickOutcome:
        """One tick: invoke with retries, then dead-letter the input if every attempt failed."""
        if scheduled_time is None:
            scheduled_time = datetime.now(UTC)
        scheduled = scheduled_time if isinstance(scheduled_time, str) else iso_utc(scheduled_time)
        execution_id = str(uuid.uuid4())
        attempt, invocation = self._invoke_with_retries(target, scheduled, execution_id)
        dead_lettered = False
        if not invocation.ok and target.dead_letter_queue_url:
            self._dead_letter(target, scheduled, execution_id, attempt, invocation)
            dead_lettered = True
        outcome = TickOutcome(target, scheduled, execution_id, attempt, invocation, dead_lettered)
        with self._outcomes_lock:
            self.outcomes.append(outcome)
        return outcome

    def _invoke_with_retries(self, target: ScheduleTarget, scheduled: str, execution_id: str) -> tuple[int, Invocation]:
        """Attempts until one succeeds, the RetryPolicy runs out or the runner stops: (last attempt, its result)."""
        attempts = 1 + max(0, target.maximum_retry_attempts)
        for attempt in range(1, attempts + 1):
            invocation = self.invoke(target.function_id, target.event(scheduled, execution_id, attempt))
            if invocation.ok:
                break
            logger.warning(
                "schedule %s attempt %d/%d failed: %s", target.schedule_name, attempt, attempts, invocation.error_text
            )
            if attempt < attempts and self._stop.wait(self.retry_delay_seconds * attempt):
                break
        return attempt, invocation

    def _dead_letter(
        self, target: ScheduleTarget, scheduled: str, execution_id: str, attempts: int, invocation: Invocation
    ) -> None:
        body = target.event(scheduled, execution_id, attempts)
        error = invocation.payload if isinstance(invocation.payload, dict) else {}

        def attribute(value: object) -> dict[str, str]:
            return {"DataType": "String", "StringValue": str(value)[:1024] or "-"}

        self.sqs.send_message(
            QueueUrl=target.dead_letter_queue_url,
            MessageBody=body if isinstance(body, str) else json.dumps(body),
            MessageAttributes={
                "ERROR_CODE": attribute(error.get("errorType", "Unhandled")),
                "ERROR_MESSAGE": attribute(error.get("errorMessage", "function error")),
                "EXECUTION_ID": attribute(execution_id),
                "RETRY_ATTEMPTS": attribute(attempts - 1),
                "TARGET_ARN": attribute(target.function_arn),
                "EXHAUSTED_RETRY_CONDITION": attribute("MaximumRetryAttempts"),
            },
        )

    def fire_all_once(self, scheduled_time: datetime | str | None = None) -> list[TickOutcome]:
        """Fire every enabled schedule once, in template order, with the same scheduled time."""
        scheduled_time = scheduled_time or datetime.now(UTC).replace(microsecond=0)
        return [self.fire(target, scheduled_time) for target in self.targets if target.enabled]

    def start(self) -> None:
        """Fire each enabled schedule on its timetable (intervals divided by `speed`) until `stop`."""
        for target in self.targets:
            if target.enabled:
                thread = threading.Thread(target=self._run, args=(target,), name=f"schedule-{target.schedule_name}")
                thread.daemon = True
                thread.start()
                self._threads.append(thread)

    def _run(self, target: ScheduleTarget) -> None:
        # A virtual clock runs `speed` times faster than the wall clock; at speed 1 they are the same.
        virtual_now = datetime.now(UTC)
        started = time.monotonic()
        elapsed_virtual = timedelta(0)
        while not self._stop.is_set():
            next_virtual = target.expression.next_after(virtual_now)
            if next_virtual is None:
                return
            elapsed_virtual += next_virtual - virtual_now
            virtual_now = next_virtual
            due = started + elapsed_virtual.total_seconds() / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            scheduled = virtual_now if self.speed == 1 else datetime.now(UTC).replace(microsecond=0)
            try:
                self.fire(target, scheduled)
            except Exception:  # a broken tick must not stop the schedule
                logger.exception("schedule %s tick failed", target.schedule_name)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
