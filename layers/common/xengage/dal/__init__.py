"""The only modules that touch boto3: RegistryTable (statuses on its due markers), MetricsTable, CollectQueue, Secrets.

A function's DAL objects are built from its settings by its `Deps` (xengage.deps), once per cold start.
"""

from __future__ import annotations

from xengage.dal.app_state import AppState, AppStateDal
from xengage.dal.metrics import MetricPoint, MetricsDal, WriteStats
from xengage.dal.paging import InvalidCursor, Page
from xengage.dal.queue import CollectQueue, SendFailed, SendStats
from xengage.dal.rate_budget import SharedRateBudget
from xengage.dal.registry import Account, DueMarker, NotFound, RegistryDal, TrackedPost
from xengage.dal.series_state import HourSums, SeriesState, TotalsSnapshot
from xengage.dal.status import PostStatus, StatusDal

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
]
