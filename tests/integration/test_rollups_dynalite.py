"""Rollups under concurrent collectors against dynalite and the local stand-in for TransactWriteItems (serve.js)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from tests.unit.fakes import post_ids
from tests.unit.test_dal_rollups import HOURS, NOW, bucket_sums, rollup_sums
from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint, MetricsDal

pytestmark = pytest.mark.integration


def test_racing_writers_keep_the_account_rollup_exact(dynalite_table: str) -> None:
    # Given 4 writers at once (a collector, its redelivery, two live queries), each storing 28 hours of the same 3
    # Posts of one account with its own values
    metrics_table = rollups_table = dynalite_table  # one table: Post and account keys do not meet here
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
