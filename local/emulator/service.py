"""The emulator's behaviour behind HTTP: one data call in, one planned reply out, plus the request log."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xengage.api_client.catalog import Endpoint

from .clock import Clock
from .engine import AuthKind, Caller, answer
from .faults import SERVER_ERRORS, Fault, FaultConfig, FaultInjector
from .oauth import OAuthServer
from .query import ApiError, parse_query, peek_tweet_ids, peek_window
from .ratelimit import DEFAULT_WINDOW_SECONDS, Budget, PerMinuteLimiter
from .world import World

AUTH_FAILED = "Your account could not be authenticated. Reason: "
_SERVER_ERROR_TEXT = {
    Fault.INTERNAL_ERROR: "internal server error",
    Fault.PROXY_ERROR: "Proxy Error",
    Fault.UNAVAILABLE: "Service Unavailable",
}
STATUS_NO_RESPONSE = 0  # logged for a connection reset: the client got no status at all
MAX_LOG_ENTRIES = 100_000  # a long-running local stack keeps the newest calls only
USERS_ME = "users/me"  # GET /2/users/me, logged and rate-counted under this name
# X API v2 problem shapes (api.x.com/2): what /2/users/me answers for refused credentials.
_V2_UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
_V2_APP_ONLY_FORBIDDEN = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
    "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    at: datetime
    endpoint: str
    auth_kind: AuthKind
    user_id: str | None
    id_count: int
    tweet_ids: tuple[str, ...]
    status: int
    fault: str | None = None  # the injected fault that shaped this answer, if any
    window: tuple[str, str] | None = None  # /historical start/end as sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "endpoint": self.endpoint,
            "auth_kind": self.auth_kind,
            "user_id": self.user_id,
            "id_count": self.id_count,
            "tweet_ids": list(self.tweet_ids),
            "status": self.status,
            "fault": self.fault,
            "window": list(self.window) if self.window else None,
        }


@dataclass(slots=True)
class DataReply:
    """What the HTTP layer must do: send `status`/`body`, possibly after a hang, truncated, or not at all."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None


