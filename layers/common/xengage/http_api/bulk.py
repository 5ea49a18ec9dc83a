"""POST /tweets in bulk: read up to 10,000 ids (JSON or CSV), judge each on its own, track the good ones within the
deadline, and say what became of every id (docs/DESIGN.md, "Bulk tracking")."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from xengage.api_client.deadline import API_GATEWAY_TIMEOUT_SECONDS
from xengage.dal.registry import BulkWrite, TrackedPost
from xengage.http_api import context
from xengage.http_api.accounts import require_account
from xengage.http_api.boundary import CSV_MEDIA_TYPE
from xengage.http_api.errors import ApiError
from xengage.http_api.models import (
    CLOCK_SKEW,
    MAX_BULK_TRACK,
    MAX_X_ID,
    ErrorDetail,
    RejectedIdOut,
    TrackedPostOut,
    TrackIn,
    TrackIncomplete,
    TrackOut,
)
from xengage.observability import count, logger
from xengage.timeutil import snowflake_created_at, to_iso, utc_now

# Kept back from the 29 s for what follows the last write: removing a cut-off chunk's markers (1 s at most) and
# building and sending the answer of 10,000 ids.
ANSWER_RESERVE_SECONDS: Final = 4.0
SHOWN_CHARS: Final = 40
MAX_ID_DIGITS: Final = 19  # 2**63 - 1 has 19 digits
CSV_HEADER: Final = "tweet_id"
RETRY_AFTER_SECONDS: Final = 1


class TrackNotFinished(Exception):
    """The deadline came first: answered 503 with Retry-After and the whole account of the request."""

    def __init__(self, body: TrackIncomplete) -> None:
        super().__init__(body.error.message)
        self.body = body


@dataclass(frozen=True, slots=True)
class GivenId:
    value: str
    index: int | None = None  # JSON: position in tweet_ids
    line: int | None = None  # CSV: line number


@dataclass(frozen=True, slots=True)
class TrackRequest:
    ids: list[GivenId]
    account_id: str | None


@dataclass(slots=True)
class Verdicts:
    valid: list[str] = field(default_factory=list)  # unique, in the request's order
    rejected: list[RejectedIdOut] = field(default_factory=list)

    def reject(self, given: GivenId, reason: Any, message: str) -> None:
        self.rejected.append(
            RejectedIdOut(
                tweet_id=given.value[:SHOWN_CHARS], reason=reason, message=message, index=given.index, line=given.line
            )
        )


# --- reading the request --------------------------------------------------------------------------------------


def read_request(media_type: str, body: str, query_account: str | None) -> TrackRequest:
    """The ids and the account of a POST /tweets body (the boundary checked type, charset and size)."""
    if media_type == CSV_MEDIA_TYPE:
        return TrackRequest(ids=ids_from_csv(body), account_id=query_account)
    parsed = _json_body(body)
    if parsed.account_id and query_account and parsed.account_id != query_account:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "conflicting_account_id",
            f"account_id: the body says {parsed.account_id}, the query {query_account}; give one",
        )
    ids = [GivenId(value, index=index) for index, value in enumerate(parsed.tweet_ids)]
    return TrackRequest(ids=ids, account_id=parsed.account_id or query_account)


def _json_body(body: str) -> TrackIn:
    if not body.strip():  # the boundary judged every body but an absent one
        raise RequestValidationError([{"loc": ("body",), "msg": "Field required", "type": "missing"}])
    try:
        return TrackIn.model_validate(json.loads(body))
    except ValidationError as exc:
        # The same 422 validation_error, fields named body.*, as Powertools gives the routes it validates itself
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        ) from None


def ids_from_csv(text: str) -> list[GivenId]:
    """One id a line (csv quoting allowed); blank lines, CRLF, a UTF-8 BOM and a first line `tweet_id` tolerated."""
    ids: list[GivenId] = []
    reader = csv.reader(text.removeprefix("\ufeff").splitlines())
    for row in reader:
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if not ids and cells == [CSV_HEADER]:  # a header, on the first line that is not blank
            continue
        ids.append(GivenId(",".join(cells), line=reader.line_num))
        if len(ids) > MAX_BULK_TRACK:
            raise _too_many(len(ids), "lines of ids at least")
    if not ids:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "no_ids", "body: no tweet id in the CSV (one id a line)")
    return ids


def _too_many(given: int, what: str) -> ApiError:
    return ApiError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "too_many_ids",
        f"tweet_ids: {given:,} {what}, at most {MAX_BULK_TRACK:,} a request",
    )


# --- judging each id ------------------------------------------------------------------------------------------


def id_problem(value: str, now: datetime) -> tuple[str, str] | None:
    """Why `value` is no Post id (reason, message), or None."""
    if not value or not (value.isascii() and value.isdigit()):
        return "not_digits", "not a string of digits"
    if len(value) > MAX_ID_DIGITS:
        return "too_long", f"{len(value)} digits; X ids have at most {MAX_ID_DIGITS}"
    if value.startswith("0"):
        return "leading_zero", "X ids are positive and written without leading zeros"
    if int(value) > MAX_X_ID:
        return "out_of_range", "beyond X's 64-bit ids"
    if snowflake_created_at(value) > now + CLOCK_SKEW:
        return "future_id", f"decodes to a creation time of {to_iso(snowflake_created_at(value))}, in the future"
    return None


def judge(ids: Sequence[GivenId], now: datetime) -> Verdicts:
    verdicts, seen = Verdicts(), set[str]()
    for given in ids:
        problem = id_problem(given.value, now)
        if problem is not None:
            verdicts.reject(given, *problem)
        elif given.value in seen:
            verdicts.reject(given, "duplicate", "given earlier in this request (counted once)")
        else:
            seen.add(given.value)
            verdicts.valid.append(given.value)
    return verdicts


# --- tracking -------------------------------------------------------------------------------------------------


def deadline(lambda_context: Any) -> float:
    """time.monotonic() by which the last write must be sent: API Gateway's 29 s, or the function's own remaining
    time if shorter, less ANSWER_RESERVE_SECONDS."""
    remaining = API_GATEWAY_TIMEOUT_SECONDS
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        remaining = min(remaining, lambda_context.get_remaining_time_in_millis() / 1000)
    return time.monotonic() + remaining - ANSWER_RESERVE_SECONDS


def track_bulk(request: TrackRequest, *, until: float) -> TrackOut:
    """Judge every id, read which are tracked, write the others: no write before every check has passed."""
    if request.account_id:
        require_account(request.account_id)
    account = request.account_id or ""
    now = utc_now()
    verdicts = judge(request.ids, now)
    registry = context.deps().registry
    existing, unread = registry.read_posts_within(verdicts.valid, until=until)
    _reject_other_accounts(verdicts, existing, request.ids, account)
    left_unread = set(unread)
    new_ids = [i for i in verdicts.valid if i not in existing and i not in left_unread]
    tracked_at = to_iso(now)
    written = registry.write_posts_within(new_ids, request.account_id, now=tracked_at, until=until)
    stored = set(written.stored)
    tracked = [
        _tracked_out(existing.get(tweet_id), tweet_id, account, tracked_at)
        for tweet_id in verdicts.valid
        if (tweet_id in existing and existing[tweet_id].account_id == account) or tweet_id in stored
    ]
    answer = TrackOut(
        tracked=tracked,
        newly_tracked=len(stored),
        new=len(stored),
        already_tracked=len(tracked) - len(stored),
        rejected=len(verdicts.rejected),
        rejected_ids=verdicts.rejected,
    )
    logger.info(
        "posts tracked",
        extra={"account_id": request.account_id, "given": len(request.ids), **_log_counts(answer, written)},
    )
    not_stored = unread + written.not_stored
    if not_stored:
        raise _not_finished(answer, not_stored, written.orphaned_markers)
    return answer


def _reject_other_accounts(
    verdicts: Verdicts, existing: dict[str, TrackedPost], given: Sequence[GivenId], account: str
) -> None:
    """Posts already tracked under another account are refused (untrack first), in the order they were given."""
    positions = {item.value: item for item in reversed(given)}  # the first place each id was given
    for tweet_id, post in existing.items():
        if post.account_id != account:
            owner = f"account {post.account_id}" if post.account_id else "the app (no account)"
            verdicts.reject(positions[tweet_id], "tracked_with_other_account", f"tracked under {owner}; untrack first")
    verdicts.rejected.sort(key=lambda rejected: (rejected.index or 0, rejected.line or 0))


def _log_counts(answer: TrackOut, written: BulkWrite) -> dict[str, int]:
    return {
        "new": answer.new,
        "already_tracked": answer.already_tracked,
        "rejected": answer.rejected,
        "write_calls": written.calls,
        "write_calls_retried": written.retried,
    }


def _tracked_out(post: TrackedPost | None, tweet_id: str, account: str, tracked_at: str) -> TrackedPostOut:
    if post is None:
        created_at = to_iso(snowflake_created_at(tweet_id))
        return TrackedPostOut(
            tweet_id=tweet_id, account_id=account or None, created_at=created_at, tracked_at=tracked_at
        )
    return TrackedPostOut(
        tweet_id=post.tweet_id,
        account_id=post.account_id or None,
        created_at=post.created_at,
        tracked_at=post.tracked_at,
    )


def _not_finished(answer: TrackOut, not_stored: list[str], orphaned_markers: int) -> TrackNotFinished:
    count("TrackIncomplete")
    logger.warning(
        "tracking cut off by the deadline",
        extra={"not_stored": len(not_stored), "orphaned_markers": orphaned_markers},
    )
    message = (
        f"the deadline came before {len(not_stored):,} of the ids were tracked (listed in not_stored, none of them "
        "tracked); the others are: send the same request again"
    )
    return TrackNotFinished(
        TrackIncomplete(
            **dict(answer),
            error=ErrorDetail(code="track_incomplete", message=message),
            not_stored=not_stored,
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
    )
