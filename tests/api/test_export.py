"""The analytics export (ExportFunction): stored metrics to S3 as Parquet, read back with pyarrow and compared
with what the API answers; idempotent re-exports, continuations, the Glue table's columns and the function's grants.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from local.stack.template import parse_template_text
from tests.api.conftest import ApiCaller
from tests.api.events import sqs_event
from tests.api.test_iam_grants import CallRecorder, recorder, required_grants, template_grants
from tests.aws_fixtures import AwsResources
from tests.conftest import FakeLambdaContext
from tests.stack_dal import metrics_dal
from tests.template.test_template import TEMPLATE
from xengage.api_client.catalog import Endpoint
from xengage.api_client.deadline import Deadline
from xengage.dal.export import ExportDal
from xengage.dal.metrics import MetricPoint
from xengage.pipeline.export import (
    EXPORT_COLUMNS,
    PARTITION_KEYS,
    ExportSummary,
    arrow_schema,
    glue_columns,
    run_export,
)
from xengage.pipeline.export_job import ExportJob, InvalidExportEvent, job_from_event
from xengage.timeutil import to_iso

__all__ = ["recorder"]  # the call-recording fixture, shared with the API's grants test

DAY = date(2026, 11, 20)
ACCOUNT = "800"
OWNED = ["1861234567890123456", "1861234567890123457"]
APP_ONLY = "1861234567890123458"
KEY = re.compile(r"^metrics/endpoint=(totals|28hr|historical)/dt=(\d{4}-\d\d-\d\d)/part-\d{5}\.parquet$")


def created_on(day: date) -> str:
    """A Post id whose snowflake time is noon of `day`."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return str((int(moment.timestamp() * 1000) - 1288834974657) << 22)


def hours(tweet_id: str, endpoint: Endpoint, start: datetime, count: int, values: Any) -> list[MetricPoint]:
    return [
        MetricPoint(tweet_id, endpoint, to_iso(start + timedelta(hours=h)), values(h), to_iso(start), ACCOUNT)
        for h in range(count)
    ]


@pytest.fixture
def seeded(api: ApiCaller) -> ApiCaller:
    """Account 800 owns two Posts: 48 /28hr hours from the day before DAY, /historical hours of DAY (one with a
    metric this release does not know), /totals snapshots around DAY; an app-only Post has /totals only."""
    api.put_account(ACCOUNT, "brand")
    assert api("POST", "/tweets", body={"tweet_ids": OWNED, "account_id": ACCOUNT}).status == 200
    assert api("POST", "/tweets", body={"tweet_ids": [APP_ONLY]}).status == 200
    before = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) - timedelta(days=1)
    points: list[MetricPoint] = []
    for n, tweet_id in enumerate(OWNED):
        points += hours(tweet_id, Endpoint.HOURLY_28HR, before, 48, lambda h, n=n: {"impressions": 10 * n + h})
        points += hours(
            tweet_id, Endpoint.HISTORICAL, before + timedelta(days=1), 24, lambda h: {"likes": h, "bookmarks": 1}
        )
    points.append(
        MetricPoint(OWNED[0], Endpoint.HISTORICAL, f"{DAY}T05:00:00Z", {"likes": 5, "superlikes": 2}, "x", ACCOUNT)
    )
    for tweet_id in (*OWNED, APP_ONLY):
        for stamp in (f"{DAY - timedelta(days=1)}T23:45:00Z", f"{DAY}T00:00:00Z", f"{DAY}T12:15:00Z"):
            points.append(MetricPoint(tweet_id, Endpoint.TOTALS, stamp, {"favorites": 3, "retweets": 1}, stamp))
    metrics_dal().put_points(points)
    return api


@pytest.fixture
def bucket(aws: AwsResources) -> Iterator[str]:
    yield aws.export_bucket
    s3 = boto3.client("s3")
    for entry in s3.list_objects_v2(Bucket=aws.export_bucket).get("Contents", []):
        s3.delete_object(Bucket=aws.export_bucket, Key=entry["Key"])


def exported(bucket: str) -> dict[str, Any]:
    """Every object of the bucket: key -> its pyarrow table."""
    s3 = boto3.client("s3")
    keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in keys}


