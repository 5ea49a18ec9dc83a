"""The environment of each function, modelled once (pydantic): one model per function, parsed by `from_env`.

Logic never reads `os.environ`: each handler's `Deps` (xengage.deps) holds its function's settings
(`deps.settings`). Names are the ones template.yaml sets (docs/DESIGN.md, "Template logical ids and environment").
"""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

import functools
import os
import re
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from xengage.api_client.catalog import METRIC_NAME_PATTERN, Endpoint


class SharedSettings(BaseModel):
    """What every function needs: the two tables and where secrets live."""

    # defer_build: each function builds the validators of the settings it reads (2 or 3 of these 5), at first use
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    registry_table: str = Field(alias="REGISTRY_TABLE", min_length=1)
    metrics_table: str = Field(alias="METRICS_TABLE", min_length=1)
    rollups_table: str = Field(alias="ROLLUPS_TABLE", min_length=1)
    secret_prefix: str = Field(alias="SECRET_PREFIX", min_length=1)
    service_name: str = Field(default="xengage", alias="POWERTOOLS_SERVICE_NAME")


class QueueSettings(SharedSettings):
    """The planner and the collector (continuations) both send to the collect queue."""

    collect_queue_url: str = Field(alias="COLLECT_QUEUE_URL", min_length=1)


class UsageSettings(BaseModel):
    """The @handle billing guard's cap (template `MonthlyHandleCap`): 0 = no cap."""

    monthly_handle_cap: int = Field(default=0, ge=0, alias="MONTHLY_HANDLE_CAP")

    @property
    def handle_cap(self) -> int | None:
        return self.monthly_handle_cap or None


class JobsSettings(BaseModel):
    """Live-query jobs (JobsTable): the API makes them, the collector settles their Posts."""

    jobs_table: str | None = Field(default=None, alias="JOBS_TABLE")


class PlannerSettings(QueueSettings):
    app_secret_arn: str = Field(alias="APP_SECRET_ARN", min_length=1)


class EngagementApiSettings(BaseModel):
    """The functions that call the Engagement API (the collector, the API's live queries): the app and where X is."""

    app_secret_arn: str = Field(alias="APP_SECRET_ARN", min_length=1)
    engagement_api_url: str | None = Field(default=None, alias="ENGAGEMENT_API_URL")
    x_api_url: str | None = Field(default=None, alias="X_API_URL")
    # The API's rate window in seconds: 60 against X. Only tests shorten it (with the emulator's, to match).
    rate_window_seconds: float = Field(default=60.0, gt=0, alias="RATE_WINDOW_SECONDS")


class CollectorSettings(QueueSettings, UsageSettings, JobsSettings, EngagementApiSettings):
    pass


class ApiSettings(SharedSettings, UsageSettings, JobsSettings, EngagementApiSettings):
    collect_queue_url: str | None = Field(default=None, alias="COLLECT_QUEUE_URL")
    # Optional override of the OAuth callback (custom domain, or a path prefix API Gateway hides).
    oauth_callback_url: str | None = Field(default=None, alias="OAUTH_CALLBACK_URL")
    # Where the OAuth callback may send the browser afterwards: comma-separated origins or URL prefixes; empty, never.
    oauth_redirect_allowlist: str = Field(default="", alias="OAUTH_REDIRECT_ALLOWLIST")

    @property
    def redirect_allowlist(self) -> tuple[str, ...]:
        return tuple(entry.strip() for entry in self.oauth_redirect_allowlist.split(",") if entry.strip())


# `EXTRA_ENGAGEMENT_TYPES` entries: `name` (every endpoint), or `scope:name` with one of these scopes.
EXTRA_SCOPES: Final[dict[str, tuple[Endpoint, ...]]] = {
    "totals": (Endpoint.TOTALS,),
    "28hr": (Endpoint.HOURLY_28HR,),
    "historical": (Endpoint.HISTORICAL,),
    "series": (Endpoint.HOURLY_28HR, Endpoint.HISTORICAL),
}
_METRIC_NAME: Final = re.compile(METRIC_NAME_PATTERN)


class CatalogSettings(BaseModel):
    """Engagement types X added after this release (template `ExtraEngagementTypes`): asked, stored and served like
    the catalog's own. Comma-separated `name` (every endpoint) or `totals:`/`28hr:`/`historical:`/`series:name`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    extra_engagement_types: dict[Endpoint, tuple[str, ...]] = Field(
        default_factory=dict, alias="EXTRA_ENGAGEMENT_TYPES"
    )

    @field_validator("extra_engagement_types", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return parse_extra_engagement_types(value) if isinstance(value, str) else value


def parse_extra_engagement_types(text: str) -> dict[Endpoint, tuple[str, ...]]:
    """`"series:video_completions, totals:bookmarks"` -> per endpoint, the names in the order given."""
    extras: dict[Endpoint, dict[str, None]] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        scope, _, name = entry.rpartition(":")
        endpoints = EXTRA_SCOPES.get(scope) if scope else tuple(Endpoint)
        if endpoints is None:
            raise ValueError(f"{entry!r}: the scope is one of {', '.join(EXTRA_SCOPES)} (or none: every endpoint)")
        if not _METRIC_NAME.match(name):
            raise ValueError(f"{entry!r}: an engagement type is lowercase letters, digits and _ (at most 64)")
        for endpoint in endpoints:
            extras.setdefault(endpoint, {})[name] = None
    return {endpoint: tuple(names) for endpoint, names in extras.items()}


def catalog_settings() -> CatalogSettings:
    """The deployment's extra engagement types. The catalog (`xengage.api_client.catalog`) reads them where no
    function's settings reach (request shaping, stored names), so they are looked up here, parsed once per value."""
    return _catalog_settings(os.environ.get("EXTRA_ENGAGEMENT_TYPES", ""))


@functools.cache
def _catalog_settings(extra_engagement_types: str) -> CatalogSettings:
    return CatalogSettings.model_validate({"EXTRA_ENGAGEMENT_TYPES": extra_engagement_types})


class ExportSettings(SharedSettings):
    """The analytics export (ExportFunction): its bucket, the key prefix the Glue table reads, its continuations."""

    export_bucket: str = Field(alias="EXPORT_BUCKET", min_length=1)
    export_prefix: str = Field(default="metrics", alias="EXPORT_PREFIX", min_length=1, pattern=r"^[a-z0-9_-]+$")
    export_queue_url: str = Field(alias="EXPORT_QUEUE_URL", min_length=1)


Settings = TypeVar("Settings", bound=BaseModel)


def from_env(model: type[Settings], environ: dict[str, str] | None = None) -> Settings:
    """The function's settings, parsed from `environ` (the process environment by default)."""
    return model.model_validate(dict(os.environ) if environ is None else environ)