class EmulatorService:
    def __init__(
        self,
        world: World,
        *,
        per_minute_limit: int | None = None,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        faults: FaultConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.world = world
        self.clock = clock or Clock()
        self.limiter = PerMinuteLimiter(per_minute_limit, window_seconds)
        self.faults = FaultInjector(faults)
        self.oauth = OAuthServer(world)
        self._log: deque[RequestLogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._log_lock = threading.Lock()

    # --- request log -----------------------------------------------------------------------------------
    @property
    def log(self) -> list[RequestLogEntry]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # --- one data call ---------------------------------------------------------------------------------
    def data_call(self, endpoint: Endpoint, uri: str, headers: dict[str, str], body: bytes) -> DataReply:
        now = self.clock.now()
        budget = self.limiter.take(endpoint.value, now)
        fault = self.faults.next_fault()
        caller = Caller("none")
        reply = _refusal(budget.allowed, fault)
        if reply is None:
            try:
                caller = self._identify(endpoint, uri, headers, body)
                config = self.faults.config
                query = parse_query(endpoint, body, now, config.retired_metrics, config.added_metrics)
                data = answer(self.world, query, caller, now, self.faults.config.bare_number_share)
                reply = DataReply(200, data, fault=fault)
            except ApiError as error:
                reply = DataReply(error.status, error.body(), fault=fault)
        ids = tuple(peek_tweet_ids(body))
        self._record(now, endpoint.value, budget, fault, reply, caller, headers, ids, peek_window(body))
        return reply

    def users_me(self, uri: str, headers: dict[str, str]) -> DataReply:
        """GET /2/users/me: who the OAuth 1.0a user-context tokens belong to (X API v2 shapes).

        Same rate limiting (its own per-window count) and faults as a data call: every call to X can fail.
        """
        now = self.clock.now()
        budget = self.limiter.take(USERS_ME, now)
        fault = self.faults.next_fault()
        caller = Caller("none")
        reply = _refusal(budget.allowed, fault)
        if reply is None:
            caller, reply = self._whoami(uri, headers)
            reply.fault = fault
        self._record(now, USERS_ME, budget, fault, reply, caller, headers, (), None)
        return reply

    def _whoami(self, uri: str, headers: dict[str, str]) -> tuple[Caller, DataReply]:
        scheme = (_header(headers, "Authorization") or "").strip().partition(" ")[0].lower()
        if scheme == "bearer":
            return Caller("bearer"), DataReply(403, dict(_V2_APP_ONLY_FORBIDDEN))
        if scheme != "oauth":
            return Caller("none"), DataReply(401, dict(_V2_UNAUTHORIZED))
        verdict = self.oauth.verify_resource_request(uri, "GET", b"", headers)
        if verdict.user is None:
            return Caller("none"), DataReply(401, dict(_V2_UNAUTHORIZED))
        user = verdict.user
        data = {"id": user.user_id, "name": user.display_name or user.screen_name, "username": user.screen_name}
        return Caller("oauth1", user), DataReply(200, {"data": data})

    def _record(
        self,
        now: datetime,
        endpoint: str,
        budget: Budget,
        fault: Fault | None,
        reply: DataReply,
        caller: Caller,
        headers: dict[str, str],
        ids: tuple[str, ...],
        window: tuple[str, str] | None,
    ) -> None:
        reply.headers.update(budget.headers())
        if reply.status == 429:
            reply.headers["x-per-minute-remaining"] = "0"
        entry = RequestLogEntry(
            at=now,
            endpoint=endpoint,
            auth_kind=caller.kind if caller.kind != "none" else _presented_kind(headers),
            user_id=caller.user.user_id if caller.user else None,
            id_count=len(ids),
            tweet_ids=ids,
            status=200 if fault is Fault.MALFORMED else reply.status,
            fault=str(fault) if fault is not None else None,
            window=window,
        )
        with self._log_lock:
            self._log.append(entry)

    def _identify(self, endpoint: Endpoint, uri: str, headers: dict[str, str], body: bytes) -> Caller:
        authorization = _header(headers, "Authorization")
        if not authorization:
            raise ApiError(401, AUTH_FAILED + "Missing Authorization header")
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            if credentials.strip() != self.world.app.bearer_token:
                raise ApiError(401, AUTH_FAILED + "Invalid or expired bearer token")
            if endpoint is not Endpoint.TOTALS:
                raise ApiError(403, AUTH_FAILED + "Unknown Authorization Type")
            return Caller("bearer")
        if scheme.lower() == "oauth":
            verdict = self.oauth.verify_resource_request(uri, "POST", body, headers)
            if verdict.user is None:
                raise ApiError(401, AUTH_FAILED + (verdict.failure or "Invalid OAuth credentials"))
            return Caller("oauth1", verdict.user)
        raise ApiError(401, AUTH_FAILED + "Unknown Authorization Type")


def _refusal(allowed: bool, fault: Fault | None) -> DataReply | None:
    """The answer when the rate limit or an injected fault decides it, before any credential is looked at."""
    if not allowed:
        return DataReply(429, {"errors": ["Rate limit exceeded"]})
    if fault is Fault.RATE_LIMITED:
        return DataReply(429, {"errors": ["Rate limit exceeded"]}, fault=fault)
    if fault in SERVER_ERRORS:
        assert fault is not None
        return DataReply(int(fault.value), {"errors": [_SERVER_ERROR_TEXT[fault]]}, fault=fault)
    if fault is Fault.RESET:
        return DataReply(STATUS_NO_RESPONSE, {}, fault=fault)
    return None


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _presented_kind(headers: dict[str, str]) -> AuthKind:
    """How the caller tried to authenticate, for log entries of calls that failed before that was checked."""
    scheme = (_header(headers, "Authorization") or "").strip().partition(" ")[0].lower()
    return "bearer" if scheme == "bearer" else "oauth1" if scheme == "oauth" else "none"
