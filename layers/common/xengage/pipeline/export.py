"""The analytics export: each UTC day of stored metrics as Parquet in S3, for Athena (docs/DESIGN.md).

    s3://{bucket}/{prefix}/endpoint={totals|28hr|historical}/dt=YYYY-MM-DD/part-NNNNN.parquet

One row per Post, point and metric (long format): `tweet_id, account_id, at, metric, value, collected_at`. A metric
X adds later, or one stored under a name this release does not know, is one more `metric` value, never a schema
change: the Glue table (template.yaml `MetricsExportTable`, columns = `EXPORT_COLUMNS`) reads every file ever
written, and queries pivot the names they want.

A day is exported in parts of `posts_per_part` tracked Posts in the registry's listing order, each endpoint's
rows of a part in one file numbered in order, so the same registry and data give the same keys: re-exporting a day
overwrites its files, and the files numbered past the new count (the day had more parts before) are deleted once
the day is done, so a day never holds a row twice. A part starts only while the deadline leaves time for it; the
rest of the job is handed on (`send_on`: the export queue's continuation message).
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from xengage.api_client.catalog import Endpoint
from xengage.api_client.deadline import Deadline
from xengage.dal.export import ExportDal, ListedPost, ListPosition
from xengage.dal.metrics import MetricPoint
from xengage.pipeline.export_job import ExportJob
from xengage.timeutil import snowflake_created_at

if TYPE_CHECKING:
    import pyarrow

# The Parquet columns and their Glue (Hive) types; the partition keys are in the object keys, not in the files.
EXPORT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("tweet_id", "string"),
    ("account_id", "string"),
    ("at", "timestamp"),  # /totals: the snapshot's scheduled time; /28hr, /historical: the hour's start (UTC)
    ("metric", "string"),
    ("value", "bigint"),
    ("collected_at", "timestamp"),  # when the collector stored it
)
PARTITION_KEYS: Final[tuple[tuple[str, str], ...]] = (("endpoint", "string"), ("dt", "string"))
POSTS_PER_PART: Final = 250  # a /totals part: 250 Posts x 96 snapshots x ~10 metrics = ~240,000 rows
# A part is not started with less time left than the slowest part so far took, nor than this.
MIN_PART_SECONDS: Final = 5.0
PART_NAME: Final = re.compile(r"part-(\d{5})\.parquet$")
# What the collector writes as `collected_at`; anything else (an item written by hand) is exported as null.
ISO_SECONDS: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


@dataclass(frozen=True, slots=True)
class ExportedFile:
    key: str
    rows: int


@dataclass(slots=True)
class ExportSummary:
    files: list[ExportedFile] = field(default_factory=list)
    days: list[str] = field(default_factory=list)  # days finished in this invocation
    stale_deleted: int = 0
    continued: ExportJob | None = None

    @property
    def rows(self) -> int:
        return sum(exported.rows for exported in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "files": len(self.files),
            "rows": self.rows,
            "stale_deleted": self.stale_deleted,
            "continued": self.continued.model_dump(mode="json") if self.continued else None,
        }


@dataclass(slots=True)
class _Columns:
    """One endpoint's rows of a part, column by column (what pyarrow takes without a per-row object)."""

    tweet_id: list[str] = field(default_factory=list)
    account_id: list[str] = field(default_factory=list)
    at: list[str] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    value: list[int] = field(default_factory=list)
    collected_at: list[str | None] = field(default_factory=list)

    def add(self, point: MetricPoint, account_id: str) -> None:
        for name in sorted(point.metrics):
            self.tweet_id.append(point.tweet_id)
            self.account_id.append(point.account_id or account_id)
            self.at.append(point.at)
            self.metric.append(name)
            self.value.append(int(point.metrics[name]))
            self.collected_at.append(point.collected_at if ISO_SECONDS.fullmatch(point.collected_at) else None)

    def __len__(self) -> int:
        return len(self.value)


def part_key(prefix: str, endpoint: Endpoint, day: date, part: int) -> str:
    return f"{day_prefix(prefix, endpoint, day)}part-{part:05d}.parquet"


def day_prefix(prefix: str, endpoint: Endpoint, day: date) -> str:
    return f"{prefix.strip('/')}/endpoint={endpoint.value}/dt={day.isoformat()}/"


def arrow_schema() -> pyarrow.Schema:
    import pyarrow as pa

    types = {"string": pa.string(), "bigint": pa.int64(), "timestamp": pa.timestamp("ms", tz="UTC")}
    return pa.schema([pa.field(name, types[kind], nullable=name == "collected_at") for name, kind in EXPORT_COLUMNS])


