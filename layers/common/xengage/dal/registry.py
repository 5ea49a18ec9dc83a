"""RegistryTable: accounts, tracked Posts and their per-endpoint due markers (keys as in docs/DESIGN.md)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_client, dynamodb_table, is_conditional_failure
from xengage.dal.batch import batch_delete_within, batch_get_within, batch_put_within
from xengage.dal.paging import Page, batch_get, decode_cursor, encode_cursor, plain, query_pages
from xengage.dal.series_state import MarkerPart, SeriesState, TotalsSnapshot
from xengage.dal.status import StatusChange, marker_key
from xengage.dal.updates import ItemUpdate
from xengage.observability import tracer
from xengage.timeutil import snowflake_created_at, to_iso

DUE_SHARDS: Final = 16
TOTALS: Final = Endpoint.TOTALS
APP_CONTEXT: Final = "APP"  # list_pk suffix of Posts collected with the app bearer token only
ACCOUNT_ACTIVE: Final = "active"
ACCOUNT_NEEDS_REAUTH: Final = "needs_reauth"
ACCOUNT_STATUSES: Final = frozenset({ACCOUNT_ACTIVE, ACCOUNT_NEEDS_REAUTH})

_LIST_CURSOR_KEYS: Final = frozenset({"pk", "sk", "list_pk", "list_sk"})
LEASE_WORKERS: Final = 8  # concurrent lease writes: a planner tick is bound by their round trips
# Bulk tracking writes Posts a chunk at a time, so a deadline leaves whole chunks tracked and the rest untouched.
TRACK_CHUNK_POSTS: Final = 1_000
# Removing the markers of a Post whose Post item could not be written may take this long past the deadline.
ORPHAN_CLEANUP_SECONDS: Final = 1.0


class NotFound(LookupError):
    """The account or Post the caller named is not in the registry."""


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    screen_name: str | None
    status: str
    created_at: str
    updated_at: str
    last_success_at: str | None = None
    last_error: str | None = None

    @property
    def needs_reauth(self) -> bool:
        return self.status == ACCOUNT_NEEDS_REAUTH


@dataclass(frozen=True, slots=True)
class TrackedPost:
    tweet_id: str
    account_id: str  # "" = app bearer only
    created_at: str
    tracked_at: str
    latest_totals: dict[str, int] = field(default_factory=dict)
    latest_totals_at: str | None = None


@dataclass(frozen=True, slots=True)
class DueMarker:
    """What the planner needs of a due marker (the DueIndex projection), and what the collector checks.

    `lease` names the tick whose message holds the Post (set when the planner queues it, removed when the
    collection ends): while leased, `next_due_at` is when the lease runs out, so a lost message is planned again.
    """

    tweet_id: str
    account_id: str
    endpoint: Endpoint
    next_due_at: str | None = None
    last_collected_at: str | None = None
    last_hour_collected: str | None = None
    due_sk: str | None = None
    lease: str | None = None
    series: SeriesState = field(default_factory=SeriesState)  # read from the item, not from DueIndex


@dataclass(slots=True)
class BulkWrite:
    """What `write_posts_within` stored: whole Posts (item and markers), and the ids it had no time for."""

    stored: list[str] = field(default_factory=list)
    not_stored: list[str] = field(default_factory=list)
    calls: int = 0  # BatchWriteItem calls
    retried: int = 0  # of them, calls that sent unprocessed items again
    orphaned_markers: int = 0  # markers of not_stored Posts that could not be deleted in time (re-tracking fixes)


def endpoints_for(account_id: str | None) -> tuple[Endpoint, ...]:
    """/totals is collected for every Post; the time series need the owner's tokens."""
    if account_id:
        return (Endpoint.TOTALS, Endpoint.HOURLY_28HR, Endpoint.HISTORICAL)
    return (Endpoint.TOTALS,)


def due_shard(tweet_id: str) -> int:
    return int(tweet_id) % DUE_SHARDS


def _account_key(user_id: str) -> dict[str, str]:
    return {"pk": f"ACCOUNT#{user_id}", "sk": "ACCOUNT"}


