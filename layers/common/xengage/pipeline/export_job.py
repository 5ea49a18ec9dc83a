"""The analytics export's job: which UTC days, and where in the current one (the continuation message's body).

The schedule's input, a backfill's and a continuation's all become an `ExportJob` (docs/DESIGN.md, "The analytics
export").
"""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from xengage.pipeline.events import TickTime, parse_event
from xengage.timeutil import utc_now

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


def iso_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


IsoDate = Annotated[date, BeforeValidator(iso_date)]


class ScheduledExport(BaseModel):
    """The daily schedule's input: the `days` UTC days before the tick's day, so the export runs after they closed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scheduled_time: TickTime = None
    days: int = 1

    @field_validator("days", mode="before")
    @classmethod
    def _whole_days(cls, days: Any) -> Any:
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_SCHEDULED_DAYS:
            raise ValueError(f"days must be an integer from 1 to {MAX_SCHEDULED_DAYS}, not {days!r}")
        return days

    def job(self, now: datetime) -> ExportJob:
        last = (self.scheduled_time or now).date() - timedelta(days=1)
        return ExportJob(day=last - timedelta(days=self.days - 1), last_day=last)


class Backfill(BaseModel):
    """A backfill's `{"from", "to"}`: UTC days, both included."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    first: IsoDate = Field(alias="from")
    last: IsoDate = Field(alias="to")


def job_from_event(event: Any, *, now: datetime | None = None) -> ExportJob:
    """The schedule's `{"scheduled_time", "days"}`, a backfill's `{"from", "to"}` or a continuation's job body."""
    if isinstance(event, dict) and ("from" in event or "to" in event):
        backfill = parse_event(Backfill, event, InvalidExportEvent)
        return parse_event(ExportJob, {"day": backfill.first, "last_day": backfill.last}, InvalidExportEvent)
    if isinstance(event, dict) and "day" in event:
        return parse_event(ExportJob, event, InvalidExportEvent)
    return parse_event(ScheduledExport, event, InvalidExportEvent).job(now or utc_now())
