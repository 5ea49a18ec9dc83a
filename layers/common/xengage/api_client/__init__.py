"""Engagement API client: `EngagementClient` and the types its callers need.

`EngagementClient` is imported on first use (PEP 562): it brings requests and oauthlib, which the planner and the
API's read routes never need, and any `xengage.api_client.*` import runs this module first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xengage.api_client.catalog import DEFAULT_BASE_URL, STATUS_OK, Endpoint, ErrorKind, Reason
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.errors import (
    AppAuthError,
    AuthError,
    EngagementError,
    MalformedResponse,
    RequestValidationError,
    RetriesExhausted,
    UserAuthError,
    UserContextRequired,
)
from xengage.api_client.models import EngagementResult, ParsedResponse, PostMetrics
from xengage.api_client.pacing import Pacer
from xengage.api_client.parsing import parse_response
from xengage.api_client.retry import RetryPolicy

if TYPE_CHECKING:
    from xengage.api_client.client import EngagementClient


def __getattr__(name: str) -> Any:
    if name == "EngagementClient":
        from xengage.api_client.client import EngagementClient

        return EngagementClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BASE_URL",
    "STATUS_OK",
    "AppAuthError",
    "AppCredentials",
    "AuthError",
    "Deadline",
    "Endpoint",
    "EngagementClient",
    "EngagementError",
    "EngagementResult",
    "ErrorKind",
    "MalformedResponse",
    "Pacer",
    "ParsedResponse",
    "PostMetrics",
    "Reason",
    "RequestValidationError",
    "RetriesExhausted",
    "RetryPolicy",
    "UserAuthError",
    "UserContextRequired",
    "UserTokens",
    "parse_response",
]
