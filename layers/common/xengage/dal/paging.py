"""Pages of DynamoDB results with an opaque cursor (base64 of LastEvaluatedKey), and Decimal → int."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

from xengage.dal.aws import dynamodb_resource

T = TypeVar("T")
BATCH_GET_MAX: Final = 100  # DynamoDB BatchGetItem keys per call
MAX_UNPROCESSED_ROUNDS: Final = 8


class InvalidCursor(ValueError):
    """The cursor given back is not one this DAL produced."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    cursor: str | None = None  # pass back to get the next page; None when there is none


def encode_cursor(last_evaluated_key: Mapping[str, Any] | None) -> str | None:
    if not last_evaluated_key:
        return None
    raw = json.dumps(plain(dict(last_evaluated_key)), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(
    cursor: str | None, *, required_keys: frozenset[str], pinned: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Turn a cursor back into ExclusiveStartKey, refusing anything that is not one of ours.

    `pinned` names the key values the query fixes (its partition): a key from another partition would make DynamoDB
    refuse the whole query, so it is refused here as a cursor of another listing.
    """
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not isinstance(key, dict) or set(key) != required_keys or not all(isinstance(v, str) for v in key.values()):
        raise InvalidCursor("cursor is not valid")
    if any(key.get(name) != value for name, value in (pinned or {}).items()):
        raise InvalidCursor("cursor belongs to another listing")
    return key


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: give callers ints (or floats for fractions), recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return {plain(v) for v in value}
    return value


def query_pages(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query yields, page after page (one page of items in memory at a time)."""
    while True:
        response = table.query(**kwargs)
        yield from response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def batch_get(
    table_name: str, keys: Iterable[Mapping[str, str]], *, consistent: bool = True
) -> Iterator[dict[str, Any]]:
    """Items of `keys` that exist: BatchGetItem, 100 keys a call, UnprocessedKeys retried."""
    resource = dynamodb_resource()
    key_list = list(keys)
    for offset in range(0, len(key_list), BATCH_GET_MAX):
        chunk = key_list[offset : offset + BATCH_GET_MAX]
        request: dict[str, Any] = {table_name: {"Keys": chunk, "ConsistentRead": consistent}}
        for _ in range(MAX_UNPROCESSED_ROUNDS):
            response = resource.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(table_name, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError(f"BatchGetItem on {table_name} kept returning UnprocessedKeys")
