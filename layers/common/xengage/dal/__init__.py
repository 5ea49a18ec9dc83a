"""The only modules that touch boto3: RegistryTable (statuses on its due markers), MetricsTable, CollectQueue, Secrets.

`registry_dal()`, `metrics_dal()`, `status_dal()`, `usage_dal()`, `health_dal()`, `rate_budget()` and
`collect_queue()` build DAL objects from the parsed environment, once per cold start.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from xengage.dal.app_state import AppState, AppStateDal
from xengage.dal.metrics import MetricPoint, MetricsDal, WriteStats
from xengage.dal.paging import InvalidCursor, Page
from xengage.dal.queue import CollectQueue, SendFailed, SendStats
from xengage.dal.rate_budget import SharedRateBudget
from xengage.dal.registry import Account, DueMarker, NotFound, RegistryDal, TrackedPost
from xengage.dal.series_state import HourSums, SeriesState, TotalsSnapshot
from xengage.dal.status import PostStatus, StatusDal
from xengage.settings import queue_settings, shared_settings

if TYPE_CHECKING:  # imported by their factories: only the routes and code that use them pay for them
    from xengage.dal.health import HealthDal
    from xengage.dal.jobs import JobsDal
    from xengage.dal.usage import UsageDal


@functools.cache
def registry_dal() -> RegistryDal:
    return RegistryDal(shared_settings().registry_table)


@functools.cache
def app_state_dal() -> AppStateDal:
    return AppStateDal(shared_settings().registry_table)


@functools.cache
def metrics_dal() -> MetricsDal:
    settings = shared_settings()
    return MetricsDal(settings.metrics_table, settings.rollups_table)


@functools.cache
def status_dal() -> StatusDal:
    return StatusDal(shared_settings().registry_table)


@functools.cache
def usage_dal() -> UsageDal:
    from xengage.dal.usage import UsageDal

    return UsageDal(shared_settings().registry_table)


@functools.cache
def health_dal() -> HealthDal:
    from xengage.dal.health import HealthDal

    return HealthDal(shared_settings().registry_table)


@functools.cache
def jobs_dal() -> JobsDal:
    """Live-query jobs (JobsTable); only functions given JOBS_TABLE have it."""
    from xengage.dal.jobs import JobsDal
    from xengage.settings import jobs_settings

    table = jobs_settings().jobs_table
    if not table:
        raise RuntimeError("JOBS_TABLE is not set: this function has no jobs table")
    return JobsDal(table)


@functools.cache
def rate_budget(window_seconds: float) -> SharedRateBudget:
    """The deployment's shared rate budget, one per process so the limits it learned outlive a request."""
    return SharedRateBudget(shared_settings().registry_table, window_seconds=window_seconds)


@functools.cache
def collect_queue() -> CollectQueue:
    """The planner's queue, which the collector also sends its continuations to."""
    return CollectQueue(queue_settings().collect_queue_url)


def clear_dal_cache() -> None:
    from xengage.dal.aws import clear_clients

    for factory in (
        registry_dal,
        app_state_dal,
        metrics_dal,
        status_dal,
        usage_dal,
        health_dal,
        jobs_dal,
        rate_budget,
        collect_queue,
    ):
        factory.cache_clear()
    clear_clients()


__all__ = [
    "Account",
    "AppState",
    "AppStateDal",
    "CollectQueue",
    "DueMarker",
    "HourSums",
    "InvalidCursor",
    "MetricPoint",
    "MetricsDal",
    "NotFound",
    "Page",
    "PostStatus",
    "RegistryDal",
    "SendFailed",
    "SendStats",
    "SeriesState",
    "SharedRateBudget",
    "StatusDal",
    "TotalsSnapshot",
    "TrackedPost",
    "WriteStats",
    "app_state_dal",
    "clear_dal_cache",
    "collect_queue",
    "health_dal",
    "metrics_dal",
    "rate_budget",
    "registry_dal",
    "status_dal",
    "usage_dal",
]
