"""Typed errors of the Engagement API client. Each one carries the reason in its message."""

from __future__ import annotations

from xengage.api_client.catalog import ErrorKind


class EngagementError(Exception):
    """Base class of everything the client raises."""


class RequestValidationError(EngagementError, ValueError):
    """The request is wrong before any HTTP call: bad ids, metrics, dates or windows."""


class UserContextRequired(RequestValidationError):
    """The endpoint or metrics need the Post owner's OAuth 1.0a tokens and none were given."""


class AuthError(EngagementError):
    """401, or a 403 about the credentials themselves (not a per-Post "Forbidden to access tweets").

    Raised as one of its two kinds: `UserAuthError` (the account's tokens) or `AppAuthError` (the app's).
    """

    kind: ErrorKind = ErrorKind.USER_AUTH

    def __init__(self, message: str, *, account: str | None, status_code: int) -> None:
        super().__init__(f"{self._who(account)}: {message} (HTTP {status_code})")
        self.account = account
        self.status_code = status_code
        self.api_message = message

    @staticmethod
    def _who(account: str | None) -> str:
        return f"account {account}" if account else "the app bearer token"


class UserAuthError(AuthError):
    """The account's access token and secret were refused: that account needs re-authorization."""


class AppAuthError(AuthError):
    """The app's bearer token or consumer key/secret were refused: no account is at fault, and every call fails
    until the app secret is replaced."""

    kind = ErrorKind.APP_AUTH

    def __init__(self, message: str, *, status_code: int, account: str | None = None) -> None:
        super().__init__(message, account=account, status_code=status_code)

    @staticmethod
    def _who(account: str | None) -> str:
        return "the app credentials"


class MalformedResponse(EngagementError):
    """The API answered with something that is not the documented JSON."""


class RetriesExhausted(EngagementError):
    """429, 5xx, timeouts or connection errors kept coming after the bounded retry budget."""

    kind = ErrorKind.TRANSIENT

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds before another attempt is worth making
