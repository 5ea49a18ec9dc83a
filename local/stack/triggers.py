"""What invokes the functions locally: EventBridge Scheduler, the SQS event source mapping, API Gateway.

- `ScheduleRunner` fires each `ScheduleV2` event at its `rate(...)`/`cron(...)` (sped up by `speed`), fills the
  `<aws.scheduler.*>` placeholders of its `Input`, retries function errors per `RetryPolicy` and then sends the
  input to the schedule's `DeadLetterConfig` queue, as Scheduler does.
- `SqsEventSource` long-polls a queue, invokes the function with Lambda's SQS event, deletes what succeeded
  (honouring `batchItemFailures`) and leaves the rest for redelivery; moto server itself moves a message to the
  queue's dead-letter queue once it was received `maxReceiveCount` times (checked: `moto/sqs/models.py`,
  `receive_message`), exactly like SQS.
- `ApiServer` turns HTTP requests on loopback into API Gateway REST proxy events.
"""

from __future__ import annotations

import base64
import calendar
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.stack.functions import Invocation

logger = logging.getLogger("local.stack")

Invoker = Callable[[str, Any], Invocation]
RECENT_BODIES = 1000


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- schedule expressions --------------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class ScheduleExpressionError(ValueError):
    """A schedule expression the local stack cannot run (the message quotes it)."""


@dataclass(frozen=True)
class RateSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime | None:
        return moment + self.interval


@dataclass(frozen=True)
class AtSchedule:
    at: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        return self.at if self.at > moment else None