def _post_key(tweet_id: str) -> dict[str, str]:
    return {"pk": f"POST#{tweet_id}", "sk": "POST"}


def _due_key(tweet_id: str, endpoint: Endpoint) -> dict[str, str]:
    return marker_key(tweet_id, endpoint)


@dataclass(frozen=True, slots=True)
class Advance:
    """A collection ended: the marker's next due time (None: stop collecting, off DueIndex), its lease ended."""

    next_due_at: str | None
    collected_at: str
    last_hour_collected: str | None = None

    def add_to(self, update: ItemUpdate, tweet_id: str) -> None:
        update.conditions.append("attribute_exists(pk)")
        update.set("last_collected_at", self.collected_at)
        update.remove("lease")
        if self.next_due_at is None:
            update.remove("next_due_at", "due_pk", "due_sk")
        else:
            update.set("next_due_at", self.next_due_at)
            update.set("due_sk", f"{self.next_due_at}#{tweet_id}")
        if self.last_hour_collected is not None:
            update.set("last_hour_collected", self.last_hour_collected)


@dataclass(frozen=True, slots=True)
class Reschedule:
    """No collection: due again at `next_due_at`, the lease kept (handed-on work) or released."""

    next_due_at: str
    keep_lease: bool

    def add_to(self, update: ItemUpdate, tweet_id: str) -> None:
        update.conditions.append("attribute_exists(due_pk)")
        update.set("next_due_at", self.next_due_at)
        update.set("due_sk", f"{self.next_due_at}#{tweet_id}")
        if not self.keep_lease:
            update.remove("lease")


MarkerMove = Advance | Reschedule


def post_items(tweet_id: str, account_id: str | None, *, now: str) -> list[dict[str, Any]]:
    """The Post item and its due markers (one per endpoint it is collected on), each due at `now`."""
    if not tweet_id.isdigit():
        raise ValueError(f"tweet id must be a string of digits, not {tweet_id!r}")
    account = account_id or ""
    items: list[dict[str, Any]] = [
        {
            **_post_key(tweet_id),
            "tweet_id": tweet_id,
            "account_id": account,
            "created_at": to_iso(snowflake_created_at(tweet_id)),
            "tracked_at": now,
            "list_pk": f"POSTS#{account or APP_CONTEXT}",
            "list_sk": tweet_id,
        }
    ]
    for endpoint in endpoints_for(account):
        items.append(
            {
                **_due_key(tweet_id, endpoint),
                "tweet_id": tweet_id,
                "account_id": account,
                "endpoint": endpoint.value,
                "next_due_at": now,
                "due_pk": f"DUE#{endpoint.value}#{due_shard(tweet_id)}",
                "due_sk": f"{now}#{tweet_id}",
            }
        )
    return items


def _account_from(item: Mapping[str, Any]) -> Account:
    return Account(
        user_id=item["user_id"],
        screen_name=item.get("screen_name"),
        status=item.get("status", ACCOUNT_ACTIVE),
        created_at=item["created_at"],
        updated_at=item.get("updated_at", item["created_at"]),
        last_success_at=item.get("last_success_at"),
        last_error=item.get("last_error"),
    )


def _post_from(item: Mapping[str, Any], totals_marker: Mapping[str, Any] | None = None) -> TrackedPost:
    """The Post item, with the latest totals its /totals marker keeps (the Post item's own, written before they
    moved to the marker, until the marker has some)."""
    latest = totals_marker if totals_marker and "latest_totals" in totals_marker else item
    return TrackedPost(
        tweet_id=item["tweet_id"],
        account_id=item.get("account_id", ""),
        created_at=item["created_at"],
        tracked_at=item["tracked_at"],
        latest_totals=plain(latest.get("latest_totals") or {}),
        latest_totals_at=latest.get("latest_totals_at"),
    )


