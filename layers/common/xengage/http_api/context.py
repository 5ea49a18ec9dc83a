"""What the routes share: the API's settings (parsed once per cold start) and the DAL objects."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from pydantic import Field

from xengage import dal
from xengage.dal.app_state import AppStateDal
from xengage.dal.metrics import MetricsDal
from xengage.dal.rate_budget import SharedRateBudget
from xengage.dal.registry import RegistryDal
from xengage.dal.status import StatusDal
from xengage.settings import ApiSettings, clear_settings_cache

if TYPE_CHECKING:
    from xengage.dal.health import HealthDal
    from xengage.dal.usage import UsageDal


class HttpApiSettings(ApiSettings):
    # Optional override of the OAuth callback (custom domain, or a path prefix API Gateway hides).
    oauth_callback_url: str | None = Field(default=None, alias="OAUTH_CALLBACK_URL")
    # Where the OAuth callback may send the browser afterwards: comma-separated origins or URL prefixes; empty, never.
    oauth_redirect_allowlist: str = Field(default="", alias="OAUTH_REDIRECT_ALLOWLIST")

    @property
    def redirect_allowlist(self) -> tuple[str, ...]:
        return tuple(entry.strip() for entry in self.oauth_redirect_allowlist.split(",") if entry.strip())


@functools.cache
def settings() -> HttpApiSettings:
    return HttpApiSettings.model_validate(dict(os.environ))


def registry() -> RegistryDal:
    return dal.registry_dal()


def app_state() -> AppStateDal:
    return dal.app_state_dal()


def metrics_store() -> MetricsDal:
    return dal.metrics_dal()


def status_store() -> StatusDal:
    return dal.status_dal()


def usage() -> UsageDal:
    return dal.usage_dal()


def health() -> HealthDal:
    return dal.health_dal()


def rate_budget(window_seconds: float) -> SharedRateBudget:
    return dal.rate_budget(window_seconds)


def reset() -> None:
    """Forget settings and DAL objects (tests change the environment between cases)."""
    settings.cache_clear()
    clear_settings_cache()
    dal.clear_dal_cache()
