"""CollectQueue: SendMessageBatch (10 entries per call), resending entries SQS reports as Failed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from xengage.dal.aws import sqs_client
from xengage.observability import tracer

MAX_BATCH_ENTRIES: Final = 10
MAX_SEND_ATTEMPTS: Final = 3
MAX_DELAY_SECONDS: Final = 900  # SQS's longest per-message delay


class SendFailed(RuntimeError):
    """Some messages were still refused after the bounded resends; names their SQS error codes."""


@dataclass(slots=True)
class SendStats:
    messages: int = 0
    calls: int = 0
    resent: int = 0


class CollectQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    @tracer.capture_method(capture_response=False)
    def send_batch(
        self,
        bodies: Sequence[Mapping[str, Any]],
        stats: SendStats | None = None,
        *,
        delays: Sequence[int] | None = None,
    ) -> SendStats:
        """Send up to 10 JSON bodies in one SendMessageBatch, resending Failed entries (bounded).

        `delays` (seconds, 0..900 each) hold each message back until the API will take it (continuations).
        """
        if len(bodies) > MAX_BATCH_ENTRIES:
            raise ValueError(f"SendMessageBatch takes at most {MAX_BATCH_ENTRIES} entries, got {len(bodies)}")
        delay_of = [min(MAX_DELAY_SECONDS, max(0, int(d))) for d in (delays or [0] * len(bodies))]
        stats = stats or SendStats()
        pending = {str(index): json.dumps(body, separators=(",", ":")) for index, body in enumerate(bodies)}
        for attempt in range(MAX_SEND_ATTEMPTS):
            if not pending:
                break
            if attempt:
                stats.resent += len(pending)
            response = sqs_client().send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": entry_id, "MessageBody": body, "DelaySeconds": delay_of[int(entry_id)]}
                    for entry_id, body in pending.items()
                ],
            )
            stats.calls += 1
            failed = response.get("Failed", [])
            # Sender faults (bad message) will not succeed on resend; stop at once and report them.
            if any(entry.get("SenderFault") for entry in failed):
                codes = sorted({entry.get("Code", "?") for entry in failed})
                raise SendFailed(f"SQS refused {len(failed)} message(s): {', '.join(codes)}")
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
        if pending:
            raise SendFailed(f"{len(pending)} message(s) still failing after {MAX_SEND_ATTEMPTS} attempts")
        stats.messages += len(bodies)
        return stats
