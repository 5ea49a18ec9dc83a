"""The analytics export's job: which UTC days, and where in the current one (the continuation message's body).

The schedule's input, a backfill's and a continuation's all become an `ExportJob` (docs/DESIGN.md, "The analytics
export").
"""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from datetime import date, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xengage.timeutil import parse_iso, utc_now

APP_CONTEXT: Final = "APP"  # the registry's listing of app-only Posts (dal.registry.APP_CONTEXT)
# The API's /historical look-back is 365 days; a backfill may reach back past it (what was stored stays stored).
MAX_BACKFILL_DAYS: Final = 3660
MAX_SCHEDULED_DAYS: Final = 31


class ExportJob(BaseModel):
    """Export every day from `day` to `last_day`; the current day resumes after Post `after` of `context`, with
    `parts` files already written per endpoint (the next part's number)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: date
    last_day: date
    context: str = Field(default=APP_CONTEXT, min_length=1, pattern=r"^(APP|[1-9][0-9]{0,19})$")
    after: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,19}$")
    parts: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> "ExportJob":
        if self.day > self.last_day:
            raise ValueError(f"day {self.day} is after last_day {self.last_day}")
        if (self.last_day - self.day).days >= MAX_BACKFILL_DAYS:
            raise ValueError(f"at most {MAX_BACKFILL_DAYS} days in one export")
        return self

    def next_day(self) -> "ExportJob | None":
        """The job for the day after this one, from its start; None when this was the last."""
        if self.day >= self.last_day:
            return None
        return ExportJob(day=self.day + timedelta(days=1), last_day=self.last_day)


class InvalidExportEvent(ValueError):
    """The event is neither the schedule's input, a backfill nor a continuation; the message says why."""


def job_from_event(event: dict[str, Any], *, now: datetime | None = None) -> ExportJob:
    """The schedule's `{"scheduled_time", "days"}` (the `days` UTC days before the tick's day, so the export runs
    after they closed), a backfill's `{"from", "to"}` (days, inclusive) or a continuation's job body."""
    try:
        if "from" in event or "to" in event:
            first, last = date.fromisoformat(str(event.get("from"))), date.fromisoformat(str(event.get("to")))
            return ExportJob(day=first, last_day=last)
        if "day" in event:
            return ExportJob.model_validate(event)
        days = event.get("days", 1)
        if not isinstance(days, int) or not 1 <= days <= MAX_SCHEDULED_DAYS:
            raise InvalidExportEvent(f"days must be an integer from 1 to {MAX_SCHEDULED_DAYS}, not {days!r}")
        raw = event.get("scheduled_time")
        # A missing or unsubstituted placeholder (a console run) means now.
        tick = parse_iso(raw) if isinstance(raw, str) and raw and not raw.startswith("<") else (now or utc_now())
        last = tick.date() - timedelta(days=1)
        return ExportJob(day=last - timedelta(days=days - 1), last_day=last)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        if isinstance(exc, InvalidExportEvent):
            raise
        raise InvalidExportEvent(str(exc)) from exc
