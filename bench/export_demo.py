"""The analytics export of `make run`'s demo data: its files and rows (`make export-demo`).

Setup: what `make run` does (the local stack on template.yaml, the emulator, the demo seed, a first collection of
every endpoint), then the ExportFunction invoked in its worker with a backfill from the day of the oldest tracked
Post to today (today is not closed yet: the daily schedule would export it tomorrow; here it shows what one
collection stored). The continuation queue's poller runs, so a job handed on is finished the way Lambda would.

Prints the invocation's summary, then per endpoint: day partitions, files and rows read back from the stack's bucket
with pyarrow; and checks them against the API: every Post's points of the exported days (GET /tweets/{id}/metrics,
paged), counted as rows (one per point and metric), must equal the files' rows.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import header

TITLE = "analytics export: files and rows for make run's demo data (local stack, Parquet read back)"
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "template.yaml"
ENDPOINTS = ("totals", "28hr", "historical")


def main() -> dict[str, Any]:
    from local.emulator import EmulatorServer
    from local.run import SEED_FUNCTION, app_secret_value, collect_once, demo_seed_plan
    from local.stack.schedules import iso_utc
    from local.stack.seed import seed_stack
    from local.stack.stack import LocalStack, StackSettings
    from xengage.api_client.catalog import HISTORICAL_LOOKBACK
    from xengage.timeutil import snowflake_created_at

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as logs, EmulatorServer(port=0) as emulator:
        settings = StackSettings(
            template_path=TEMPLATE_PATH,
            moto_port=0,
            api_port=0,
            environment_overrides={"ENGAGEMENT_API_URL": emulator.url, "X_API_URL": emulator.url},
            app_secret_value=app_secret_value({}, emulator.world.app),
            log_dir=Path(logs),
        )
        with LocalStack(settings) as stack:
            now = iso_utc(datetime.now(UTC).replace(second=0))
            plan = demo_seed_plan(emulator.world, now)
            counts = seed_stack(stack.specs[SEED_FUNCTION], plan)
            print(f"seeded {counts['accounts']} account(s), {counts['posts']} tracked Posts (make run's demo)")
            with open(Path(logs) / "collect.log", "w") as out:
                summary = collect_once(stack, out, timeout=300)
            print(f"first collection: landed={summary.landed}, items by endpoint {summary.metrics_by_endpoint}")
            tweet_ids = [tweet_id for ids in plan.posts_by_account.values() for tweet_id in ids]
            today = datetime.now(UTC).date()
            # Nothing older than /historical's look-back was collected (the demo's app Posts date from 2018)
            oldest = min(snowflake_created_at(tweet_id).date() for tweet_id in tweet_ids)
            first = max(oldest, today - HISTORICAL_LOOKBACK - timedelta(days=1))
            began = time.perf_counter()
            invocation = stack.invoke("ExportFunction", {"from": str(first), "to": str(today)})
            assert invocation.ok, invocation.payload
            result = invocation.payload
            stack.wait_until_drained(timeout=600)  # a continuation, if the job was handed on
            print(f"export {first}..{today}: {time.perf_counter() - began:.1f} s, invocation summary {result}")
            figures = read_back(stack)
            check_against_api(stack, tweet_ids, figures, first, today)
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    return figures


def read_back(stack: Any) -> dict[str, Any]:
    """Every object of the stack's bucket, read with pyarrow: partitions, files and rows per endpoint."""
    import pyarrow.parquet as pq

    s3 = stack.client("s3")
    bucket = stack.ids.ref("ExportBucket")
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])]  # fmt: skip
    files: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    days: dict[str, set[str]] = {endpoint: set() for endpoint in ENDPOINTS}
    by_post: Counter[tuple[str, str]] = Counter()
    size = 0
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        size += len(body)
        endpoint = key.split("endpoint=", 1)[1].split("/", 1)[0]
        days[endpoint].add(key.split("dt=", 1)[1][:10])
        table = pq.read_table(io.BytesIO(body))
        files[endpoint] += 1
        rows[endpoint] += table.num_rows
        by_post.update((endpoint, tweet_id) for tweet_id in table.column("tweet_id").to_pylist())
    header("exported (s3://<ExportBucket>/metrics/endpoint=<e>/dt=<day>/part-NNNNN.parquet)")
    print(f"{'endpoint':<12}{'days':>6}{'files':>7}{'rows':>10}")
    for endpoint in ENDPOINTS:
        print(f"{endpoint:<12}{len(days[endpoint]):>6}{files[endpoint]:>7}{rows[endpoint]:>10,}")
    print(f"{'all':<12}{len(set().union(*days.values())):>6}{sum(files.values()):>7}{sum(rows.values()):>10,}")
    print(f"{len(keys)} objects, {size / 1024:,.0f} KiB of Parquet (Snappy)")
    return {"files": dict(files), "rows": dict(rows), "days": {e: len(d) for e, d in days.items()}, "by_post": by_post}


def check_against_api(stack: Any, tweet_ids: list[str], figures: dict[str, Any], first: date, last: date) -> None:
    """Each Post's points of the exported days through the REST API, counted as rows, equal the files' rows."""
    url = stack.api.url
    mismatches = []
    for endpoint in ENDPOINTS:
        for tweet_id in tweet_ids:
            expected = api_rows(url, tweet_id, endpoint, first, last)
            if expected != figures["by_post"][(endpoint, tweet_id)]:
                mismatches.append((endpoint, tweet_id, expected, figures["by_post"][(endpoint, tweet_id)]))
    assert not mismatches, f"files and API disagree (endpoint, Post, API rows, file rows): {mismatches[:5]}"
    print(f"checked: every Post's rows per endpoint equal its points x metrics from GET /tweets/{{id}}/metrics "
          f"({len(tweet_ids)} Posts x {len(ENDPOINTS)} endpoints)")  # fmt: skip


def api_rows(url: str, tweet_id: str, endpoint: str, first: date, last: date) -> int:
    rows, cursor = 0, None
    while True:
        query = {"endpoint": endpoint, "from": f"{first}T00:00:00Z", "to": f"{last}T23:59:59Z", "limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        response = requests.get(f"{url}/tweets/{tweet_id}/metrics", params=query, timeout=30)
        if response.status_code == 404:  # a Post the API does not know (not tracked): nothing stored
            return rows
        response.raise_for_status()
        page = response.json()
        rows += sum(len(point["metrics"]) for point in page["points"])
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


if __name__ == "__main__":
    header(TITLE)
    main()