@dataclass(frozen=True)
class CronSchedule:
    """AWS cron: minutes hours day-of-month month day-of-week(1=SUN) year; no L, W or # support."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None = `?`
    months: frozenset[int]
    weekdays: frozenset[int] | None  # None = `?`, else 1..7 with 1 = Sunday
    years: frozenset[int] | None  # None = any year

    def next_after(self, moment: datetime) -> datetime | None:
        start = (moment + timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = start.date()
        for _ in range(366 * 5):
            if self._matches_day(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None

    def _matches_day(self, day: date) -> bool:
        if self.years is not None and day.year not in self.years:
            return False
        if day.month not in self.months:
            return False
        if self.days is not None and day.day not in self.days:
            return False
        # Python: Monday=0 .. Sunday=6; AWS: Sunday=1 .. Saturday=7.
        return self.weekdays is None or (day.weekday() + 1) % 7 + 1 in self.weekdays


Schedule = RateSchedule | AtSchedule | CronSchedule


def parse_schedule_expression(expression: str) -> Schedule:
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if amount <= 0:
            raise ScheduleExpressionError(f"{expression!r}: the rate must be positive")
        return RateSchedule(timedelta(**{f"{unit}s": amount}))
    if expression.startswith("at(") and expression.endswith(")"):
        return AtSchedule(datetime.fromisoformat(expression[3:-1]).replace(tzinfo=UTC))
    if expression.startswith("cron(") and expression.endswith(")"):
        fields = expression[5:-1].split()
        if len(fields) != 6:
            raise ScheduleExpressionError(f"{expression!r}: cron needs 6 fields")
        minutes, hours, days, months, weekdays, years = fields
        if (days == "?") == (weekdays == "?"):
            raise ScheduleExpressionError(f"{expression!r}: exactly one of day-of-month and day-of-week must be ?")
        return CronSchedule(
            minutes=_cron_field(minutes, 0, 59, {}, expression),
            hours=_cron_field(hours, 0, 23, {}, expression),
            days=None if days == "?" else _cron_field(days, 1, 31, {}, expression),
            months=_cron_field(months, 1, 12, {k.upper(): v for k, v in _MONTHS.items()}, expression),
            weekdays=None if weekdays == "?" else _cron_field(weekdays, 1, 7, _WEEKDAYS, expression),
            years=None if years == "*" else _cron_field(years, 1970, 2199, {}, expression),
        )
    raise ScheduleExpressionError(f"{expression!r}: expected rate(...), cron(...) or at(...)")


def _cron_field(text: str, low: int, high: int, names: Mapping[str, int], expression: str) -> frozenset[int]:
    def number(token: str) -> int:
        value = names.get(token.upper()) if token.upper() in names else int(token)
        if value is None or not low <= value <= high:
            raise ScheduleExpressionError(f"{expression!r}: {token!r} is out of range {low}-{high}")
        return value

    values: set[int] = set()
    try:
        for part in text.split(","):
            base, _, step_text = part.partition("/")
            step = int(step_text) if step_text else 1
            if base in ("*", "?"):
                first, last = low, high
            elif "-" in base:
                first, last = (number(token) for token in base.split("-", 1))
            else:
                first = number(base)
                last = high if step_text else first
            values.update(range(first, last + 1, step))
    except ValueError as error:
        if isinstance(error, ScheduleExpressionError):
            raise
        raise ScheduleExpressionError(
            f"{expression!r}: cannot read field {text!r} (L, W and # are not supported)"
        ) from error
    return frozenset(values)


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
            if dlq_url is None and dead_letter.get("QueueLogicalId"):
                dlq_url = queue_url_for_arn(str(dead_letter["QueueLogicalId"]))
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
        attempts = 1 + max(0, target.maximum_retry_attempts)
        invocation: Invocation | None = None
        for attempt in range(1, attempts + 1):
            event = render_schedule_input(
                target.input_text,
                scheduled_time=scheduled,
                schedule_arn=target.schedule_arn,
                execution_id=execution_id,
                attempt=attempt,
            )
            invocation = self.invoke(target.function_id, event)
            if invocation.ok:
                break
            logger.warning(
                "schedule %s attempt %d/%d failed: %s",
                target.schedule_name,
                attempt,
                attempts,
                invocation.payload.get("errorMessage") if isinstance(invocation.payload, dict) else invocation.payload,
            )
            if attempt < attempts and self._stop.wait(self.retry_delay_seconds * attempt):
                break
        assert invocation is not None
        dead_lettered = False
        if not invocation.ok and target.dead_letter_queue_url:
            self._dead_letter(target, scheduled, execution_id, attempt, invocation)
            dead_lettered = True
        outcome = TickOutcome(target, scheduled, execution_id, attempt, invocation, dead_lettered)
        with self._outcomes_lock:
            self.outcomes.append(outcome)
        return outcome

    def _dead_letter(
        self, target: ScheduleTarget, scheduled: str, execution_id: str, attempts: int, invocation: Invocation
    ) -> None:
        body = render_schedule_input(
            target.input_text,
            scheduled_time=scheduled,
            schedule_arn=target.schedule_arn,
            execution_id=execution_id,
            attempt=attempts,
        )
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


# --- SQS event source mapping ----------------------------------------------------------------------


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    item_failures: int = 0
    function_errors: int = 0
    # The bodies of the last records delivered, oldest first (for inspection and tests: what did the queue hold?)
    recent_bodies: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_BODIES))


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType", "String"),
        }
        attributes[name] = {k: v for k, v in attributes[name].items() if v is not None}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(payload: Any, batch_ids: set[str]) -> set[str] | None:
    """Message ids a ReportBatchItemFailures response names; None means "treat the whole batch as failed".

    Lambda fails the whole batch when the response names an id that is empty or not in the batch.
    """
    if not isinstance(payload, dict) or payload.get("batchItemFailures") is None:
        return set()
    failures = payload["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return None
        ids.add(identifier)
    return ids


class SqsEventSource:
    """The event source mapping of one function's SQS event."""

    def __init__(
        self,
        function_id: str,
        invoke: Invoker,
        sqs_client: Any,
        *,
        queue_url: str,
        queue_arn: str,
        region: str,
        batch_size: int = 10,
        batching_window_seconds: float = 0,
        report_batch_item_failures: bool = False,
        poll_wait_seconds: int = 1,
    ) -> None:
        self.function_id = function_id
        self.invoke = invoke
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.poll_wait_seconds = poll_wait_seconds
        self.stats = PollerStats()
        self.busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_receipts: list[str] = []  # records left to SQS redelivery (function errors, item failures)
        self._failed_lock = threading.Lock()

    def _receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: a long poll, then more within MaximumBatchingWindowInSeconds."""
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size and not self._stop.is_set():
            remaining = window_ends - time.monotonic()
            wait = self.poll_wait_seconds if not messages else max(0, min(self.poll_wait_seconds, int(remaining)))
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(received)
            if not messages or time.monotonic() >= window_ends or (not received and wait == 0):
                break
        return messages

    def poll_once(self) -> int:
        """Receive one batch (long poll), invoke the function and settle the messages; return the batch size."""
        messages = self._receive_batch()
        if not messages:
            return 0
        self.busy = True
        try:
            self._process(messages)
        finally:
            self.busy = False
        return len(messages)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(message, queue_arn=self.queue_arn, region=self.region) for message in messages]
        self.stats.batches += 1
        self.stats.messages += len(records)
        self.stats.recent_bodies.extend(record["body"] for record in records)
        invocation = self.invoke(self.function_id, {"Records": records})
        if not invocation.ok:
            # A function error leaves the whole batch to come back after the visibility timeout.
            self._remember_failed(records)
            self.stats.function_errors += 1
            logger.warning(
                "%s failed on a batch of %d: %s", self.function_id, len(records), _error_text(invocation.payload)
            )
            return
        failed: set[str] | None = set()
        if self.report_batch_item_failures:
            failed = failed_message_ids(invocation.payload, {r["messageId"] for r in records})
        if failed is None:
            self._remember_failed(records)
            self.stats.function_errors += 1
            return
        self._remember_failed([r for r in records if r["messageId"] in failed])
        self.stats.item_failures += len(failed)
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        self.stats.deleted += len(done)

    def _remember_failed(self, records: list[dict[str, Any]]) -> None:
        with self._failed_lock:
            self._failed_receipts.extend(record["receiptHandle"] for record in records)

    @property
    def awaiting_redelivery(self) -> int:
        """Records a failure left in flight until the visibility timeout returns them (see `release_failed`)."""
        with self._failed_lock:
            return len(self._failed_receipts)

    def release_failed(self) -> int:
        """Make the records left to redelivery visible now: what the queue's visibility timeout (900 s) does later.

        Tests use it to see a redelivery without waiting; it changes nothing SQS would not do by itself.
        """
        with self._failed_lock:
            receipts, self._failed_receipts = self._failed_receipts, []
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)],
            )
        return len(receipts)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sqs-{self.function_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling, like the managed mapping does
                logger.exception("polling %s for %s failed", self.queue_url, self.function_id)
                self._stop.wait(1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_wait_seconds + 10)
            self._thread = None


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"{payload.get('errorType')}: {payload.get('errorMessage')}"
    return str(payload)


# --- API Gateway REST proxy ------------------------------------------------------------------------


@dataclass
class ApiRoute:
    function_id: str
    method: str  # "ANY" or an HTTP verb
    path: str  # the resource, e.g. /accounts/{user_id} or /{proxy+}
    stage: str
    api_id: str
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = ""
        for segment in self.path.strip("/").split("/"):
            if not segment:
                continue
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            single = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                regex += f"/(?P<{greedy.group(1)}>.+)"
            elif single:
                regex += f"/(?P<{single.group(1)}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
        self.pattern = re.compile(f"^{regex or '/'}$")

    @property
    def specificity(self) -> tuple[int, int, int]:
        # API Gateway prefers literal paths over {param}, and {param} over {greedy+}; an exact method over ANY.
        return (self.path.count("+}"), self.path.count("{"), 1 if self.method == "ANY" else 0)


def api_routes(specs: Iterable[Any], *, api_ids: Mapping[str, str], stages: Mapping[str, str]) -> list[ApiRoute]:
    """Routes from every function's `Api` events; `api_ids`/`stages` map a RestApiId value to its id and stage."""
    routes = []
    for spec in specs:
        for event in spec.events.values():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties") or {}
            rest_api = str(properties.get("RestApiId") or "ServerlessRestApi")
            routes.append(
                ApiRoute(
                    function_id=spec.logical_id,
                    method=str(properties.get("Method", "ANY")).upper(),
                    path=str(properties["Path"]),
                    stage=stages.get(rest_api, "Prod"),
                    api_id=api_ids.get(rest_api, rest_api),
                )
            )
    return sorted(routes, key=lambda route: route.specificity)