def as_points(tables: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, dict[str, int]]]:
    """(endpoint, dt, tweet id) -> {at: {metric: value}}, from the files' rows and their keys' partitions."""
    found: dict[tuple[str, str, str], dict[str, dict[str, int]]] = {}
    for key, table in tables.items():
        match = KEY.match(key)
        assert match, key
        endpoint, dt = match.groups()
        for row in table.to_pylist():
            at = row["at"].strftime("%Y-%m-%dT%H:%M:%SZ")
            point = found.setdefault((endpoint, dt, row["tweet_id"]), {}).setdefault(at, {})
            assert row["metric"] not in point, f"row repeated: {row}"
            point[row["metric"]] = row["value"]
    return found


def export_event(api_day: date, **context: Any) -> dict[str, Any]:
    from functions.exporter.exporter import lambda_handler

    result: dict[str, Any] = lambda_handler({"from": str(api_day), "to": str(api_day)}, FakeLambdaContext(**context))
    return result


def api_points(api: ApiCaller, tweet_id: str, endpoint: str, day: date) -> dict[str, dict[str, int]]:
    page = api(
        "GET",
        f"/tweets/{tweet_id}/metrics",
        query={"endpoint": endpoint, "from": f"{day}T00:00:00Z", "to": f"{day}T23:59:59Z", "limit": "1000"},
    ).json()
    assert page["next_cursor"] is None
    return {point["at"]: point["metrics"] for point in page["points"]}


def test_a_day_exported_reads_back_as_the_api_answers_it(seeded: ApiCaller, bucket: str) -> None:
    # When DAY is exported (a backfill event through the handler)
    summary = export_event(DAY)

    # Then each endpoint's rows of DAY are in its partition, in Parquet with the Glue table's schema
    tables = exported(bucket)
    assert sorted(tables) == [
        f"metrics/endpoint={e}/dt={DAY}/part-00000.parquet" for e in ("28hr", "historical", "totals")
    ]
    assert all(table.schema.equals(arrow_schema()) for table in tables.values())
    assert summary == {"days": [str(DAY)], "files": 3, "rows": sum(t.num_rows for t in tables.values()),
                       "stale_deleted": 0, "continued": None}  # fmt: skip
    # And every Post's points of that day equal what GET /tweets/{id}/metrics answers for the day, per endpoint
    points = as_points(tables)
    for tweet_id, endpoint in [(t, e) for t in OWNED for e in ("totals", "28hr", "historical")] + [
        (APP_ONLY, "totals")
    ]:
        assert points[(endpoint, str(DAY), tweet_id)] == api_points(seeded, tweet_id, endpoint, DAY), (
            tweet_id,
            endpoint,
        )
    # And the app-only Post has no time series; a metric the catalog does not know is a row like the others
    assert not [key for key in points if key[2] == APP_ONLY and key[0] != "totals"]
    assert points[("historical", str(DAY), OWNED[0])][f"{DAY}T05:00:00Z"] == {"likes": 5, "superlikes": 2}
    # And the account of each row is the Post's (empty for the app's)
    totals = tables[f"metrics/endpoint=totals/dt={DAY}/part-00000.parquet"].to_pylist()
    assert {row["tweet_id"]: row["account_id"] for row in totals} == {
        OWNED[0]: ACCOUNT,
        OWNED[1]: ACCOUNT,
        APP_ONLY: "",
    }


def test_each_row_lies_in_the_partition_of_its_own_day(seeded: ApiCaller, bucket: str) -> None:
    # Given /28hr hours and /totals snapshots stored on the day before DAY and on DAY
    from functions.exporter.exporter import lambda_handler

    # When both days are exported in one backfill
    summary = lambda_handler({"from": str(DAY - timedelta(days=1)), "to": str(DAY)}, FakeLambdaContext())

    # Then each day has its own dt partition per endpoint, and every row's time falls on its partition's day
    tables = exported(bucket)
    assert summary["days"] == [str(DAY - timedelta(days=1)), str(DAY)]
    assert {(KEY.match(key) or _no_match(key)).groups() for key in tables} == {
        ("28hr", str(DAY - timedelta(days=1))),
        ("totals", str(DAY - timedelta(days=1))),
        ("28hr", str(DAY)),
        ("historical", str(DAY)),
        ("totals", str(DAY)),
    }
    for key, table in tables.items():
        dt = key.split("/dt=")[1][:10]
        assert {row["at"].date().isoformat() for row in table.to_pylist()} == {dt}, key
    # And the day before holds its 24 /28hr hours of each owned Post
    day_before = as_points(tables)
    assert [len(day_before[("28hr", str(DAY - timedelta(days=1)), tweet_id)]) for tweet_id in OWNED] == [24, 24]


