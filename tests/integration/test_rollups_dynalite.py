"""Rollups under concurrent collectors against dynalite and the local stand-in for TransactWriteItems (serve.js)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import boto3
import pytest

from local.stack.dynamodb import dynalite_missing, start_dynalite
from tests.unit.fakes import post_ids
from tests.unit.test_dal_rollups import HOURS, NOW, bucket_sums, rollup_sums
from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint, MetricsDal

pytestmark = pytest.mark.integration

TABLES = ("rollups-race-metrics", "rollups-race-rollups")


@pytest.fixture
def dynalite_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    missing = dynalite_missing()
    if missing:
        pytest.skip(f"dynalite cannot run here: {missing}")
    server = start_dynalite()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
        from xengage.dal.aws import clear_clients

        clear_clients()
        client = boto3.client("dynamodb", endpoint_url=server.url)
        for name in TABLES:
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        yield TABLES
        clear_clients()
    finally:
        server.stop()


def test_racing_writers_keep_the_account_rollup_exact(dynalite_tables: tuple[str, str]) -> None:
    # Given 4 writers at once (a collector, its redelivery, two live queries), each storing 28 hours of the same 3
    # Posts of one account with its own values
    metrics_table, rollups_table = dynalite_tables
    tweet_ids = post_ids(3, age=timedelta(days=3))
    writers = 4
    start = threading.Barrier(writers)

    def write(index: int) -> int:
        points = [
            MetricPoint(tweet_id, Endpoint.HOURLY_28HR, at, {"impressions": index * 100 + hour}, NOW, "42")
            for tweet_id in tweet_ids
            for hour, at in enumerate(HOURS[:28])
        ]
        start.wait()
        return MetricsDal(metrics_table, rollups_table).put_points(points).transact_calls

    # When they all write (each transaction conditional on the day items as its writer read them)
    with ThreadPoolExecutor(max_workers=writers) as pool:
        transactions = list(pool.map(write, range(writers)))

    # Then some were overtaken and wrote again, and the rollup equals the sums of what the day items hold
    assert sum(transactions) > writers
    expected = bucket_sums(metrics_table, tweet_ids, {"42"})
    assert expected and rollup_sums(rollups_table, {"42"}) == expected
