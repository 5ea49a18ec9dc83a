"""The planner → collector SQS message (docs/DESIGN.md, "SQS message"), validated on both sides."""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xengage.api_client.catalog import Endpoint
from xengage.timeutil import parse_iso, to_iso


class CollectMessage(BaseModel):
    """One batch of Posts to collect on one endpoint with one auth context (and one window for /historical)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint
    tweet_ids: list[str] = Field(min_length=1)
    account_id: str | None = None
    scheduled_time: datetime
    start: datetime | None = None
    end: datetime | None = None
    # Continuations in a row without progress (transient errors): the collector gives up after a bound.
    attempt: int = Field(default=0, ge=0, le=100)
    # A live query's job (JobsTable): its Posts are settled there, not on due markers (no lease, no schedule moved).
    job_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    # What the job asked for (None: the endpoint's default metrics).
    engagement_types: list[str] | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("tweet_ids")
    @classmethod
    def _digits_only(cls, tweet_ids: list[str]) -> list[str]:
        bad = [tweet_id for tweet_id in tweet_ids if not (isinstance(tweet_id, str) and tweet_id.isdigit())]
        if bad:
            raise ValueError(f"tweet ids must be strings of digits: {bad[:5]}")
        return tweet_ids

    @field_validator("account_id")
    @classmethod
    def _empty_is_app(cls, account_id: str | None) -> str | None:
        return account_id or None

    @field_validator("scheduled_time", "start", "end", mode="before")
    @classmethod
    def _iso_utc(cls, value: Any) -> Any:
        return parse_iso(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fits_endpoint(self) -> "CollectMessage":
        if len(self.tweet_ids) > self.endpoint.max_ids:
            raise ValueError(f"{self.endpoint.value} takes at most {self.endpoint.max_ids} ids per message")
        if len(set(self.tweet_ids)) != len(self.tweet_ids):
            raise ValueError("tweet_ids contains duplicates")
        if self.endpoint.is_time_series and not self.account_id:
            raise ValueError(f"{self.endpoint.value} needs an account_id (the Post owner's tokens)")
        if (self.start or self.end) and self.endpoint is not Endpoint.HISTORICAL:
            raise ValueError("start/end are only accepted for historical")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def to_body(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint.value,
            "tweet_ids": list(self.tweet_ids),
            "account_id": self.account_id,
            "scheduled_time": to_iso(self.scheduled_time),
            "start": to_iso(self.start) if self.start else None,
            "end": to_iso(self.end) if self.end else None,
            "attempt": self.attempt,
            **({"job_id": self.job_id} if self.job_id else {}),
            **({"engagement_types": list(self.engagement_types)} if self.engagement_types else {}),
        }

    @property
    def lease(self) -> str:
        """The tick that queued these Posts: their due markers name it while the message (or its continuations) runs."""
        return to_iso(self.scheduled_time)