def _no_match(key: str) -> re.Match[str]:
    raise AssertionError(f"not an export key: {key}")


def test_exporting_a_day_again_overwrites_the_same_keys_and_never_repeats_a_row(seeded: ApiCaller, bucket: str) -> None:
    # Given DAY exported once
    export_event(DAY)
    first = {key: table.to_pylist() for key, table in exported(bucket).items()}

    # When it is exported again (a redelivered tick, the next day's schedule, a backfill)
    export_event(DAY)
    second = {key: table.to_pylist() for key, table in exported(bucket).items()}

    # Then the same objects hold the same rows
    assert second == first
    assert sum(len(rows) for rows in second.values()) == sum(len(rows) for rows in first.values())


def test_parts_of_a_day_past_a_smaller_re_export_are_deleted(seeded: ApiCaller, aws: AwsResources, bucket: str) -> None:
    # Given DAY exported in parts of one Post: three /totals parts, two of each time series
    dal = ExportDal(aws.registry_table, aws.metrics_table, bucket)
    job = ExportJob(day=DAY, last_day=DAY)

    def export(posts_per_part: int) -> ExportSummary:
        return run_export(job, dal=dal, prefix="metrics", deadline=Deadline.after(60), send_on=_never,
                          posts_per_part=posts_per_part)  # fmt: skip

    export(1)
    assert len([key for key in exported(bucket) if "endpoint=totals" in key]) == 3
    rows_before = as_points(exported(bucket))

    # When the day is exported again in parts of three Posts
    summary = export(3)

    # Then only part 0 of each endpoint remains, holding every row once
    assert sorted(exported(bucket)) == [
        f"metrics/endpoint={e}/dt={DAY}/part-00000.parquet" for e in ("28hr", "historical", "totals")
    ]
    assert summary.stale_deleted == 2 + 1 + 1
    assert as_points(exported(bucket)) == rows_before


def test_a_day_that_does_not_fit_is_handed_on_and_its_continuation_finishes_it(
    seeded: ApiCaller, aws: AwsResources, bucket: str
) -> None:
    # Given a clock that moves 5 s each time it is read (twice a part, once a check) and 17 s left: the first
    # part fits, and then less is left than a part took
    now = [0.0]

    def clock() -> float:
        now[0] += 5.0
        return now[0]

    sent: list[ExportJob] = []
    dal = ExportDal(aws.registry_table, aws.metrics_table, bucket)
    job = ExportJob(day=DAY, last_day=DAY + timedelta(days=1))
    deadline = Deadline(at=17.0, clock=clock)

    # When the export of two days runs in parts of two Posts
    first = run_export(job, dal=dal, prefix="metrics", deadline=deadline, send_on=sent.append, posts_per_part=2)

    # Then it wrote one part and handed the rest on, resuming after the part's last Post with its part numbers
    # (the app's Post, then the account's first: a file of each endpoint)
    assert len(sent) == 1 and first.continued == sent[0]
    rest = sent[0]
    parts = {"totals": 1, "28hr": 1, "historical": 1}
    assert rest == ExportJob(day=DAY, last_day=DAY + timedelta(days=1), context=ACCOUNT, after=OWNED[0], parts=parts)
    # When the continuation arrives through the export queue (an SQS record) with time enough
    from functions.exporter.exporter import lambda_handler

    body = json.dumps(rest.model_dump(mode="json"))
    result = lambda_handler(sqs_event([body]), FakeLambdaContext())
    # Then both days are done, DAY's rows equal a one-shot export's, and the next day has no rows (none stored)
    assert result["days"] == [str(DAY), str(DAY + timedelta(days=1))] and result["continued"] is None
    chunked = as_points(exported(bucket))
    export_event(DAY)
    assert as_points(exported(bucket)) == chunked
    assert {key[1] for key in chunked} == {str(DAY)}


def test_posts_created_after_the_day_are_not_read(seeded: ApiCaller, aws: AwsResources, bucket: str) -> None:
    # Given a Post created two days after DAY, tracked
    later = created_on(DAY + timedelta(days=2))
    assert seeded("POST", "/tweets", body={"tweet_ids": [later]}).status == 200
    dal = ExportDal(aws.registry_table, aws.metrics_table, bucket)
    asked: list[str] = []
    original = dal.totals_of_day
    dal.totals_of_day = lambda tweet_id, day: asked.append(tweet_id) or original(tweet_id, day)  # type: ignore[method-assign]
    # When DAY is exported
    run_export(ExportJob(day=DAY, last_day=DAY), dal=dal, prefix="metrics", deadline=Deadline.after(60), send_on=_never)
    # Then no Query was made for it
    assert later not in asked and set(asked) == {*OWNED, APP_ONLY}


