"""The deployment's shared rate budget: one allowance per endpoint and API minute, for every caller.

Collectors run concurrently and live queries come at any time, each with its own client, while X meters their calls
together. Before each call a client takes a slot from the endpoint's item in RegistryTable (`pk=APP`,
`sk=RATE#{endpoint}`) with one conditional update: the count is for this minute and below the limit the API
reported. So no caller spends an allowance another already used, and calls go out at the full limit, not less.

The item holds `limit` (the last `x-per-minute-limit`), `window` (the minute the count is for: its index since the
epoch, as the API's windows are wall-clock minutes) and `used` (slots taken in that window).
- Before any answer has taught the limit, one call a minute probes; the others ask again after a short wait.
- Answers correct the count: `x-per-minute-limit` updates the limit, and `limit - x-per-minute-remaining` raises
  `used` when X counted more (calls from outside this deployment); a 429 spends the rest of the window.
- When the table cannot be reached, the client paces on its own answers (`Pacer`) rather than stop collecting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from xengage.api_client.pacing import (
    BOUNDARY_MARGIN_SECONDS,
    LIMIT_HEADER,
    RATE_WINDOW_SECONDS,
    REMAINING_HEADER,
    Pacer,
    header_int,
    seconds_until_next_window,
    utc_now,
)
from xengage.dal.app_state import APP_PK
from xengage.dal.aws import dynamodb_client
from xengage.observability import client_logger as logger
from xengage.timeutil import to_iso

# Calls a minute while the limit is unknown: the first answer teaches it.
PROBE_CALLS: Final = 1
# How soon a caller held back by the probe asks again (the probe's answer takes well under a second).
PROBE_RETRY_SECONDS: Final = 0.5
# Calls other callers may have sent between this caller's slot and its answer (collectors and live queries at once).
IN_FLIGHT_ALLOWANCE: Final = 8
# What `used` becomes after a 429: more than any contract's limit, so the window is spent for everyone.
SPENT: Final = 1 << 31
_NAMES: Final = {"#window": "window", "#used": "used", "#limit": "limit"}


def rate_key(endpoint: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": APP_PK}, "sk": {"S": f"RATE#{endpoint}"}}


@dataclass(slots=True)
class BudgetStats:
    """What the budget did in this process (benchmarks print it; each write is a DynamoDB request)."""

    granted: int = 0
    held_back: int = 0
    writes: int = 0
    reads: int = 0
    fallbacks: int = 0


class SharedRateBudget:
    """A `RateGate` over RegistryTable, shared by every client of the deployment (one instance per process)."""

    def __init__(
        self,
        table_name: str,
        *,
        window_seconds: float = RATE_WINDOW_SECONDS,
        now: Callable[[], datetime] = utc_now,
        client: Any = None,
    ) -> None:
        self.table_name = table_name
        self.window_seconds = window_seconds
        self._now = now
        self._client = client
        self._fallback = Pacer(now=now, window_seconds=window_seconds)
        self._limits: dict[str, int] = {}
        self._slots: dict[str, tuple[int, int]] = {}  # endpoint -> (window, slot) of this process's last call
        self._open: dict[str, int] = {}  # endpoint -> the last window this process saw opened
        self.stats = BudgetStats()

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()

    # -- RateGate ------------------------------------------------------------------------------------------------

    def delay_before_call(self, endpoint: str) -> float:
        """0 when a slot of this minute was taken for the call; otherwise the seconds before asking again."""
        now = self._now()
        window = self._window_of(now)
        try:
            slot = self._take(endpoint, window)
        except (BotoCoreError, ClientError) as exc:
            self.stats.fallbacks += 1
            logger.warning("rate budget unavailable (%s): pacing on this client's answers alone", _code(exc))
            return self._fallback.delay_before_call(endpoint)
        if slot is not None:
            self.stats.granted += 1
            self._slots[endpoint] = (window, slot)
            return 0.0
        self.stats.held_back += 1
        until_renewal = seconds_until_next_window(now, self.window_seconds) + BOUNDARY_MARGIN_SECONDS
        if endpoint not in self._limits and not self._read_limit(endpoint):
            return min(PROBE_RETRY_SECONDS, until_renewal)  # a probe is out: its answer will teach the limit
        return until_renewal

    def record_response(self, endpoint: str, headers: Mapping[str, str]) -> None:
        """Learn the limit and catch up with what X counted (each at most one conditional write, when needed)."""
        self._fallback.record_response(endpoint, headers)
        limit = header_int(headers, LIMIT_HEADER)
        if limit is None:
            return
        if self._limits.get(endpoint) != limit:
            self._learn_limit(endpoint, limit)
        remaining = header_int(headers, REMAINING_HEADER)
        window, slot = self._slots.get(endpoint, (None, 0))
        if remaining is None or window != self._window_of(self._now()):
            return
        counted = limit - remaining
        # Callers that took later slots may have called before this answer came: only a count beyond them, or an
        # allowance X says is spent, means calls from elsewhere (each costs a write, so not on every answer).
        if remaining <= 0 or counted > slot + IN_FLIGHT_ALLOWANCE:
            self._raise_used(endpoint, window, counted)

    def record_throttled(self, endpoint: str) -> float:
        """A 429: nothing is left this minute, for any caller. Returns the seconds until the allowance renews."""
        wait = self._fallback.record_throttled(endpoint)
        self._raise_used(endpoint, self._window_of(self._now()), SPENT)
        return wait

    def limit(self, endpoint: str) -> int | None:
        return self._limits.get(endpoint) or self._fallback.limit(endpoint)

    # -- DynamoDB --------------------------------------------------------------------------------------------------

    def _take(self, endpoint: str, window: int) -> int | None:
        """A slot number (1 = first of the window), or None when the window's allowance is spent.

        A window this process has not seen opened is opened first (whoever does it takes slot 1); once it is open,
        a slot is one conditional ADD, and a caller held back learns it with that one write.
        """
        values = {":window": {"N": str(window)}, ":one": {"N": "1"}}
        taken = None
        if self._open.get(endpoint, -1) < window:
            taken = self._conditional(
                endpoint,
                "SET #window = :window, #used = :one",
                "attribute_not_exists(#window) OR #window < :window",
                values,
            )
            self._open[endpoint] = window
        if taken is None:
            taken = self._conditional(
                endpoint,
                "ADD #used :one",
                "#window = :window AND (#used < #limit OR (attribute_not_exists(#limit) AND #used < :probe))",
                {**values, ":probe": {"N": str(PROBE_CALLS)}},
            )
        if taken is None:
            return None
        if "limit" in taken:
            self._limits[endpoint] = int(taken["limit"]["N"])
        else:
            self._limits.pop(endpoint, None)  # the item lost it (deleted, restored): this call's answer writes it
        return int(taken["used"]["N"])

    def _read_limit(self, endpoint: str) -> bool:
        """Has another caller learned the limit? (Read once per process: afterwards every take returns it.)"""
        self.stats.reads += 1
        try:
            item = self.client.get_item(TableName=self.table_name, Key=rate_key(endpoint), ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("rate budget unreadable (%s)", _code(exc))
            return False
        limit = item.get("Item", {}).get("limit")
        if limit is not None:
            self._limits[endpoint] = int(limit["N"])
        return limit is not None

    def _learn_limit(self, endpoint: str, limit: int) -> None:
        values = {":limit": {"N": str(limit)}, ":now": {"S": to_iso(self._now())}}
        try:
            self._write(endpoint, "SET #limit = :limit, observed_at = :now", None, values)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("rate limit not recorded (%s)", _code(exc))
            return
        self._limits[endpoint] = limit

    def _raise_used(self, endpoint: str, window: int, used: int) -> None:
        """Raise this window's count to `used` (never lowers it, never touches another window)."""
        values = {":window": {"N": str(window)}, ":used": {"N": str(used)}}
        try:
            self._conditional(endpoint, "SET #used = :used", "#window = :window AND #used < :used", values)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("rate budget not updated (%s)", _code(exc))

    def _conditional(
        self, endpoint: str, update: str, condition: str, values: dict[str, dict[str, str]]
    ) -> dict[str, Any] | None:
        """The item after the update, or None when the condition does not hold."""
        try:
            return self._write(endpoint, update, condition, values)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise

    def _write(
        self, endpoint: str, update: str, condition: str | None, values: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        expressions = f"{update} {condition}"
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": rate_key(endpoint),
            "UpdateExpression": update,
            "ExpressionAttributeNames": {name: attr for name, attr in _NAMES.items() if name in expressions},
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if condition is not None:
            request["ConditionExpression"] = condition
        self.stats.writes += 1
        answer: dict[str, Any] = self.client.update_item(**request)
        return answer.get("Attributes", {})

    def _window_of(self, moment: datetime) -> int:
        return int(moment.timestamp() // self.window_seconds)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