def parquet_bytes(columns: _Columns) -> bytes:
    """The rows as one Parquet file (Snappy, one row group): pyarrow is imported here, by the export only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    # ISO-8601 with Z casts straight to a UTC timestamp (Arrow's own parser, no datetime object per row)
    timestamp = schema.field("at").type
    arrays = [
        pa.array(columns.tweet_id, pa.string()),
        pa.array(columns.account_id, pa.string()),
        pa.array(columns.at, pa.string()).cast(timestamp),
        pa.array(columns.metric, pa.string()),
        pa.array(columns.value, pa.int64()),
        pa.array(columns.collected_at, pa.string()).cast(timestamp),
    ]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="snappy")
    return sink.getvalue()


def read_part(dal: ExportDal, posts: Sequence[ListedPost], day: date) -> dict[Endpoint, _Columns]:
    """The rows of `day` of these Posts, by endpoint: Posts created after the day have none and are not read."""
    text = day.isoformat()
    existing = [post for post in posts if snowflake_created_at(post.tweet_id).date() <= day]
    columns = {endpoint: _Columns() for endpoint in Endpoint}
    for post in existing:
        for point in dal.totals_of_day(post.tweet_id, text):
            columns[Endpoint.TOTALS].add(point, post.account_id)
    owned = [post for post in existing if post.account_id]  # the time series need the owner's tokens
    accounts = {post.tweet_id: post.account_id for post in owned}
    for endpoint, points in dal.hours_of_day([post.tweet_id for post in owned], text).items():
        for point in sorted(points, key=lambda p: (p.tweet_id, p.at)):
            columns[endpoint].add(point, accounts[point.tweet_id])
    return columns


def run_export(
    job: ExportJob,
    *,
    dal: ExportDal,
    prefix: str,
    deadline: Deadline,
    send_on: Callable[[ExportJob], object],
    posts_per_part: int = POSTS_PER_PART,
) -> ExportSummary:
    """Export the job's days part by part until done, or hand the rest on when the next part may not fit."""
    summary = ExportSummary()
    current: ExportJob | None = job
    slowest = MIN_PART_SECONDS
    while current is not None:
        if not deadline.allows(slowest):
            send_on(current)
            summary.continued = current
            break
        started = deadline.clock()
        current = _export_part(current, dal=dal, prefix=prefix, summary=summary, posts_per_part=posts_per_part)
        slowest = max(slowest, deadline.clock() - started)
    return summary


def _export_part(
    job: ExportJob, *, dal: ExportDal, prefix: str, summary: ExportSummary, posts_per_part: int
) -> ExportJob | None:
    """One part of the job's day; returns what is left: the day's next part, the next day, or None."""
    posts = list(itertools.islice(dal.iter_posts(ListPosition(job.context, job.after)), posts_per_part))
    parts = dict(job.parts)
    for endpoint, columns in read_part(dal, posts, job.day).items():
        if not columns:
            continue
        number = parts.get(endpoint.value, 0)
        key = part_key(prefix, endpoint, job.day, number)
        dal.put_object(key, parquet_bytes(columns))
        summary.files.append(ExportedFile(key, len(columns)))
        parts[endpoint.value] = number + 1
    if len(posts) == posts_per_part:
        last = posts[-1]
        return job.model_copy(update={"context": last.context, "after": last.tweet_id, "parts": parts})
    summary.stale_deleted += remove_stale_parts(dal, prefix, job.day, parts)
    summary.days.append(job.day.isoformat())
    return job.next_day()


def remove_stale_parts(dal: ExportDal, prefix: str, day: date, parts: dict[str, int]) -> int:
    """Delete the day's objects this export did not write: parts numbered past its count (an earlier export of
    the day had more), and anything else under the day's prefixes, which Athena would read as rows."""
    stale: list[str] = []
    for endpoint in Endpoint:
        written = parts.get(endpoint.value, 0)
        stale += [key for key in dal.list_keys(day_prefix(prefix, endpoint, day)) if not _written(key, written)]
    return dal.delete_keys(stale) if stale else 0


def _written(key: str, count: int) -> bool:
    match = PART_NAME.search(key)
    return match is not None and int(match.group(1)) < count


def glue_columns(columns: Iterable[tuple[str, str]] = EXPORT_COLUMNS) -> list[dict[str, str]]:
    """The Glue table's `Columns` the files' schema implies (template.yaml holds the same list; a test compares)."""
    return [{"Name": name, "Type": kind} for name, kind in columns]
