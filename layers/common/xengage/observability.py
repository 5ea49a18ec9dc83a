"""The only Powertools Logger, Tracer and Metrics instances; every module imports these.

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE and
POWERTOOLS_LOG_LEVEL (set in template.yaml Globals), so nothing is hard-coded here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _Unrecorded(BaseSegment):
    """A segment nobody records (tracing off)."""

    def close(self, end_time: int | None = None) -> None: ...

    def add_subsegment(self, subsegment: Any) -> None: ...

    def remove_subsegment(self, subsegment: Any) -> None: ...

    def put_annotation(self, key: str, value: Any) -> None: ...

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class TracingOff(BaseProvider):
    """The Tracer's provider when tracing is off: Powertools' own Tracer, even disabled, imports and configures the
    X-Ray SDK (about as long as `import boto3` on a cold start); this provider lets the SDK never load."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Unrecorded()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Unrecorded()

    def put_annotation(self, key: str, value: Any) -> None: ...

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...

    def patch(self, modules: Sequence[str]) -> None: ...

    def patch_all(self) -> None: ...


def tracing_on() -> bool:
    """POWERTOOLS_TRACE_DISABLED unset or false (read as Powertools reads it): the `Tracing` parameter is Active."""
    return not resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false"))


logger: Logger = Logger()
# The Engagement API client's lines (xengage.api_client, and the rate budget that paces it): a child of `logger` in
# std logging's hierarchy, named as Powertools' own `Logger(child=True)` in xengage.api_client would be. Its records go
# through `logger`'s handler and formatter, so they carry the same keys (service, cold_start, function_name,
# correlation_id, ...); it has no level of its own (POWERTOOLS_LOG_LEVEL, and `logger.setLevel`, apply), yet a caller
# can quiet the client's per-call lines alone (the benchmarks do).
client_logger: logging.Logger = logging.getLogger(f"{logger.service}.xengage.api_client")
# Subsegments: the handlers', and `@tracer.capture_method(capture_response=False)` on the Engagement API call (and the
# fetch around it) and the DynamoDB/SQS writes (answers stay out of X-Ray). Off, they cost a few microseconds a call.
tracer: Tracer = Tracer() if tracing_on() else Tracer(provider=TracingOff(), disabled=True, auto_patch=False)
metrics: Metrics = Metrics()


def count(name: str, value: int = 1) -> None:
    """Add a Count metric; zero values are skipped so dashboards only show what happened."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def gauge(name: str, value: int) -> None:
    """A level rather than an occurrence (e.g. the month's unique @handles): emitted as it is, zero included."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def gauges(values: Mapping[str, tuple[float, MetricUnit]], **dimensions: str) -> None:
    """Publish `values` now, as one EMF record with the function's `service` dimension plus `dimensions`.

    Its own record, not the handler's metric set: the extra dimensions (the planner's `endpoint`) would otherwise
    apply to every metric of the invocation. Unlike `count`, zeros are published: a gauge of 0 is news.
    """
    record = AmazonCloudWatchEMFProvider(namespace=metrics.namespace, service=metrics.service)
    for name, (value, unit) in values.items():
        record.add_metric(name=name, unit=unit, value=value)
    for dimension, label in dimensions.items():
        record.add_dimension(name=dimension, value=label)
    record.flush_metrics()


# Every metric the functions emit (namespace POWERTOOLS_METRICS_NAMESPACE), by the `service` dimension it carries
# (POWERTOOLS_SERVICE_NAME of the function that emits it). template.yaml's alarms and dashboard name only these, and
# every `count`/`gauges` name in the code is listed here (both: tests/template/test_operations.py; a local run's EMF:
# tests/integration/test_local_run.py). `Posts_<status>`: one per non-ok status (api_client.catalog.Reason).
POSTS_BY_STATUS_PREFIX: Final = "Posts_"
# Published per endpoint too (the planner's `gauges(..., endpoint=...)`): one series per endpoint.
PER_ENDPOINT_METRICS: Final = frozenset({"OldestOverdueSeconds", "OldestOverdueSchedulePeriods"})
EMITTED_METRICS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "collector": frozenset(
            {
                "EngagementCalls",
                "Retries",
                "Throttled",
                "PostsCollected",
                "MetricItemsWritten",
                "Continuations",
                "MetricsRefused",
                "AccountsNeedingReauth",
                "AppCredentialsRefused",
                "MessagesSentOnUnstarted",
                # The @handle billing guard (issue 10, item 4): Posts deferred at the cap; the month's unique
                # @handles, published by whichever function counts a new one (collector or live query).
                "UsageCapDeferredPosts",
                "UniqueHandlesThisMonth",
                "UsageCallsNotCounted",
                # Data checks (issue 10, item 5): a /totals snapshot lower than the one before; /totals drifting
                # from the sum of the /historical hours.
                "TotalsDecreased",
                "TotalsDrift",
            }
        ),
        "planner": frozenset(
            {
                "PlannedPosts",
                "PlannedMessages",
                "DeferredPosts",
                "PostsOfAccountsNeedingReauth",
                "PlanningPaused",
                "OldestOverdueSeconds",
                "OldestOverdueSchedulePeriods",
            }
        ),
        "api": frozenset(
            {
                "EngagementCalls",
                "Throttled",
                "AccountsNeedingReauth",
                "AppCredentialsRefused",
                "LiveQueriesHandedToJobs",
                "JobsStarted",
                "ApiUnexpectedErrors",
                # The @handle billing guard: see the collector's.
                "UniqueHandlesThisMonth",
                "LiveQueriesUsageCapped",
                # Bulk tracking (issue 11, item 4): a POST /tweets the deadline cut (503 track_incomplete).
                "TrackIncomplete",
            }
        ),
        # The analytics export (issue 11, item 6): Parquet files and rows written, jobs handed on to the export queue.
        "exporter": frozenset({"ExportedFiles", "ExportedRows", "ExportContinuations"}),
    }
)
