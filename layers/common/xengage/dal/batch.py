"""BatchGetItem and BatchWriteItem over many keys or items, several calls at a time, all within a deadline.

Bulk tracking (`RegistryDal.read_posts_within` / `write_posts_within`) reads 10,000 Post items and writes up to
40,000 items in one API request: one call after another would not fit API Gateway's 29 s. Calls run BATCH_WORKERS at
a time on the low-level client (thread-safe, unlike resources). What DynamoDB leaves unprocessed is sent again after
an exponential backoff with full jitter, never past the deadline: whatever is still unread or unwritten then is
returned to the caller, which says so to its own caller instead of dropping it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from xengage.dal.aws import dynamodb_bulk_client

BATCH_GET_KEYS: Final = 100  # DynamoDB's BatchGetItem limit
BATCH_WRITE_ITEMS: Final = 25  # DynamoDB's BatchWriteItem limit
BATCH_WORKERS: Final = 8  # calls in flight: DynamoDB answers each in ~10 ms, so a request is bound by round trips
BACKOFF_BASE_SECONDS: Final = 0.05
BACKOFF_MAX_SECONDS: Final = 1.0
THROTTLED_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    # Strings, all a tracked Post's items hold, without the serializer's type dispatch: a fifth of a write's CPU.
    return {name: {"S": value} if type(value) is str else _serializer.serialize(value) for name, value in item.items()}


def from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


@dataclass(slots=True)
class BatchOutcome:
    """Items read (gets) and what was left: keys not read, or items not written, when the deadline came."""

    items: list[dict[str, Any]] = field(default_factory=list)
    left: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    retried: int = 0  # calls that sent unprocessed keys or items again

    def add(self, other: BatchOutcome) -> None:
        self.items.extend(other.items)
        self.left.extend(other.left)
        self.calls += other.calls
        self.retried += other.retried


def backoff_seconds(retry_number: int, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(max, base * 2**n)), as AWS's architecture blog recommends for batch retries."""
    return rng.uniform(0.0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retry_number))


def _until_done(
    send: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    chunk: list[dict[str, Any]],
    until: float,
) -> BatchOutcome:
    """Send `chunk`, then what comes back unprocessed after a backoff, while the deadline (monotonic) allows."""
    outcome, pending, rng = BatchOutcome(), chunk, random.Random()
    while pending:
        if time.monotonic() >= until:
            outcome.left.extend(pending)
            break
        if outcome.calls:
            outcome.retried += 1
        outcome.calls += 1
        try:
            got, pending = send(pending)
        except ClientError as exc:
            # Still throttled after botocore's own retries: the whole call is unprocessed, not a failed request
            if exc.response.get("Error", {}).get("Code") not in THROTTLED_CODES:
                raise
            got = []
        outcome.items.extend(got)
        if pending:
            time.sleep(min(backoff_seconds(outcome.calls - 1, rng), max(0.0, until - time.monotonic())))
    return outcome


def _in_parallel(
    chunks: list[list[dict[str, Any]]], work: Callable[[list[dict[str, Any]]], BatchOutcome]
) -> BatchOutcome:
    total = BatchOutcome()
    if len(chunks) <= 1:
        for chunk in chunks:
            total.add(work(chunk))
        return total
    with ThreadPoolExecutor(max_workers=min(BATCH_WORKERS, len(chunks))) as pool:
        for outcome in pool.map(work, chunks):
            total.add(outcome)
    return total


def _chunks(values: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [list(values[offset : offset + size]) for offset in range(0, len(values), size)]


def batch_get_within(
    table_name: str, keys: Sequence[Mapping[str, str]], *, until: float, consistent: bool = True
) -> BatchOutcome:
    """The items of `keys` that exist (plain Python values), and the keys left unread at `until`."""
    client = dynamodb_bulk_client()

    def send(chunk: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        request = {table_name: {"Keys": [to_wire(key) for key in chunk], "ConsistentRead": consistent}}
        response = client.batch_get_item(RequestItems=request)
        got = [from_wire(item) for item in response.get("Responses", {}).get(table_name, [])]
        unprocessed = response.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", [])
        return got, [from_wire(key) for key in unprocessed]

    return _in_parallel(_chunks([dict(key) for key in keys], BATCH_GET_KEYS), lambda c: _until_done(send, c, until))


def batch_put_within(table_name: str, items: Sequence[Mapping[str, Any]], *, until: float) -> BatchOutcome:
    """Put `items` (plain values; no two with the same key); `left` holds those not written at `until`.

    BatchWriteItem has no conditions: a put overwrites an item with the same key.
    """
    return _batch_write(table_name, items, ("PutRequest", "Item"), until)


def batch_delete_within(table_name: str, keys: Sequence[Mapping[str, str]], *, until: float) -> BatchOutcome:
    """Delete the items of `keys`; `left` holds the keys not deleted at `until`."""
    return _batch_write(table_name, keys, ("DeleteRequest", "Key"), until)


def _batch_write(
    table_name: str, entries: Sequence[Mapping[str, Any]], kind: tuple[str, str], until: float
) -> BatchOutcome:
    client = dynamodb_bulk_client()
    request_name, field_name = kind

    def send(chunk: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        requests = [{request_name: {field_name: to_wire(entry)}} for entry in chunk]
        response = client.batch_write_item(RequestItems={table_name: requests})
        unprocessed = response.get("UnprocessedItems", {}).get(table_name, [])
        return [], [from_wire(request[request_name][field_name]) for request in unprocessed]

    chunks = _chunks([dict(entry) for entry in entries], BATCH_WRITE_ITEMS)
    return _in_parallel(chunks, lambda chunk: _until_done(send, chunk, until))