def _never(job: ExportJob) -> None:
    raise AssertionError(f"nothing should be handed on: {job}")


# --- the event ----------------------------------------------------------------------------------------------------


def test_the_schedule_exports_the_days_before_its_tick_and_a_backfill_its_range() -> None:
    # Given the daily schedule's input at 01:30 UTC on Nov 22, and a backfill's
    scheduled = job_from_event({"scheduled_time": "2026-11-22T01:30:00Z", "days": 2})
    backfill = job_from_event({"from": "2026-01-01", "to": "2026-01-31"})
    # Then the schedule exports Nov 20 and 21 (closed days), the backfill its inclusive range
    assert (scheduled.day, scheduled.last_day) == (date(2026, 11, 20), date(2026, 11, 21))
    assert (backfill.day, backfill.last_day, backfill.context, backfill.parts) == (
        date(2026, 1, 1),
        date(2026, 1, 31),
        "APP",
        {},
    )


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"from": "2026-02-01", "to": "2026-01-01"}, "is after last_day"),
        ({"from": "2026-13-01", "to": "2026-01-01"}, "month must be in 1..12"),
        ({"days": 0}, "days must be an integer from 1 to 31"),
        ({"day": "2026-01-01", "last_day": "2026-01-02", "context": "APP#1"}, "context"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_problem(event: dict[str, Any], says: str) -> None:
    # When an event that is neither the schedule's, a backfill nor a continuation is read, Then it is refused
    with pytest.raises(InvalidExportEvent, match=re.escape(says)):
        job_from_event(event)


# --- the template -------------------------------------------------------------------------------------------------


def test_the_glue_table_columns_equal_the_files_schema_and_its_location_the_function_prefix() -> None:
    # Given the template's Glue table, the export function and the schema files are written with
    resources = parse_template_text(TEMPLATE.read_text())["Resources"]
    table = resources["MetricsExportTable"]["Properties"]["TableInput"]
    env = resources["ExportFunction"]["Properties"]["Environment"]["Variables"]
    # Then the table's columns are the files' (names, order, Hive types of the Arrow types) and its partitions the
    # keys' (endpoint, dt), projected over every endpoint the files are written for
    assert table["StorageDescriptor"]["Columns"] == glue_columns()
    hive = {"string": "string", "int64": "bigint", "timestamp[ms, tz=UTC]": "timestamp"}
    assert [(field.name, hive[str(field.type)]) for field in arrow_schema()] == list(EXPORT_COLUMNS)
    assert table["PartitionKeys"] == glue_columns(PARTITION_KEYS)
    assert table["Parameters"]["projection.endpoint.values"].split(",") == [e.value for e in Endpoint]
    # And the table reads where the function writes
    location = table["Parameters"]["storage.location.template"]["Fn::Sub"]
    assert location == f"s3://${{ExportBucket}}/{env['EXPORT_PREFIX']}/endpoint=${{!endpoint}}/dt=${{!dt}}/"
    assert table["StorageDescriptor"]["Location"] == {"Fn::Sub": f"s3://${{ExportBucket}}/{env['EXPORT_PREFIX']}/"}


def test_the_export_function_is_granted_exactly_the_calls_it_makes(
    seeded: ApiCaller, aws: AwsResources, bucket: str, recorder: CallRecorder
) -> None:
    # Given a stale part left by an earlier export (the cleanup's DeleteObjects)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"metrics/endpoint=totals/dt={DAY}/part-00007.parquet", Body=b"")
    # When the export runs a day, and a day it hands on (too little time left: the continuation's SendMessage)
    with recorder.running("ExportFunction"):
        done = export_event(DAY)
        handed_on = export_event(DAY, remaining_millis=10_000)
    # Then what it called is exactly what the template grants it
    assert done["stale_deleted"] == 1 and handed_on["continued"] is not None
    needed = required_grants(recorder.calls["ExportFunction"], aws)
    granted = template_grants("ExportFunction")
    assert needed - granted == set(), "calls it is not granted (AccessDenied in AWS)"
    assert granted - needed == set(), "granted what it never calls"
