"""Registry reads and writes the HTTP API needs in bulk: a tracking batch of 250 Posts in a few calls.

`RegistryDal.track_post` makes ~5 sequential calls per Post (conditional puts, then a read), which for a
250-id batch means over a thousand round trips inside one API request. Here the batch is read with
BatchGetItem (100 keys per call) and the Posts found absent are written with BatchWriteItem (25 per call),
building exactly the items `track_post` builds (keys from docs/DESIGN.md, helpers from `registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from xengage.dal.aws import dynamodb_resource
from xengage.dal.registry import (
    APP_CONTEXT,
    RegistryDal,
    TrackedPost,
    _due_key,
    _post_from,
    _post_key,
    due_shard,
    endpoints_for,
)
from xengage.timeutil import snowflake_created_at, to_iso

BATCH_GET_MAX: Final = 100  # DynamoDB BatchGetItem limit
MAX_UNPROCESSED_ROUNDS: Final = 8


def get_posts(registry: RegistryDal, tweet_ids: Sequence[str]) -> dict[str, TrackedPost]:
    """The tracked Posts among `tweet_ids` (absent ids are simply missing), strongly consistent."""
    found: dict[str, TrackedPost] = {}
    resource = dynamodb_resource()
    unique = list(dict.fromkeys(tweet_ids))
    for offset in range(0, len(unique), BATCH_GET_MAX):
        request: dict[str, Any] = {
            registry.table_name: {
                "Keys": [_post_key(tweet_id) for tweet_id in unique[offset : offset + BATCH_GET_MAX]],
                "ConsistentRead": True,
            }
        }
        for _ in range(MAX_UNPROCESSED_ROUNDS):
            response = resource.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(registry.table_name, []):
                post = _post_from(item)
                found[post.tweet_id] = post
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("BatchGetItem kept returning UnprocessedKeys")
    return found


def post_items(tweet_id: str, account_id: str | None, *, now: str) -> list[dict[str, Any]]:
    """The Post item and its due markers, as RegistryDal.track_post writes them."""
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


def track_new_posts(registry: RegistryDal, tweet_ids: Sequence[str], account_id: str | None, *, now: str) -> int:
    """Write Posts the caller just found untracked (get_posts), with their due markers; returns how many.

    BatchWriteItem has no conditions: only pass ids read as absent a moment before, so nothing is overwritten.
    """
    with registry.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
        for tweet_id in dict.fromkeys(tweet_ids):
            for item in post_items(tweet_id, account_id, now=now):
                batch.put_item(Item=item)
    return len(set(tweet_ids))
