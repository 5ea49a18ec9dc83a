"""Each Post's last outcome on each endpoint (ok, or a Reason with the API's message), kept on its due marker.

The marker's item (RegistryTable, `pk=POST#{tweet_id}`, `sk=DUE#{endpoint}`) holds the status beside the schedule,
so settling a Post after a collection is one UpdateItem (docs/DESIGN.md, "Settling a Post"); `StatusIndex`
(`status_pk=STATUS#{status}`, `status_sk={last_seen_at}#{tweet_id}`) lists Posts by status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import STATUS_OK, Endpoint, Reason, Refusal
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import Page, decode_cursor, encode_cursor, query_pages
from xengage.dal.updates import ItemUpdate
from xengage.timeutil import to_iso

if TYPE_CHECKING:
    from xengage.api_client.models import PostMetrics

KNOWN_STATUSES: Final = frozenset({STATUS_OK, *(reason.value for reason in Reason)})
_STATUS_CURSOR_KEYS: Final = frozenset({"pk", "sk", "status_pk", "status_sk"})
MARKER_PREFIX: Final = "DUE#"
# A metric listed in `unsupported_metrics` by a version that kept no reasons.
UNKNOWN_REFUSAL: Final = (Refusal.UNKNOWN.value, "refused before this version kept the reasons")
REFUSAL_CODES: Final = frozenset(refusal.value for refusal in Refusal)
# metric -> (a catalog.Refusal value, the words that say why)
Refusals = tuple[tuple[str, tuple[str, str]], ...]


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
    # Each of unsupported_metrics with why, in name order; None when read from StatusIndex, which does not project
    # `unsupported_reasons` (a GSI's projection cannot change on a deployed table without renaming the index).
    refusals: Refusals | None = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any], *, with_reasons: bool = True) -> PostStatus:
        unsupported = tuple(sorted(item.get("unsupported_metrics") or ()))
        return cls(
            tweet_id=item["tweet_id"],
            endpoint=Endpoint(item["endpoint"]),
            status=item["status"],
            reason_code=item.get("reason_code"),
            message=item.get("message"),
            first_seen_at=item["first_seen_at"],
            last_seen_at=item["last_seen_at"],
            first_ok_at=item.get("first_ok_at"),
            last_ok_at=item.get("last_ok_at"),
            next_attempt_at=item.get("next_attempt_at"),
            unsupported_metrics=unsupported,
            refusals=stored_refusals(unsupported, item.get("unsupported_reasons")) if with_reasons else None,
        )


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A Post's outcome to record: `next_attempt_at` only with a pending status (or `usage_capped`),
    `unsupported_metrics` when some, with why (`refusals`)."""

    status: str
    at: str
    message: str | None = None
    next_attempt_at: str | None = None
    unsupported_metrics: tuple[str, ...] = ()
    refusals: Refusals = ()

    def __post_init__(self) -> None:
        if self.status not in KNOWN_STATUSES:
            raise ValueError(f"status must be one of {sorted(KNOWN_STATUSES)}, not {self.status!r}")

    @classmethod
    def of(cls, post: PostMetrics, *, at: str) -> StatusChange:
        """What a fetch made of one Post: its status and reason, when it is tried next, what was refused."""
        return cls(
            status=post.status,
            at=at,
            message=post.reason,
            next_attempt_at=to_iso(post.retry_at) if post.retry_at and _rescheduled(post) else None,
            unsupported_metrics=tuple(sorted(set(post.unsupported_metrics))),
            refusals=tuple(sorted((m, (why.reason.value, why.message)) for m, why in post.refusals.items())),
        )

    def add_to(self, update: ItemUpdate, tweet_id: str) -> None:
        """SET the outcome; first_seen_at / first_ok_at are kept from the first time (if_not_exists)."""
        update.set("status", self.status)
        update.set("last_seen_at", self.at)
        update.set("first_seen_at", self.at, expression="if_not_exists(first_seen_at, :first_seen_at)")
        update.set("status_pk", f"STATUS#{self.status}")
        update.set("status_sk", f"{self.at}#{tweet_id}")
        if self.status == STATUS_OK:
            update.set("last_ok_at", self.at)
            update.set("first_ok_at", self.at, expression="if_not_exists(first_ok_at, :first_ok_at)")
            update.remove("reason_code", "message")
        else:
            update.set("reason_code", self.status)
            update.set("message", self.message or self.status)
        update.set_or_remove("next_attempt_at", self.next_attempt_at)
        update.set_or_remove("unsupported_metrics", sorted(set(self.unsupported_metrics)) or None)
        reasons = {metric: {"reason": reason, "message": message} for metric, (reason, message) in self.refusals}
        update.set_or_remove("unsupported_reasons", reasons or None)


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
    ) -> bool:
        """Record one Post's outcome on its marker; False when the Post has no marker there (not tracked, or not
        collected on that endpoint): an outcome is kept only for what is tracked."""
        change = StatusChange(status, at, message, next_attempt_at, tuple(unsupported_metrics))
        return self.record_change(tweet_id, endpoint, change)

    def record_change(self, tweet_id: str, endpoint: Endpoint, change: StatusChange) -> bool:
        update = ItemUpdate(conditions=["attribute_exists(pk)"])
        change.add_to(update, tweet_id)
        return update.apply(self.table, marker_key(tweet_id, endpoint))

    def record_outcome(self, post: PostMetrics, endpoint: Endpoint, *, at: str) -> bool:
        return self.record_change(post.tweet_id, endpoint, StatusChange.of(post, at=at))

    def get_statuses(self, tweet_id: str) -> list[PostStatus]:
        items = query_pages(
            self.table,
            KeyConditionExpression=Key("pk").eq(f"POST#{tweet_id}") & Key("sk").begins_with(MARKER_PREFIX),
            ConsistentRead=True,
        )
        return [PostStatus.from_item(item) for item in items if "status" in item]

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
            items=[PostStatus.from_item(item, with_reasons=False) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )


def stored_refusals(unsupported: Iterable[str], reasons: Any) -> Refusals:
    """Each unsupported metric with its stored reason; items written before reasons were kept have only the names."""
    kept = reasons if isinstance(reasons, Mapping) else {}
    out: list[tuple[str, tuple[str, str]]] = []
    for metric in sorted(set(unsupported) | set(kept)):
        why = kept.get(metric)
        if isinstance(why, Mapping) and why.get("reason") in REFUSAL_CODES:
            out.append((metric, (str(why["reason"]), str(why.get("message") or ""))))
        else:
            out.append((metric, UNKNOWN_REFUSAL))
    return tuple(out)


def _rescheduled(post: PostMetrics) -> bool:
    """Handed on (rate_limited / deferred), or deferred by the monthly @handle cap: tried again at retry_at."""
    return post.pending or post.status == Reason.USAGE_CAPPED.value


def marker_key(tweet_id: str, endpoint: Endpoint) -> dict[str, str]:
    return {"pk": f"POST#{tweet_id}", "sk": f"{MARKER_PREFIX}{endpoint.value}"}
