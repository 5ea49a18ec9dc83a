"""What the deployment has learned about the app as a whole, in RegistryTable under `pk=APP`.

- `sk=CREDENTIALS`: whether X refuses the app's credentials (bearer token, consumer key/secret), why, since when and
  for which version of the app secret. Planning pauses while it is set and the secret has not changed.
- `sk=METRICS#{endpoint}`: engagement types the API refused on that endpoint, with its words: no longer asked.
- `sk=RATE#{endpoint}`: the per-minute limit the API last reported (`x-per-minute-limit`), for the planner's capacity,
  and this minute's count of the shared rate budget (`xengage.dal.rate_budget`).

One Query on `pk=APP` reads all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.paging import plain, query_pages

APP_PK: Final = "APP"
CREDENTIALS_SK: Final = "CREDENTIALS"
CREDENTIALS_OK: Final = "ok"
NEEDS_CREDENTIALS: Final = "needs_credentials"
KNOWN_ENDPOINTS: Final = frozenset(endpoint.value for endpoint in Endpoint)


@dataclass(frozen=True, slots=True)
class AppState:
    credentials: str = CREDENTIALS_OK  # "ok" or "needs_credentials"
    credentials_error: str | None = None
    credentials_since: str | None = None
    secret_version: str | None = None  # the app secret version that was refused
    refused_metrics: dict[Endpoint, dict[str, str]] = field(default_factory=dict)  # metric -> the API's words
    rate_limits: dict[Endpoint, int] = field(default_factory=dict)

    @property
    def needs_credentials(self) -> bool:
        return self.credentials == NEEDS_CREDENTIALS

    def paused_for(self, current_secret_version: str | None) -> bool:
        """Collection waits while the refused secret is still the current one (a new version may work)."""
        return self.needs_credentials and (self.secret_version is None or self.secret_version == current_secret_version)


def app_state_from(items: list[Mapping[str, Any]]) -> AppState:
    credentials: Mapping[str, Any] = {}
    refused: dict[Endpoint, dict[str, str]] = {}
    limits: dict[Endpoint, int] = {}
    for item in items:
        kind, _, name = str(item["sk"]).partition("#")
        endpoint = Endpoint(name) if name in KNOWN_ENDPOINTS else None
        if kind == CREDENTIALS_SK:
            credentials = item
        elif kind == "METRICS" and endpoint is not None:
            refused[endpoint] = {str(k): str(v) for k, v in (item.get("refused") or {}).items()}
        elif kind == "RATE" and endpoint is not None and "limit" in item:  # the budget counts before it knows
            limits[endpoint] = int(plain(item["limit"]))
    return AppState(
        credentials=str(credentials.get("status", CREDENTIALS_OK)),
        credentials_error=credentials.get("error"),
        credentials_since=credentials.get("since"),
        secret_version=credentials.get("secret_version"),
        refused_metrics=refused,
        rate_limits=limits,
    )


class AppStateDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def get(self) -> AppState:
        return app_state_from(list(query_pages(self.table, KeyConditionExpression=Key("pk").eq(APP_PK))))

    def flag_credentials(self, error: str, *, secret_version: str | None, now: str) -> None:
        """X refused the app's credentials: pause until the app secret changes (keeps the first `since`)."""
        self.table.update_item(
            Key={"pk": APP_PK, "sk": CREDENTIALS_SK},
            UpdateExpression="SET #s = :s, #e = :e, secret_version = :v, since = if_not_exists(since, :now)",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":s": NEEDS_CREDENTIALS, ":e": error[:500], ":v": secret_version, ":now": now},
        )

    def clear_credentials(self) -> None:
        self.table.delete_item(Key={"pk": APP_PK, "sk": CREDENTIALS_SK})

    def add_refused_metrics(self, endpoint: Endpoint, refused: Mapping[str, str], *, known: Mapping[str, str]) -> None:
        """Remember engagement types the API refused on `endpoint` (merged with those already `known`)."""
        merged = {**known, **{metric: message[:300] for metric, message in refused.items()}}
        self.table.update_item(
            Key={"pk": APP_PK, "sk": f"METRICS#{endpoint.value}"},
            UpdateExpression="SET refused = :refused",
            ExpressionAttributeValues={":refused": merged},
        )

    def record_rate_limit(self, endpoint: Endpoint, limit: int, *, now: str) -> None:
        """Set the limit on the endpoint's rate item, keeping the shared budget's count (`xengage.dal.rate_budget`)."""
        self.table.update_item(
            Key={"pk": APP_PK, "sk": f"RATE#{endpoint.value}"},
            UpdateExpression="SET #limit = :limit, observed_at = :now",
            ExpressionAttributeNames={"#limit": "limit"},
            ExpressionAttributeValues={":limit": limit, ":now": now},
        )
