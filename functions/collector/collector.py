"""CollectorFunction: SQS batches of planner messages (partial batch failures), or a console payload.

SQS: Powertools batch processing parses each record as a `CollectRecord` (its body one CollectMessage) and collects
it within the invocation's deadline (its remaining time less a reserve for the writes that follow the last call);
what does not fit is handed on in continuation messages, so a record fails (and is redelivered) only when AWS itself
fails or its body does not parse (logged with the problem; after maxReceiveCount it dead-letters). A record reached
too late to start is sent on as it is.
Console: a `ConsoleCollect` ({"endpoint","tweet_ids","account_id"?,"start"?,"end"?}) returns counts by status, or
{"error": ...} naming what is wrong with the payload.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the process; collecting garbage among them
# while they load only costs time (~10% of the import). Frozen afterwards, later collections skip them too.
gc.disable()

from typing import Any, Final

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from xengage.api_client.deadline import Deadline
from xengage.dal import AppState
from xengage.deps import Deps, function_deps
from xengage.observability import count, logger, metrics, tracer
from xengage.pipeline.collector import InvalidPayload, collect, collect_direct, flush_usage
from xengage.pipeline.events import ConsoleCollect, describe, parse_event
from xengage.pipeline.records import CollectRecord
from xengage.settings import CollectorSettings

gc.freeze()
gc.enable()


class CollectBatch(BatchProcessor):
    """Powertools' SQS batch processing with records parsed as `CollectRecord`; a failed record is logged with its
    reason (a body that does not parse, or an AWS failure), where Powertools itself logs it at debug only."""

    def __init__(self) -> None:
        super().__init__(event_type=EventType.SQS, model=CollectRecord)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        problem = exception[1]
        # A record that failed its model is handed over as Powertools' SQSRecord; one that failed later, as parsed.
        message_id = getattr(record, "messageId", None) or record.message_id
        detail = describe(problem) if isinstance(problem, ValidationError) else str(problem)
        logger.error(
            "collect record failed",
            extra={"message_id": message_id, "error": type(problem).__name__, "problem": detail},
        )
        return super().failure_handler(record, exception)


processor = CollectBatch()

# Time kept back from the function's timeout for the writes after the last call: a fifth of it, 3 to 20 s.
MIN_WRITE_RESERVE_SECONDS: Final = 3.0
MAX_WRITE_RESERVE_SECONDS: Final = 20.0
# A record started with less than this left is sent on untouched instead (reads and writes for nothing).
MIN_START_SECONDS: Final = 5.0


def deadline_of(context: LambdaContext) -> Deadline:
    remaining = context.get_remaining_time_in_millis() / 1000
    reserve = min(MAX_WRITE_RESERVE_SECONDS, max(MIN_WRITE_RESERVE_SECONDS, remaining / 5))
    return Deadline.after(remaining - reserve)


class _Invocation:
    """What the records of one batch share: the dependencies, the deadline and the app state (read once)."""

    def __init__(self, deps: Deps[CollectorSettings], deadline: Deadline) -> None:
        self.deps = deps
        self.deadline = deadline
        self._state: AppState | None = None

    def app_state(self) -> AppState:
        if self._state is None:
            self._state = self.deps.app_state.get()
        return self._state

    def handle(self, record: CollectRecord) -> None:
        logger.set_correlation_id(record.messageId)
        message = record.body
        if not self.deadline.allows(MIN_START_SECONDS):
            assert self.deps.queue is not None
            self.deps.queue.send_batch([message.to_body()])
            count("MessagesSentOnUnstarted")
            logger.info("no time left to start: message sent on as it is", extra={"posts": len(message.tweet_ids)})
            return
        collect(message, self.deps, deadline=self.deadline, app_state=self.app_state())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = deadline_of(context)
    deps = function_deps(CollectorSettings)
    if isinstance(event, dict) and "Records" in event:
        return dict(collect_batch(event, context, deps, deadline))
    logger.set_correlation_id(context.aws_request_id)
    try:
        return collect_direct(parse_event(ConsoleCollect, event, InvalidPayload), deps, deadline=deadline)
    except InvalidPayload as exc:
        logger.warning("invalid console payload", extra={"problem": str(exc)})
        return {"error": "invalid_payload", "message": str(exc)}


def collect_batch(
    event: dict[str, Any], context: LambdaContext, deps: Deps[CollectorSettings], deadline: Deadline
) -> PartialItemFailureResponse:
    invocation = _Invocation(deps, deadline)
    try:
        return process_partial_response(event, invocation.handle, processor, context)
    finally:
        flush_usage(invocation.deps)  # the batch's calls, in one write
