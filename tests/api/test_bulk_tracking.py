"""POST /tweets in bulk: 10,000 ids as JSON or CSV, idempotent, each rejected id with its reason, the deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ApiCaller
from tests.stack_dal import registry_dal
from xengage.api_client.catalog import Endpoint
from xengage.dal.registry import post_items

CSV = {"Content-Type": "text/csv"}
BULK = 10_000
FIRST_ID = 1021817816134156288  # 2018: a real snowflake; the ids after it are too


def bulk_ids(count: int, offset: int = 0) -> list[str]:
    return [str(FIRST_ID + offset + n) for n in range(count)]


def registry_items(aws: Any, tweet_ids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every RegistryTable item a tracked Post can have (its item, a marker per endpoint), by key: BatchGetItem
    (moto answers a Query by reading the whole table)."""
    from xengage.dal.paging import batch_get
    from xengage.dal.status import marker_key

    keys = [{"pk": f"POST#{i}", "sk": "POST"} for i in tweet_ids]
    keys += [marker_key(i, endpoint) for i in tweet_ids for endpoint in Endpoint]
    return {(item["pk"], item["sk"]): item for item in batch_get(aws.registry_table, keys)}


def expected_items(tweet_ids: list[str], account_id: str | None, tracked_at: str) -> dict[tuple[str, str], Any]:
    """What `track_post` writes for each Post: its item and a due marker per endpoint, each due at tracked_at."""
    return {
        (item["pk"], item["sk"]): item
        for tweet_id in tweet_ids
        for item in post_items(tweet_id, account_id, now=tracked_at)
    }


@pytest.fixture
def dynalite_registry(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """RegistryTable in dynalite, the rest of the stack in moto: moto reads a whole table for each Query and takes
    minutes over 20,000 items, where dynalite keeps them in key order as DynamoDB does."""
    from local.stack.dynamodb import dynalite_missing, start_dynalite
    from tests.aws_fixtures import load_template, table_kwargs

    missing = dynalite_missing()
    if missing:
        pytest.skip(f"dynalite cannot run here: {missing} (make node-deps)")
    server = start_dynalite()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)  # the functions' Deps and clients follow
        properties = load_template()["Resources"]["RegistryTable"]["Properties"]
        boto3.client("dynamodb").create_table(**table_kwargs(properties, aws.registry_table))
        yield aws
    finally:
        server.stop()
        monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")


@pytest.fixture
def unhurried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deadline far off: these tests check what 10,000 ids do, not how fast the local DynamoDB is on a shared
    machine (`python -m bench.bulk_tracking` times it)."""
    from xengage.http_api import bulk

    monkeypatch.setattr(bulk, "deadline", lambda lambda_context: time.monotonic() + 600)


def as_csv(ids: list[str]) -> str:
    """A header, CRLF line ends and a blank line every thousand ids, as a spreadsheet export may have them."""
    return "tweet_id\r\n" + "".join(f"{i}\r\n" + ("\r\n" if n % 1000 == 0 else "") for n, i in enumerate(ids))


@pytest.mark.usefixtures("unhurried")
def test_ten_thousand_ids_as_json_are_tracked_and_the_same_as_csv_change_nothing(
    api: ApiCaller, dynalite_registry: Any
) -> None:
    aws = dynalite_registry
    # Given 10,000 ids of the app (no account)
    ids = bulk_ids(BULK)

    # When they are tracked as JSON, then the same ids are sent again as CSV
    first = api("POST", "/tweets", body={"tweet_ids": ids})
    sample = ids[:3] + ids[4_998:5_001] + ids[-3:]
    stored = registry_items(aws, sample)
    again = api("POST", "/tweets", body=as_csv(ids), headers=CSV)

    # Then all are new the first time, each with the Post item and the /totals marker track_post would write
    assert first.status == 200, first.text[:300]
    body = first.json()
    assert (body["new"], body["newly_tracked"], body["already_tracked"], body["rejected"]) == (BULK, BULK, 0, 0)
    assert [post["tweet_id"] for post in body["tracked"]] == ids
    tracked_at = body["tracked"][0]["tracked_at"]
    assert stored == expected_items(sample, None, tracked_at)
    assert len(registry_dal().get_due_markers(ids, Endpoint.TOTALS)) == BULK
    # And the second time all are already tracked, and no item changed
    assert again.status == 200, again.text[:300]
    assert (again.json()["new"], again.json()["already_tracked"], again.json()["rejected"]) == (0, BULK, 0)
    assert registry_items(aws, sample) == stored
    assert {post["tracked_at"] for post in again.json()["tracked"]} == {tracked_at}


def test_csv_with_an_account_in_the_query_tracks_its_posts_on_every_endpoint(api: ApiCaller, aws: Any) -> None:
    # Given an account and a CSV of 100 ids: a tweet_id header, CRLF line ends, a blank line
    api.put_account("800")
    ids = bulk_ids(100, offset=50_000)

    # When it is posted with the account in the query
    reply = api("POST", "/tweets", query={"account_id": "800"}, body=as_csv(ids), headers=CSV)

    # Then every id is tracked under the account, with the three markers of an account's Post, due now
    assert reply.status == 200, reply.text[:300]
    answer = reply.json()
    assert (answer["new"], answer["already_tracked"], answer["rejected"]) == (100, 0, 0)
    assert {post["account_id"] for post in answer["tracked"]} == {"800"}
    assert registry_items(aws, ids) == expected_items(ids, "800", answer["tracked"][0]["tracked_at"])
    listed = api("GET", "/tweets", query={"account_id": "800", "limit": "60"}).json()
    assert [post["tweet_id"] for post in listed["posts"]] == ids[:60]


def test_each_rejected_id_has_its_reason_and_the_good_ones_are_tracked(api: ApiCaller) -> None:
    # Given one good id and one of each kind of bad id, some twice
    good = str(FIRST_ID)
    given = [
        good,
        "12x",  # not digits
        "",  # not digits either
        "0123",  # leading zero
        "1" * 25,  # too long
        "9999999999999999999",  # beyond 2**63 - 1
        "9000000000000000000",  # a snowflake from 2085
        good,  # duplicate
    ]

    # When they are tracked as JSON
    reply = api("POST", "/tweets", body={"tweet_ids": given})

    # Then the good one is new, every other is rejected with its reason at its index, and they all add up
    assert reply.status == 200, reply.text[:300]
    answer = reply.json()
    assert [(r["index"], r["reason"]) for r in answer["rejected_ids"]] == [
        (1, "not_digits"),
        (2, "not_digits"),
        (3, "leading_zero"),
        (4, "too_long"),
        (5, "out_of_range"),
        (6, "future_id"),
        (7, "duplicate"),
    ]
    assert all(r["message"] and r["line"] is None for r in answer["rejected_ids"])
    assert (answer["new"], answer["already_tracked"], answer["rejected"]) == (1, 0, 7)
    assert answer["new"] + answer["already_tracked"] + answer["rejected"] == len(given)
    assert [p["tweet_id"] for p in api("GET", "/tweets").json()["posts"]] == [good]


def test_csv_rejections_name_their_line(api: ApiCaller) -> None:
    # Given a CSV whose header is followed by a good id, a bad one, a blank line, and a line of two fields
    body = "tweet_id\n1021817816134156288\nabc\n\n1021817816134156289,1021817816134156290\n"

    # When it is posted
    reply = api("POST", "/tweets", body=body, headers={"Content-Type": "text/csv; charset=utf-8"})

    # Then the bad lines are rejected with their line numbers as an editor shows them
    assert reply.status == 200, reply.text[:300]
    answer = reply.json()
    assert [(r["line"], r["reason"], r["index"]) for r in answer["rejected_ids"]] == [
        (3, "not_digits", None),
        (5, "not_digits", None),
    ]
    assert answer["new"] == 1


def test_a_post_of_another_account_is_rejected_and_the_rest_tracked(api: ApiCaller) -> None:
    # Given a Post tracked under account 600
    api.put_account("600")
    api.put_account("601")
    taken, free = bulk_ids(2)
    api("POST", "/tweets", body={"tweet_ids": [taken], "account_id": "600"})

    # When account 601 tracks it with another one
    reply = api("POST", "/tweets", body={"tweet_ids": [free, taken], "account_id": "601"})

    # Then that one is rejected naming its account, and the other is tracked under 601
    assert reply.status == 200
    assert [(r["tweet_id"], r["reason"], r["index"]) for r in reply.json()["rejected_ids"]] == [
        (taken, "tracked_with_other_account", 1)
    ]
    assert "account 600" in reply.json()["rejected_ids"][0]["message"]
    assert api("GET", f"/tweets/{taken}").json()["account_id"] == "600"
    assert api("GET", f"/tweets/{free}").json()["account_id"] == "601"


@pytest.mark.parametrize(
    ("name", "request_kwargs", "status", "code"),
    [
        ("10,001 ids as JSON", {"body": {"tweet_ids": bulk_ids(BULK + 1)}}, 422, "validation_error"),
        ("10,001 lines of CSV", {"body": "\n".join(bulk_ids(BULK + 1)), "headers": CSV}, 422, "too_many_ids"),
        ("no body", {}, 422, "validation_error"),
        ("a CSV of blank lines", {"body": "tweet_id\n\n\r\n", "headers": CSV}, 422, "no_ids"),
        ("ids that are numbers", {"body": {"tweet_ids": [1021817816134156288]}}, 422, "validation_error"),
        ("CSV in latin-1", {"raw_body": "caf\xe9\n".encode("latin-1"), "headers": CSV}, 400, "invalid_body"),
        (
            "a charset other than UTF-8",
            {"body": "1\n", "headers": {"Content-Type": "text/csv; charset=latin-1"}},
            415,
            "unsupported_charset",
        ),
        ("over 1 MiB", {"body": "1\n" * 600_000, "headers": CSV}, 413, "body_too_large"),
        (
            "two account ids",
            {"body": {"tweet_ids": ["20"], "account_id": "5"}, "query": {"account_id": "6"}},
            400,
            "conflicting_account_id",
        ),
        (
            "an unknown account",
            {"body": "20\n", "headers": CSV, "query": {"account_id": "404404"}},
            404,
            "account_not_found",
        ),
        (
            "a bad account id in the query",
            {"body": "20\n", "headers": CSV, "query": {"account_id": "x"}},
            422,
            "validation_error",
        ),
    ],
)
def test_bad_bodies_are_4xx_and_track_nothing(
    api: ApiCaller, name: str, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    # When the request is sent
    reply = api("POST", "/tweets", **request_kwargs)

    # Then it is refused with its code, and nothing is tracked
    assert (reply.status, reply.error_code) == (status, code), reply.text[:300]
    assert api("GET", "/tweets").json()["posts"] == []


def test_csv_is_taken_by_post_tweets_only(api: ApiCaller) -> None:
    # When another route gets a CSV body
    reply = api("POST", "/engagement/totals", body="1021817816134156288\n", headers=CSV)

    # Then it is 415, as before
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type")


def test_no_time_left_is_503_naming_every_id_and_writes_nothing(api: ApiCaller, aws: Any) -> None:
    # Given a function with no time left beyond the answer's reserve
    ids = bulk_ids(300)
    api.remaining_millis = 3_000

    # When 300 ids are tracked
    reply = api("POST", "/tweets", body={"tweet_ids": [*ids, "12x"]})

    # Then 503 with Retry-After names all of them as not stored, the rejected one still judged, nothing written
    assert reply.status == 503, reply.text[:300]
    answer = reply.json()
    assert answer["error"]["code"] == "track_incomplete" and reply.headers["Retry-After"] == "1"
    assert answer["not_stored"] == ids and answer["tracked"] == [] and answer["rejected"] == 1
    assert registry_items(aws, ids[:5]) == {}


class VirtualClock:
    """time.monotonic and time.sleep where only sleeping moves the clock: the deadline comes after so many backoff
    sleeps, however slow the machine is."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class Unprocessed:
    """A DynamoDB client whose BatchWriteItem leaves the puts of some Posts unprocessed, as throttling does."""

    def __init__(self, client: Any, refused: set[str]) -> None:
        self.client = client
        self.refused = refused
        self.retries = 0
        self.throttle_first = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.throttle_first:
            # the first call fails whole, throttled past botocore's own retries
            self.throttle_first = False
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchWriteItem")
        ((table, requests),) = RequestItems.items()
        refused = [
            r for r in requests if r.get("PutRequest", {}).get("Item", {}).get("tweet_id", {}).get("S") in self.refused
        ]
        if refused and len(refused) == len(requests):
            self.retries += 1
        kept = [r for r in requests if r not in refused]
        if kept:
            self.client.batch_write_item(RequestItems={table: kept})
        return {"UnprocessedItems": {table: refused} if refused else {}}


def test_items_left_unprocessed_past_the_deadline_leave_no_half_tracked_post(api: ApiCaller, aws: Any) -> None:
    # Given an account, and DynamoDB throttling a first call whole, then leaving the Post item of one Post and the
    # markers of another unprocessed for good
    from xengage.dal import batch
    from xengage.dal.aws import dynamodb_bulk_client

    api.put_account("900")
    # Six Posts: their markers go in one BatchWriteItem and their Post items in another, so which items a call
    # processes depends on nothing but the ids
    ids = bulk_ids(6)
    stuck_post, stuck_marker = ids[1], ids[4]
    throttled = Unprocessed(dynamodb_bulk_client(), set())
    original_put = batch.batch_put_within

    def put_one_kind(table_name: str, items: Any, *, until: float) -> Any:
        # the Post item of stuck_post and the markers of stuck_marker are refused; the rest goes through
        throttled.refused = {stuck_post} if any(item["sk"] == "POST" for item in items) else {stuck_marker}
        return original_put(table_name, items, until=until)

    api.remaining_millis = 5_500  # 1.5 s past the answer's reserve, on a clock only the backoff's sleeps move
    clock = VirtualClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, "dynamodb_bulk_client", lambda: throttled)
        patch.setattr("xengage.dal.registry.batch_put_within", put_one_kind)
        for module in ("xengage.dal.batch", "xengage.dal.registry", "xengage.http_api.bulk"):
            patch.setattr(f"{module}.time", clock)

        # When the six ids are tracked
        reply = api("POST", "/tweets", body={"tweet_ids": ids, "account_id": "900"})

    # Then the two are not stored, after retries with backoff, and nothing of them is left: no Post item, no marker
    assert reply.status == 503, reply.text[:300]
    answer = reply.json()
    assert answer["not_stored"] == [stuck_post, stuck_marker]
    assert throttled.retries > 1
    assert registry_items(aws, [stuck_post, stuck_marker]) == {}
    # And every other Post is tracked whole
    others = [tweet_id for tweet_id in ids if tweet_id not in {stuck_post, stuck_marker}]
    assert [post["tweet_id"] for post in answer["tracked"]] == others and answer["new"] == 4
    tracked_at = answer["tracked"][0]["tracked_at"]
    assert registry_items(aws, others) == expected_items(others, "900", tracked_at)

    # When DynamoDB recovers and the same request is sent again
    api.remaining_millis = 29_000
    again = api("POST", "/tweets", body={"tweet_ids": ids, "account_id": "900"})

    # Then the two are tracked now, and the others were already
    assert again.status == 200
    assert (again.json()["new"], again.json()["already_tracked"]) == (2, 4)
