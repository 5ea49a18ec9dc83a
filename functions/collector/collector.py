"""CollectorFunction: SQS batches of planner messages (partial batch failures), or a console payload.

SQS: each record is one CollectMessage; a record whose Posts failed transiently is reported in
`batchItemFailures` so only it is redelivered. Console: {"endpoint","tweet_ids","account_id"?,"start"?,"end"?}
returns counts by status, or {"error": ...} naming what is wrong with the payload.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xengage.observability import logger, metrics, tracer
from xengage.pipeline.collector import InvalidPayload, collect, collect_direct, default_deps, parse_message

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    logger.set_correlation_id(record.message_id)
    try:
        message = parse_message(record.body)
    except InvalidPayload as exc:
        # Failing the record sends it, after maxReceiveCount, to the dead-letter queue where it can be inspected.
        logger.error("malformed collect message", extra={"problem": str(exc)})
        raise
    collect(message, default_deps())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" not in event:
        logger.set_correlation_id(context.aws_request_id)
        try:
            return collect_direct(event)
        except InvalidPayload as exc:
            logger.warning("invalid console payload", extra={"problem": str(exc)})
            return {"error": "invalid_payload", "message": str(exc)}
    response = process_partial_response(event, record_handler, processor, context)
    return dict(response)
