"""Engagement API client: `EngagementClient` and the types its callers need."""

from xengage.api_client.catalog import DEFAULT_BASE_URL, STATUS_OK, Endpoint, ErrorKind, Reason
from xengage.api_client.client import EngagementClient
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