def _due_query(endpoint: Endpoint, shard: int, due_by: str) -> dict[str, Any]:
    """Query arguments for one DueIndex shard's markers due at or before `due_by`, oldest due first."""
    # due_sk is "{next_due_at}#{tweet_id}": "~" sorts after every digit, so this bound includes due_by itself.
    upper = f"{due_by}#~"
    return {
        "IndexName": "DueIndex",
        "KeyConditionExpression": Key("due_pk").eq(f"DUE#{endpoint.value}#{shard}") & Key("due_sk").lte(upper),
    }


def _marker_from(item: Mapping[str, Any]) -> DueMarker:
    return DueMarker(
        tweet_id=item["tweet_id"],
        account_id=item.get("account_id", ""),
        endpoint=Endpoint(item["endpoint"]),
        # DueIndex projects due_sk ("{next_due_at}#{tweet_id}") but not next_due_at itself.
        next_due_at=item.get("next_due_at") or (item["due_sk"].split("#", 1)[0] if "due_sk" in item else None),
        last_collected_at=item.get("last_collected_at"),
        last_hour_collected=item.get("last_hour_collected"),
        due_sk=item.get("due_sk"),
        lease=item.get("lease"),
        series=SeriesState.from_item(item),
    )


class RegistryDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    # --- accounts -------------------------------------------------------------------------------------------

    def put_account(self, user_id: str, screen_name: str | None, *, now: str, status: str = ACCOUNT_ACTIVE) -> Account:
        """Create or refresh an account; created_at and last_success_at survive re-authorization."""
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"account status must be one of {sorted(ACCOUNT_STATUSES)}, not {status!r}")
        response = self.table.update_item(
            Key=_account_key(user_id),
            UpdateExpression=(
                "SET user_id = :u, screen_name = :n, #s = :s, updated_at = :now, "
                "created_at = if_not_exists(created_at, :now), list_pk = :lp, list_sk = :u REMOVE last_error"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":u": user_id, ":n": screen_name, ":s": status, ":now": now, ":lp": "ACCOUNTS"},
            ReturnValues="ALL_NEW",
        )
        return _account_from(response["Attributes"])

    def get_account(self, user_id: str) -> Account | None:
        item = self.table.get_item(Key=_account_key(user_id), ConsistentRead=True).get("Item")
        return _account_from(item) if item else None

    def delete_account(self, user_id: str) -> bool:
        """Delete the account item; True when it existed. Its Posts stay tracked (untrack them explicitly)."""
        response = self.table.delete_item(Key=_account_key(user_id), ReturnValues="ALL_OLD")
        return bool(response.get("Attributes"))

    def list_accounts(self, *, limit: int = 50, cursor: str | None = None) -> Page[Account]:
        return self._list_page("ACCOUNTS", _account_from, limit=limit, cursor=cursor)

    def accounts_needing_reauth(self, *, bound: int) -> tuple[list[Account], bool]:
        """Accounts flagged needs_reauth among the first `bound` registered ones (a filtered ListIndex Query);
        True when every account was looked at."""
        kwargs: dict[str, Any] = {
            "IndexName": "ListIndex",
            "KeyConditionExpression": Key("list_pk").eq("ACCOUNTS"),
            "FilterExpression": Attr("status").eq(ACCOUNT_NEEDS_REAUTH),
        }
        flagged: list[Account] = []
        looked_at = 0
        while True:
            response = self.table.query(**kwargs, Limit=bound - looked_at)
            looked_at += int(response.get("ScannedCount", 0))
            flagged.extend(_account_from(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or looked_at >= bound:
                return flagged, not last
            kwargs["ExclusiveStartKey"] = last

    def set_account_status(
        self,
        user_id: str,
        status: str,
        *,
        now: str,
        last_error: str | None = None,
        last_success_at: str | None = None,
    ) -> None:
        """Set active/needs_reauth; raises NotFound for an unknown account (never creates a partial item)."""
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"account status must be one of {sorted(ACCOUNT_STATUSES)}, not {status!r}")
        sets = ["#s = :s", "updated_at = :now"]
        values: dict[str, Any] = {":s": status, ":now": now}
        removes: list[str] = []
        if last_error is not None:
            sets.append("last_error = :e")
            values[":e"] = last_error
        elif status == ACCOUNT_ACTIVE:
            removes.append("last_error")
        if last_success_at is not None:
            sets.append("last_success_at = :ok")
            values[":ok"] = last_success_at
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self.table.update_item(
                Key=_account_key(user_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise NotFound(f"account {user_id} is not registered") from exc
            raise

    def mark_account_success(self, user_id: str, *, now: str) -> None:
        """Record a successful call; a needs_reauth account stays flagged until it re-authorizes."""
        try:
            self.table.update_item(
                Key=_account_key(user_id),
                UpdateExpression="SET last_success_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise

    # --- tracked Posts ----------------------------------------------------------------------------------------

    def track_post(self, tweet_id: str, account_id: str | None, *, now: str) -> TrackedPost:
        """Track a Post idempotently: conditional puts, so re-tracking keeps latest totals and due history.

        Adds the due markers missing for its endpoints (/totals always; /28hr and /historical with an account),
        each due at `now` so the next tick collects it.
        """
        for item in post_items(tweet_id, account_id, now=now):
            self._put_if_absent(item)
        post = self.get_post(tweet_id)
        assert post is not None  # just written (or already there)
        return post

    def get_posts(self, tweet_ids: Sequence[str]) -> dict[str, TrackedPost]:
        """The tracked Posts among `tweet_ids` (absent ids are simply missing), strongly consistent.

        BatchGetItem, 100 keys a call: a 250-id request costs 3 calls instead of 250 GetItems.
        """
        posts = (_post_from(item) for item in self._batch_get(_post_key(i) for i in dict.fromkeys(tweet_ids)))
        return {post.tweet_id: post for post in posts}

    def _batch_get(self, keys: Iterable[dict[str, str]]) -> Iterator[dict[str, Any]]:
        """Items of `keys` that exist, strongly consistent."""
        return batch_get(self.table_name, keys)

    def track_posts(self, tweet_ids: Sequence[str], account_id: str | None, *, now: str) -> list[str]:
        """Track many Posts in bulk; returns the ids that were not tracked before (already tracked ones are kept).

        Reads which are tracked (BatchGetItem), then writes only the others (`write_new_posts`).
        """
        unique = list(dict.fromkeys(tweet_ids))
        existing = self.get_posts(unique)
        new_ids = [tweet_id for tweet_id in unique if tweet_id not in existing]
        self.write_new_posts(new_ids, account_id, now=now)
        return new_ids

    def write_new_posts(self, tweet_ids: Sequence[str], account_id: str | None, *, now: str) -> None:
        """Write Posts just read as untracked (`get_posts`), with their due markers: BatchWriteItem, 25 items a call.

        BatchWriteItem has no conditions, so a Post tracked between the read and the write by a concurrent call
        is written again with the same keys: its due markers restart at `now`, nothing is duplicated.
        """
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for tweet_id in tweet_ids:
                for item in post_items(tweet_id, account_id, now=now):
                    batch.put_item(Item=item)

    def read_posts_within(self, tweet_ids: Sequence[str], *, until: float) -> tuple[dict[str, TrackedPost], list[str]]:
        """`get_posts` for up to 10,000 ids, BATCH_WORKERS BatchGetItems at a time, stopping at `until`
        (time.monotonic()): the tracked Posts among `tweet_ids`, and the ids left unread."""
        outcome = batch_get_within(self.table_name, [_post_key(i) for i in dict.fromkeys(tweet_ids)], until=until)
        posts = {post.tweet_id: post for post in map(_post_from, outcome.items)}
        return posts, [key["pk"].removeprefix("POST#") for key in outcome.left]

    def write_posts_within(
        self, tweet_ids: Sequence[str], account_id: str | None, *, now: str, until: float
    ) -> BulkWrite:
        """Write Posts read as untracked with their due markers (the items of `post_items`), by BatchWriteItem,
        TRACK_CHUNK_POSTS Posts a chunk, stopping before `until` (time.monotonic()).

        In a chunk the markers go first and a Post item only once all its markers are stored, so a Post item (what
        "tracked" means to every reader) always has its markers. A chunk starts only while the time left is at
        least twice the slowest chunk so far; when a chunk still runs out of time, the markers of its unwritten
        Posts are deleted again (ORPHAN_CLEANUP_SECONDS past `until` at most) and those Posts are `not_stored`.
        """
        result = BulkWrite()
        left, slowest = list(dict.fromkeys(tweet_ids)), 0.0
        while left and until - time.monotonic() > 2 * slowest:
            chunk, left = left[:TRACK_CHUNK_POSTS], left[TRACK_CHUNK_POSTS:]
            started = time.monotonic()
            written = self._write_chunk(chunk, account_id, now=now, until=until, result=result)
            slowest = max(slowest, time.monotonic() - started)
            result.stored.extend(written)
            if len(written) < len(chunk):
                done = set(written)
                left = [tweet_id for tweet_id in chunk if tweet_id not in done] + left
                break
        result.not_stored.extend(left)
        return result

    def _write_chunk(
        self, chunk: list[str], account_id: str | None, *, now: str, until: float, result: BulkWrite
    ) -> list[str]:
        items = {tweet_id: post_items(tweet_id, account_id, now=now) for tweet_id in chunk}
        marker_items = [marker for post in items.values() for marker in post[1:]]
        # Retries of the markers may take their share of the time left, so the Post items still get theirs.
        started = time.monotonic()
        share = len(marker_items) / (len(marker_items) + len(chunk))
        markers = batch_put_within(self.table_name, marker_items, until=started + (until - started) * share)
        failed = {item["tweet_id"] for item in markers.left}
        posts = batch_put_within(self.table_name, [items[i][0] for i in chunk if i not in failed], until=until)
        failed |= {item["tweet_id"] for item in posts.left}
        result.calls += markers.calls + posts.calls
        result.retried += markers.retried + posts.retried
        if failed:
            orphans = [{"pk": m["pk"], "sk": m["sk"]} for i in failed for m in items[i][1:]]
            result.orphaned_markers += len(
                batch_delete_within(self.table_name, orphans, until=until + ORPHAN_CLEANUP_SECONDS).left
            )
        return [tweet_id for tweet_id in chunk if tweet_id not in failed]

    def _put_if_absent(self, item: dict[str, Any]) -> bool:
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def untrack_post(self, tweet_id: str) -> bool:
        """Delete the Post and all its due markers (a Query on its partition, never a Scan)."""
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in query_pages(
                self.table,
                KeyConditionExpression=Key("pk").eq(f"POST#{tweet_id}"),
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
        ]
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
        return any(key["sk"] == "POST" for key in keys)

    def get_post(self, tweet_id: str) -> TrackedPost | None:
        """The Post with its latest totals: one BatchGetItem of its item and its /totals marker."""
        items = {item["sk"]: item for item in self._batch_get([_post_key(tweet_id), _due_key(tweet_id, TOTALS)])}
        post = items.get("POST")
        return _post_from(post, items.get(_due_key(tweet_id, TOTALS)["sk"])) if post else None

    def list_posts(
        self, account_id: str | None, *, limit: int = 50, cursor: str | None = None, newest_first: bool = False
    ) -> Page[TrackedPost]:
        """Posts of one account, or of the app (account_id None or ""), by tweet id: ids are snowflakes, so that is
        creation order (oldest first, or newest first)."""
        page = self._list_page(
            f"POSTS#{account_id or APP_CONTEXT}", dict, limit=limit, cursor=cursor, descending=newest_first
        )
        markers = {
            item["tweet_id"]: item
            for item in batch_get(
                self.table_name, [_due_key(p["tweet_id"], TOTALS) for p in page.items], consistent=False
            )
        }
        return Page(items=[_post_from(item, markers.get(item["tweet_id"])) for item in page.items], cursor=page.cursor)

    def update_latest_totals(self, tweet_id: str, totals: Mapping[str, int], *, at: str) -> bool:
        """Keep the newest /totals snapshot on the Post's /totals marker (never older: a late redelivery loses)."""
        return self.settle(tweet_id, TOTALS, part=TotalsSnapshot(totals, at))

    @tracer.capture_method(capture_response=False)
    def settle(
        self,
        tweet_id: str,
        endpoint: Endpoint,
        *,
        status: StatusChange | None = None,
        move: MarkerMove | None = None,
        part: MarkerPart | None = None,
    ) -> bool:
        """Settle a Post on one endpoint with one UpdateItem of its marker: its status, the marker's move and a
        part of its series (the latest /totals snapshot, the /historical hour sums). False when the marker is gone
        (untracked) or, for a Reschedule, off DueIndex.

        The part has a condition of its own (a snapshot never older than the one kept, sums moved on from where
        they were read): when it fails, the write is made again without the part, the only case that takes a
        second write.
        """

        def marker_update() -> ItemUpdate:
            update = ItemUpdate(conditions=["attribute_exists(pk)"])
            if status is not None:
                status.add_to(update, tweet_id)
            if move is not None:
                move.add_to(update, tweet_id)
            return update

        key = _due_key(tweet_id, endpoint)
        if part is None:
            return marker_update().apply(self.table, key)
        with_part = marker_update()
        part.add_to(with_part)
        if with_part.apply(self.table, key):
            return True
        return (status is not None or move is not None) and marker_update().apply(self.table, key)

    # --- due markers ------------------------------------------------------------------------------------------

    def get_due_marker(self, tweet_id: str, endpoint: Endpoint) -> DueMarker | None:
        item = self.table.get_item(Key=_due_key(tweet_id, endpoint), ConsistentRead=True).get("Item")
        return _marker_from(item) if item else None

    def get_due_markers(self, tweet_ids: Sequence[str], endpoint: Endpoint) -> dict[str, DueMarker]:
        """The due markers of `tweet_ids` on `endpoint` that exist (untracked Posts are missing), consistent reads."""
        items = self._batch_get(_due_key(tweet_id, endpoint) for tweet_id in dict.fromkeys(tweet_ids))
        return {marker.tweet_id: marker for marker in map(_marker_from, items)}

    def iter_due(self, endpoint: Endpoint, due_by: str, *, page_size: int = 500) -> Iterator[DueMarker]:
        """Stream every marker of `endpoint` with next_due_at <= due_by, oldest due first across all shards.

        Each shard's Query pages come in due order; merging the 16 streams keeps one page per shard in memory.
        """
        shards = [
            query_pages(self.table, **_due_query(endpoint, shard, due_by), Limit=page_size)
            for shard in range(DUE_SHARDS)
        ]
        for item in heapq.merge(*shards, key=lambda item: item["due_sk"]):
            yield _marker_from(item)

    def oldest_due(self, endpoint: Endpoint, due_by: str) -> str | None:
        """The earliest next_due_at of `endpoint` at or before `due_by` (None: nothing due)."""
        marker = self.oldest_due_marker(endpoint, due_by)
        return marker.next_due_at if marker is not None else None

    def oldest_due_marker(self, endpoint: Endpoint, due_by: str) -> DueMarker | None:
        """The marker of `endpoint` due longest ago at or before `due_by` (None: nothing due), for a reader that does
        not stream the due Posts: one Query of one small index entry per shard, LEASE_WORKERS at a time. Leased
        markers carry their lease's end, so a Post a tick is collecting is not among them."""

        def first(shard: int) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = self.table.query(**_due_query(endpoint, shard, due_by), Limit=1).get(
                "Items", []
            )
            return items

        with ThreadPoolExecutor(max_workers=LEASE_WORKERS) as pool:
            firsts = [items[0] for items in pool.map(first, range(DUE_SHARDS)) if items]
        # due_sk is "{next_due_at}#{tweet_id}": the smallest is due longest ago (ties broken by tweet id)
        return _marker_from(min(firsts, key=lambda item: item["due_sk"])) if firsts else None

    def lease_due(self, marker: DueMarker, *, lease: str, until: str) -> bool:
        """Take a due marker for the message of tick `lease` until `until`, unless it changed since it was read.

        The condition on due_sk makes the lease exclusive: a retried or concurrent tick that read the same marker
        loses (False) instead of queueing the Post twice.
        """
        return bool(self.lease_due_many([marker], lease=lease, until=until))

    def lease_due_many(self, markers: Sequence[DueMarker], *, lease: str, until: str) -> list[str]:
        """`lease_due` for a batch, LEASE_WORKERS at a time (each is one conditional UpdateItem round trip); returns
        the ids whose lease this call won, in the order given."""
        for marker in markers:
            if marker.due_sk is None:
                raise ValueError(f"marker of {marker.tweet_id} was not read from DueIndex (no due_sk)")
        client = dynamodb_client()

        def take(marker: DueMarker) -> bool:
            try:
                client.update_item(
                    TableName=self.table_name,
                    Key={key: {"S": value} for key, value in _due_key(marker.tweet_id, marker.endpoint).items()},
                    UpdateExpression="SET next_due_at = :u, due_sk = :sk, lease = :l",
                    ConditionExpression="due_sk = :seen",
                    ExpressionAttributeValues={
                        ":u": {"S": until},
                        ":sk": {"S": f"{until}#{marker.tweet_id}"},
                        ":l": {"S": lease},
                        ":seen": {"S": str(marker.due_sk)},
                    },
                )
            except ClientError as exc:
                if is_conditional_failure(exc):
                    return False
                raise
            return True

        if len(markers) <= 1:
            won = [take(marker) for marker in markers]
        else:
            with ThreadPoolExecutor(max_workers=min(LEASE_WORKERS, len(markers))) as pool:
                won = list(pool.map(take, markers))
        return [marker.tweet_id for marker, taken in zip(markers, won, strict=True) if taken]

    def reschedule_due(self, tweet_id: str, endpoint: Endpoint, *, next_due_at: str, keep_lease: bool) -> bool:
        """Move a marker without a collection: keep the lease until a handed-on message's next attempt (plus a
        margin), or release it (`keep_lease=False`) so the Post is planned again once it can be collected."""
        return self.settle(tweet_id, endpoint, move=Reschedule(next_due_at, keep_lease))

    @tracer.capture_method(capture_response=False)
    def checkpoint_hours(self, tweet_id: str, endpoint: Endpoint, *, last_hour_collected: str) -> bool:
        """Record that every hour before `last_hour_collected` is stored (a finished /historical window), never
        moving it back: a redelivered or continued message then starts after it."""
        try:
            self.table.update_item(
                Key=_due_key(tweet_id, endpoint),
                UpdateExpression="SET last_hour_collected = :h",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(last_hour_collected) OR last_hour_collected < :h)",
                ExpressionAttributeValues={":h": last_hour_collected},
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def advance_due(
        self,
        tweet_id: str,
        endpoint: Endpoint,
        *,
        next_due_at: str | None,
        collected_at: str,
        last_hour_collected: str | None = None,
    ) -> bool:
        """Move a marker after a collection and end its lease; `next_due_at=None` stops collecting (drops it from
        DueIndex). False when the Post is not tracked (untracked meanwhile, or a console run on an untracked id)."""
        return self.settle(tweet_id, endpoint, move=Advance(next_due_at, collected_at, last_hour_collected))

    # --- shared -----------------------------------------------------------------------------------------------

    def _list_page(
        self, list_pk: str, convert: Any, *, limit: int, cursor: str | None, descending: bool = False
    ) -> Page[Any]:
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, not {limit}")
        kwargs: dict[str, Any] = {
            "IndexName": "ListIndex",
            "KeyConditionExpression": Key("list_pk").eq(list_pk),
            "Limit": limit,
            "ScanIndexForward": not descending,
        }
        start = decode_cursor(cursor, required_keys=_LIST_CURSOR_KEYS, pinned={"list_pk": list_pk})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.table.query(**kwargs)
        return Page(
            items=[convert(item) for item in response.get("Items", [])],
            cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )
