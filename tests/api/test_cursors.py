"""Cursors are signed and bound to their listing: edited, transplanted or made-up cursors are a 400 invalid_cursor."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest

from tests.api.conftest import ApiCaller
from tests.api.test_metrics import hourly
from tests.conftest import cold_starts
from tests.stack_dal import metrics_dal, status_dal
from xengage.api_client.catalog import Endpoint

POSTS_A = ["1861234567890123456", "1861234567890123457", "1861234567890123458"]
POSTS_B = ["1861234567890123466", "1861234567890123467"]


@pytest.fixture
def listings(api: ApiCaller) -> ApiCaller:
    """Two accounts with Posts, app-context Posts, two statuses with several entries, two Posts with hourly points."""
    for account in ("800", "801", "802"):
        api.put_account(account, f"acct{account}")
    api("POST", "/tweets", body={"tweet_ids": POSTS_A, "account_id": "800"})
    api("POST", "/tweets", body={"tweet_ids": POSTS_B, "account_id": "801"})
    api("POST", "/tweets", body={"tweet_ids": ["1861234567890123476", "1861234567890123477"]})
    for hour, tweet_id in enumerate(POSTS_A + POSTS_B):
        for status in ("protected", "unavailable"):
            status_dal().record(
                tweet_id,
                Endpoint.TOTALS if status == "protected" else Endpoint.HOURLY_28HR,
                status,
                at=f"2026-11-25T1{hour}:00:00Z",
            )
    for tweet_id in (POSTS_A[0], POSTS_A[1]):
        metrics_dal().put_points(hourly(tweet_id, Endpoint.HOURLY_28HR, 10, lambda h: {"impressions": h}))
    return api


PAGED: dict[str, tuple[str, dict[str, str]]] = {
    "accounts": ("/accounts", {}),
    "tweets of 800": ("/tweets", {"account_id": "800"}),
    "tweets of 801": ("/tweets", {"account_id": "801"}),
    "tweets of the app": ("/tweets", {}),
    "tweets of 800, newest first": ("/tweets", {"account_id": "800", "order": "newest"}),
    "protected": ("/statuses/protected", {}),
    "unavailable": ("/statuses/unavailable", {}),
    "metrics of A0": (f"/tweets/{POSTS_A[0]}/metrics", {"endpoint": "28hr"}),
    "metrics of A1": (f"/tweets/{POSTS_A[1]}/metrics", {"endpoint": "28hr"}),
    "metrics of A0 from hour 2": (
        f"/tweets/{POSTS_A[0]}/metrics",
        {"endpoint": "28hr", "from": "2026-11-20T02:00:00Z"},
    ),
}


def first_cursor(api: ApiCaller, name: str) -> str:
    path, query = PAGED[name]
    reply = api("GET", path, query={**query, "limit": "1"})
    assert reply.status == 200, reply.text
    cursor = reply.json()["next_cursor"]
    assert cursor, f"{name} has a second page"
    return str(cursor)


def with_cursor(api: ApiCaller, name: str, cursor: str) -> Any:
    path, query = PAGED[name]
    return api("GET", path, query={**query, "limit": "1", "cursor": cursor})


def test_each_listing_pages_on_with_its_own_cursor(listings: ApiCaller) -> None:
    for name in PAGED:
        reply = with_cursor(listings, name, first_cursor(listings, name))
        assert reply.status == 200, (name, reply.text)


@pytest.mark.parametrize(
    ("issued_by", "used_on"),
    [
        ("accounts", "tweets of 800"),
        ("tweets of 800", "tweets of 801"),
        ("tweets of 800", "tweets of the app"),
        ("tweets of 800", "tweets of 800, newest first"),
        ("tweets of the app", "accounts"),
        ("protected", "unavailable"),
        ("metrics of A0", "metrics of A1"),
        ("metrics of A0", "metrics of A0 from hour 2"),
        ("tweets of 800", "metrics of A0"),
        ("unavailable", "tweets of 801"),
    ],
)
def test_a_cursor_copied_to_another_listing_is_invalid(listings: ApiCaller, issued_by: str, used_on: str) -> None:
    reply = with_cursor(listings, used_on, first_cursor(listings, issued_by))
    assert (reply.status, reply.error_code) == (400, "invalid_cursor"), reply.text
    assert reply.json()["error"]["message"].startswith("cursor: ")


def _edits(cursor: str) -> list[str]:
    payload, _, mac = cursor.rpartition(".")
    key = json.loads(base64.urlsafe_b64decode(payload))
    forged_key = {name: value[:-1] + ("1" if value[-1] != "1" else "2") for name, value in key.items()}
    forged = base64.urlsafe_b64encode(json.dumps(forged_key, separators=(",", ":")).encode()).decode()
    return [
        cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),  # one character of the signature
        payload[:-4] + "AAAA" + "." + mac,  # the key, signature kept
        f"{forged}.{mac}",  # another key under this signature
        forged,  # an unsigned key of the right shape
        payload,  # the signed key without its signature
        "." + mac,
        cursor + ".",
        "x" * 2048,
        "not base64 at all!",
    ]


@pytest.mark.parametrize("name", ["tweets of 800", "accounts", "protected", "metrics of A0"])
def test_an_edited_or_made_up_cursor_is_invalid(listings: ApiCaller, name: str) -> None:
    for edited in _edits(first_cursor(listings, name)):
        reply = with_cursor(listings, name, edited)
        assert (reply.status, reply.error_code) == (400, "invalid_cursor"), (edited, reply.text)


def test_a_cursor_longer_than_any_issued_is_a_422_naming_the_field(listings: ApiCaller) -> None:
    reply = with_cursor(listings, "accounts", "x" * 3000)
    assert reply.status == 422 and "query.cursor" in reply.json()["error"]["message"]


def test_replacing_the_app_secret_retires_cursors_in_flight(listings: ApiCaller) -> None:
    # Given a cursor issued under the current app secret
    cursor = first_cursor(listings, "tweets of 800")
    # When the operator stores new app credentials (and the cached value expires)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=listings.resources.app_secret_arn,
        SecretString=json.dumps({"consumer_key": "k2", "consumer_secret": "s2", "bearer_token": "b2"}),
    )
    cold_starts()  # a new process: the secret's cached value gone
    # Then the old cursor is refused and a new listing works
    assert with_cursor(listings, "tweets of 800", cursor).error_code == "invalid_cursor"
    assert with_cursor(listings, "tweets of 800", first_cursor(listings, "tweets of 800")).status == 200
