"""Engagement API client: `EngagementClient` and the types its callers need.

Every name is imported on first use (PEP 562): `EngagementClient` brings requests and oauthlib, which the planner and
the API's read routes never need, and any `xengage.api_client.*` import runs this module first, so importing one
submodule (the API needs `credentials` at start) loads that one only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
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
    from xengage.api_client.users import TokensRejected, VerificationUnavailable, XUser, fetch_me

_SUBMODULE_OF: Final = {
    **dict.fromkeys(("DEFAULT_BASE_URL", "STATUS_OK", "Endpoint", "ErrorKind", "Reason"), "catalog"),
    "EngagementClient": "client",
    **dict.fromkeys(("AppCredentials", "UserTokens"), "credentials"),
    "Deadline": "deadline",
    **dict.fromkeys(
        (
            "AppAuthError",
            "AuthError",
            "EngagementError",
            "MalformedResponse",
            "RequestValidationError",
            "RetriesExhausted",
            "UserAuthError",
            "UserContextRequired",
        ),
        "errors",
    ),
    **dict.fromkeys(("EngagementResult", "ParsedResponse", "PostMetrics"), "models"),
    "Pacer": "pacing",
    "parse_response": "parsing",
    "RetryPolicy": "retry",
    **dict.fromkeys(("TokensRejected", "VerificationUnavailable", "XUser", "fetch_me"), "users"),
}


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # looked up once
    return value


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
    "TokensRejected",
    "UserAuthError",
    "UserContextRequired",
    "UserTokens",
    "VerificationUnavailable",
    "XUser",
    "fetch_me",
    "parse_response",
]
