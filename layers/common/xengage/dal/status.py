"""StatusTable: the last outcome of each Post on each endpoint (ok, or a Reason with the API's message)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import STATUS_OK, Endpoint, Reason
from xengage.api_client.models import PostMetrics
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import Page, decode_cursor, encode_cursor, query_pages
from xengage.timeutil import to_iso

KNOWN_STATUSES: Final = frozenset({STATUS_OK, *(reason.value for reason in Reason)})
_STATUS_CURSOR_KEYS: Final = frozenset({"pk", "sk", "status_pk", "status_sk"})


@dataclass(frozen=True, slots=True)
class PostStatus:
    tweet_id: str
    endpoint: Endpoint
    status: str
    reason_code: str | None
    message: str | None
    first_seen_at: str
    last_seen_at: str
    first_ok_at: str | None = None
    last_ok_at: str | None = None
    next_attempt_at: str | None = None  # rate_limited / deferred: when the handed-on work is tried again
    unsupported_metrics: tuple[str, ...] = ()  # asked for but refused or not served for this Post

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PostStatus:
        return cls(
            tweet_id=item["pk"],
            endpoint=Endpoint(item["sk"]),
            status=item["status"],
            reason_code=item.get("reason_code"),
            message=item.get("message"),
            first_seen_at=item["first_seen_at"],
            last_seen_at=item["last_seen_at"],
            first_ok_at=item.get("first_ok_at"),
            last_ok_at=item.get("last_ok_at"),
            next_attempt_at=item.get("next_attempt_at"),
            unsupported_metrics=tuple(sorted(item.get("unsupported_metrics") or ())),
        )


def _optional(sets: list[str], removes: list[str], values: dict[str, Any], name: str, value: Any) -> None:
    """SET an attribute when there is a value, else REMOVE it, so a later outcome never keeps a stale one."""
    if value is None:
        removes.append(name)
    else:
        sets.append(f"{name} = :{name}")
        values[f":{name}"] = value


class StatusDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def record(
        self,
        tweet_id: str,
        endpoint: Endpoint,
        status: str,
        *,
        at: str,
        message: str | None = None,
        next_attempt_at: str | None = None,
        unsupported_metrics: Iterable[str] = (),
    ) -> None:
        """Upsert one Post's outcome; first_seen_at / first_ok_at are kept from the first time (if_not_exists).

        `next_attempt_at` is kept only with it (a pending status), `unsupported_metrics` only when there are some.
        """
        if status not in KNOWN_STATUSES:
            raise ValueError(f"status must be one of {sorted(KNOWN_STATUSES)}, not {status!r}")
        sets = [
            "#s = :s",
            "last_seen_at = :at",
            "first_seen_at = if_not_exists(first_seen_at, :at)",
            "status_pk = :spk",
            "status_sk = :ssk",
        ]
        values: dict[str, Any] = {":s": status, ":at": at, ":spk": f"STATUS#{status}", ":ssk": f"{at}#{tweet_id}"}
        removes: list[str] = []
        if status == STATUS_OK:
            sets += ["last_ok_at = :at", "first_ok_at = if_not_exists(first_ok_at, :at)"]
            removes += ["reason_code", "message"]
        else:
            sets += ["reason_code = :r", "message = :m"]
            values[":r"] = status
            values[":m"] = message or status
        _optional(sets, removes, values, "next_attempt_at", next_attempt_at)
        _optional(sets, removes, values, "unsupported_metrics", sorted(set(unsupported_metrics)) or None)
        self.table.update_item(
            Key={"pk": tweet_id, "sk": endpoint.value},
            UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def record_outcome(self, post: PostMetrics, endpoint: Endpoint, *, at: str) -> None:
        """Record what a fetch made of one Post: its status and reason, when it is tried next, what was refused."""
        self.record(
            post.tweet_id,
            endpoint,
            post.status,
            at=at,
            message=post.reason,
            next_attempt_at=to_iso(post.retry_at) if post.pending and post.retry_at else None,
            unsupported_metrics=post.unsupported_metrics,
        )

    def get_statuses(self, tweet_id: str) -> list[PostStatus]:
        return [
            PostStatus.from_item(item)
            for item in query_pages(self.table, KeyConditionExpression=Key("pk").eq(tweet_id), ConsistentRead=True)
        ]

    def delete_statuses(self, tweet_id: str) -> int:
        statuses = self.get_statuses(tweet_id)
        with self.table.batch_writer() as batch:
            for status in statuses:
                batch.delete_item(Key={"pk": status.tweet_id, "sk": status.endpoint.value})
        return len(statuses)

    def query_by_status(
        self, status: str, *, limit: int = 50, cursor: str | None = None, newest_first: bool = True
    ) -> Page[PostStatus]:
        """Posts whose latest outcome is `status` (StatusIndex), newest last_seen_at first by default."""
        if status not in KNOWN_STATUSES:
            raise ValueError(f"status must be one of {sorted(KNOWN_STATUSES)}, not {status!r}")
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, not {limit}")
        kwargs: dict[str, Any] = {
            "IndexName": "StatusIndex",
            "KeyConditionExpression": Key("status_pk").eq(f"STATUS#{status}"),
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        start = decode_cursor(cursor, required_keys=_STATUS_CURSOR_KEYS, pinned={"status_pk": f"STATUS#{status}"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.table.query(**kwargs)
        return Page(
            items=[PostStatus.from_item(item) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )
