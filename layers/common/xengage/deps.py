"""One way to wire: a function's dependencies, built from its settings model, handed explicitly to its logic.

Each handler asks `function_deps(ItsSettings)` at every invocation: the environment is parsed (cheap) and the `Deps`
built for that settings value the first time is returned, so a cold start builds one and warm starts reuse it (its
DAL objects, the secrets cache, the shared rate budget's learned limits, the engagement client). Parts are built at
first use, so a function builds (and imports) only what it uses. Tests override parts through the constructor
(`Deps(settings, registry=fake, now=lambda: t)`) or `deps.replace(now=...)`; a test that changes the environment
gets a new `Deps` by itself, and one that wants fresh in-process state replaces `BUILT` (tests/conftest.py does).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, overload

from xengage.dal.app_state import AppStateDal
from xengage.dal.aws import Where, where
from xengage.dal.metrics import MetricsDal
from xengage.dal.queue import CollectQueue
from xengage.dal.rate_budget import SharedRateBudget
from xengage.dal.registry import RegistryDal
from xengage.dal.status import StatusDal
from xengage.settings import SharedSettings, from_env
from xengage.timeutil import utc_now

if TYPE_CHECKING:  # imported where built: only the functions (and routes) that use them pay for them
    from xengage.api_client.catalog import Endpoint
    from xengage.api_client.credentials import AppCredentials, UserTokens
    from xengage.api_client.deadline import Deadline
    from xengage.api_client.models import EngagementResult
    from xengage.dal.health import HealthDal
    from xengage.dal.jobs import JobsDal
    from xengage.dal.secrets import SecretStore
    from xengage.dal.usage import UsageDal
    from xengage.pipeline.usage import UsageGuard

S = TypeVar("S", bound=SharedSettings)
T = TypeVar("T")

# A 429 is waited out inside the function only when the minute renews this soon; otherwise the collector hands the
# Posts on to a message delayed until it does (an idle function costs money and holds a concurrency slot).
MAX_INLINE_THROTTLE_WAIT: Final = 20.0


class Fetcher(Protocol):
    """What the collector and live queries need of `EngagementClient`."""

    def fetch(
        self,
        endpoint: Endpoint | str,
        tweet_ids: Sequence[str | int],
        *,
        engagement_types: Sequence[str] | None = None,
        user: UserTokens | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult: ...


class part(Generic[T]):  # lowercase: a decorator, like functools.cached_property
    """A part of a Deps: built by the decorated method at first use and kept; in a copy made by `replace`, taken
    from the original (built there if need be), so the two share it."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__

    @overload
    def __get__(self, deps: None, owner: type[Any]) -> part[T]: ...

    @overload
    def __get__(self, deps: Deps[Any], owner: type[Any]) -> T: ...

    def __get__(self, deps: Deps[Any] | None, owner: type[Any]) -> part[T] | T:
        if deps is None:
            return self
        value: T = getattr(deps._base, self.name) if deps._base is not None else self.build(deps)
        deps.__dict__[self.name] = value  # an instance attribute: later reads no longer reach this descriptor
        return value


class Deps(Generic[S]):
    """A function's dependencies: `settings`, and parts built from them at first use (or given, in tests)."""

    def __init__(self, settings: S, _base: Deps[S] | None = None, **parts: Any) -> None:
        self.settings = settings
        self._base = _base
        unknown = set(parts) - PARTS
        if unknown:
            raise TypeError(f"Deps has no part {', '.join(sorted(unknown))}")
        self.__dict__.update(parts)  # a given part takes the place of the one that would be built

    def replace(self, **parts: Any) -> Deps[S]:
        """A copy with these parts; it shares every other part with this one (as `dataclasses.replace` would)."""
        return Deps(self.settings, self, **parts)

    def _setting(self, name: str) -> Any:
        value = getattr(self.settings, name, None)
        if value is None:
            raise RuntimeError(f"{type(self.settings).__name__} has no {name}: this function cannot use it")
        return value

    # --- DynamoDB -------------------------------------------------------------------------------------------------

    @part
    def registry(self) -> RegistryDal:
        return RegistryDal(self.settings.registry_table)

    @part
    def app_state(self) -> AppStateDal:
        return AppStateDal(self.settings.registry_table)

    @part
    def metrics(self) -> MetricsDal:
        return MetricsDal(self.settings.metrics_table, self.settings.rollups_table)

    @part
    def statuses(self) -> StatusDal:
        return StatusDal(self.settings.registry_table)

    @part
    def usage_store(self) -> UsageDal:
        from xengage.dal.usage import UsageDal

        return UsageDal(self.settings.registry_table)

    @part
    def health(self) -> HealthDal:
        from xengage.dal.health import HealthDal

        return HealthDal(self.settings.registry_table)

    @part
    def jobs(self) -> JobsDal | None:
        """Live-query jobs (JobsTable); None in functions not given JOBS_TABLE."""
        from xengage.dal.jobs import JobsDal

        table = getattr(self.settings, "jobs_table", None)
        return JobsDal(table) if table else None

    @part
    def rate_budget(self) -> SharedRateBudget:
        """The deployment's shared rate budget; kept with the Deps so the limits it learned outlive a request."""
        return SharedRateBudget(self.settings.registry_table, window_seconds=self._setting("rate_window_seconds"))

    @part
    def usage(self) -> UsageGuard | None:
        """The @handle billing guard (None: calls are neither counted nor capped)."""
        from xengage.pipeline.usage import UsageGuard

        return UsageGuard(self.usage_store, getattr(self.settings, "handle_cap", None))

    # --- SQS ------------------------------------------------------------------------------------------------------

    @part
    def queue(self) -> CollectQueue | None:
        """The collect queue (the planner's, where the collector hands on continuations); None without its URL."""
        url = getattr(self.settings, "collect_queue_url", None)
        return CollectQueue(url) if url else None

    # --- Secrets Manager: one store, one cache, per Deps ----------------------------------------------------------

    @part
    def secrets(self) -> SecretStore:
        from xengage.dal.secrets import SecretStore

        return SecretStore(self.settings.secret_prefix, getattr(self.settings, "app_secret_arn", None))

    @part
    def load_app(self) -> Callable[..., AppCredentials]:
        """`load_app(fresh=True)` skips the cache."""
        return self.secrets.load_app

    @part
    def load_tokens(self) -> Callable[[str], UserTokens]:
        return self.secrets.load_tokens

    @part
    def secret_version(self) -> Callable[[], str | None]:
        return self.secrets.app_version

    # --- the Engagement API ---------------------------------------------------------------------------------------

    @part
    def client_factory(self) -> Callable[[AppCredentials], Fetcher]:
        """The engagement client for the app's credentials, one per credentials so warm starts reuse its session."""
        return functools.cache(self._engagement_client)

    def _engagement_client(self, app: AppCredentials) -> Fetcher:
        # Imported here so the planner never pays for requests/oauthlib.
        from xengage.api_client.catalog import DEFAULT_BASE_URL
        from xengage.api_client.client import EngagementClient
        from xengage.api_client.retry import RetryPolicy

        return EngagementClient(
            app,
            base_url=self._setting_or("engagement_api_url", DEFAULT_BASE_URL),
            oauth_base_url=getattr(self.settings, "x_api_url", None),
            rate_window_seconds=self._setting("rate_window_seconds"),
            retry=RetryPolicy(max_throttle_wait=MAX_INLINE_THROTTLE_WAIT),
            rate_gate=self.rate_budget,  # every collector and live query of the deployment spends one allowance
        )

    def _setting_or(self, name: str, default: Any) -> Any:
        return getattr(self.settings, name, None) or default

    # --- time and chance ------------------------------------------------------------------------------------------

    @part
    def now(self) -> Callable[[], datetime]:
        return utc_now

    @part
    def rng(self) -> random.Random:
        return random.Random()


PARTS: Final = frozenset(name for name, value in vars(Deps).items() if isinstance(value, part))

# The Deps built per settings value and AWS endpoints (one per cold start in Lambda). Tests replace the dict to start
# cold (tests/conftest.py `cold_starts`).
BUILT: dict[tuple[SharedSettings, Where], Deps[Any]] = {}


def function_deps(model: type[S]) -> Deps[S]:
    """The calling function's Deps: parsed from the environment, built the first time this environment is seen."""
    key = (from_env(model), where())
    deps = BUILT.get(key)
    if deps is None:
        deps = BUILT[key] = Deps(key[0])
    return deps
