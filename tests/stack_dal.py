"""Dependencies built from the environment the `aws` fixtures set: what tests seed the stack with, or read it with.

Each call builds new ones (a new `Deps`: nothing cached between tests); the boto3 clients beneath are shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xengage.deps import Deps
from xengage.settings import CollectorSettings, PlannerSettings, SharedSettings, from_env

if TYPE_CHECKING:
    from xengage.dal import AppStateDal, MetricsDal, RegistryDal, StatusDal
    from xengage.dal.usage import UsageDal


def shared_deps() -> Deps[SharedSettings]:
    return Deps(from_env(SharedSettings))


def planner_deps() -> Deps[PlannerSettings]:
    return Deps(from_env(PlannerSettings))


def collector_deps() -> Deps[CollectorSettings]:
    return Deps(from_env(CollectorSettings))


def registry_dal() -> RegistryDal:
    return shared_deps().registry


def metrics_dal() -> MetricsDal:
    return shared_deps().metrics


def status_dal() -> StatusDal:
    return shared_deps().statuses


def app_state_dal() -> AppStateDal:
    return shared_deps().app_state


def usage_dal() -> UsageDal:
    return shared_deps().usage_store