def match_route(routes: list[ApiRoute], method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
    for route in routes:
        if route.method not in ("ANY", method):
            continue
        found = route.pattern.match(path)
        if found:
            return route, found.groupdict()
    return None


def forwarded_headers(headers: list[tuple[str, str]], client_ip: str, port: int) -> list[tuple[str, str]]:
    """The request headers plus the X-Forwarded-* ones API Gateway adds (here plain http on loopback), so code
    that builds its own URLs (the OAuth callback) gets the scheme and port the caller used."""
    added = [("X-Forwarded-For", client_ip), ("X-Forwarded-Port", str(port)), ("X-Forwarded-Proto", "http")]
    names = {name.lower() for name, _ in added}
    return [(name, value) for name, value in headers if name.lower() not in names] + added


def proxy_event(
    route: ApiRoute,
    *,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_parameters: Mapping[str, str],
    source_ip: str,
    domain: str,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one request."""
    parts = urlsplit(raw_path)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    try:
        text_body: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        text_body, is_base64 = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": route.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": route.api_id,
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": route.stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "httpMethod": method,
            "path": f"/{route.stage}{parts.path}",
            "protocol": "HTTP/1.1",
            "domainName": domain,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": multi_headers.get("User-Agent", [None])[-1],
                "accessKey": None,
                "accountId": None,
                "apiKey": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
            },
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def proxy_response(invocation: Invocation) -> HttpResponse:
    """The HTTP response API Gateway writes for a proxy integration result (502 when it is malformed)."""
    payload = invocation.payload
    if not invocation.ok or not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        if not invocation.ok:
            logger.warning("API function error: %s", _error_text(payload))
        return HttpResponse(502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}')
    headers: list[tuple[str, str]] = [(k, str(v)) for k, v in (payload.get("headers") or {}).items()]
    single = {name.lower() for name, _ in headers}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values if name.lower() not in single)
    raw_body = payload.get("body") or ""
    body = base64.b64decode(raw_body) if payload.get("isBase64Encoded") else str(raw_body).encode()
    if "content-type" not in {name.lower() for name, _ in headers}:
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(payload["statusCode"], headers, body)


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as it reached the local API Gateway (which checks no SigV4 signature or API key: tests read the
    headers a client sent, such as the dashboard proxy's signature)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]


class ApiServer:
    """API Gateway on loopback: routes HTTP requests to the functions' `Api` events."""

    def __init__(self, routes: list[ApiRoute], invoke: Invoker, *, port: int = 3000, host: str = "127.0.0.1") -> None:
        self.routes = routes
        self.invoke = invoke
        self.requests = 0
        self.received: deque[ReceivedRequest] = deque(maxlen=RECENT_BODIES)
        handler = self._handler_class()
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY a keep-alive client's delayed ACK
            # holds small answers ~40 ms (measured: one-day metrics window p50 56 ms -> 11 ms).
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                api.requests += 1
                api.received.append(ReceivedRequest(self.command, self.path, tuple(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                matched = match_route(api.routes, self.command, path)
                if matched is None:
                    # What API Gateway answers for a path/method it has no resource for.
                    response = HttpResponse(
                        403, [("Content-Type", "application/json")], b'{"message": "Missing Authentication Token"}'
                    )
                else:
                    route, parameters = matched
                    event = proxy_event(
                        route,
                        method=self.command,
                        raw_path=self.path,
                        headers=forwarded_headers(list(self.headers.items()), self.client_address[0], api.port),
                        body=body,
                        path_parameters=parameters,
                        source_ip=self.client_address[0],
                        domain=self.headers.get("Host", ""),
                    )
                    response = proxy_response(api.invoke(route.function_id, event))
                self.send_response(response.status)
                for name, value in response.headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, ...) goes to the `ANY` route too, so it meets the function's 405
                # rather than http.server's HTML 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("api: " + format, *args)

        return Handler

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="api-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
