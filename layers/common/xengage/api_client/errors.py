"""Typed errors of the Engagement API client. Each one carries the reason in its message."""

from __future__ import annotations


class EngagementError(Exception):
    """Base class of everything the client raises."""


class RequestValidationError(EngagementError, ValueError):
    """The request is wrong before any HTTP call: bad ids, metrics, dates or windows."""


class UserContextRequired(RequestValidationError):
    """The endpoint or metrics need the Post owner's OAuth 1.0a tokens and none were given."""


class AuthError(EngagementError):
    """401, or a 403 about the credentials themselves (not a per-Post "Forbidden to access tweets")."""

    def __init__(self, message: str, *, account: str | None, status_code: int) -> None:
        who = f"account {account}" if account else "the app bearer token"
        super().__init__(f"{who}: {message} (HTTP {status_code})")
        self.account = account
        self.status_code = status_code
        self.api_message = message


class MalformedResponse(EngagementError):
    """The API answered with something that is not the documented JSON."""


class RetriesExhausted(EngagementError):
    """429, 5xx, timeouts or connection errors kept coming after the bounded retry budget."""
