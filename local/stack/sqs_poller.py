"""The SQS event source mapping, locally: `SqsEventSource` long-polls a queue for one function.

It invokes the function with Lambda's SQS event, deletes what succeeded (honouring `batchItemFailures`) and leaves
the rest for redelivery; moto server itself moves a message to the queue's dead-letter queue once it was received
`maxReceiveCount` times (checked: `moto/sqs/models.py`, `receive_message`), exactly like SQS.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.stack.functions import Invoker

logger = logging.getLogger("local.stack")

RECENT_BODIES = 1000


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
            logger.warning("%s failed on a batch of %d: %s", self.function_id, len(records), invocation.error_text)
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
