"""What invokes the planner and the collector by hand or by schedule, as models parsed at the handler (docs/DESIGN.md,
"Events"); the SQS records are in `pipeline.records`.

- `ScheduleTick`: an EventBridge Scheduler tick's Input (template.yaml `PlannerFunction` schedules);
- `ConsoleCollect`: a console or `make invoke` run of the collector over any number of ids.

`parse_event` turns a validation error into the function's typed exception, naming each problem in one line.
"""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from xengage.api_client.catalog import Endpoint
from xengage.pipeline.messages import CollectMessage
from xengage.timeutil import parse_iso

Parsed = TypeVar("Parsed", bound=BaseModel)
# pydantic's error types for an event that is not a JSON object at all (a list, a string, ...).
NOT_AN_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def known_endpoint(value: Any) -> Any:
    """The endpoint's name, or an error listing the names there are."""
    if isinstance(value, Endpoint) or value in {endpoint.value for endpoint in Endpoint}:
        return value
    choices = ", ".join(endpoint.value for endpoint in Endpoint)
    raise ValueError(f"endpoint must be one of {choices}, not {value!r}")


def iso_utc(value: Any) -> Any:
    return parse_iso(value) if isinstance(value, str) else value


def placeholder_is_none(value: Any) -> Any:
    """Scheduler's `<aws.scheduler.scheduled-time>` left as it is (a manual invoke) counts as absent."""
    return None if not value or (isinstance(value, str) and value.startswith("<")) else value


EndpointName = Annotated[Endpoint, BeforeValidator(known_endpoint)]
IsoTime = Annotated[datetime, BeforeValidator(iso_utc)]
# Before-validators run last-listed first: the placeholder check, then the ISO parse.
TickTime = Annotated[datetime | None, BeforeValidator(iso_utc), BeforeValidator(placeholder_is_none)]


def parse_event(model: type[Parsed], event: Any, error: type[ValueError]) -> Parsed:
    """`event` as `model`, or `error` naming every problem (`field: what is wrong`, unknown fields together)."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise error(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    problems: list[str] = []
    unknown: list[str] = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            unknown.append(where)
        elif error["type"] in NOT_AN_OBJECT:
            problems.append(f"the event must be a JSON object, not {type(error['input']).__name__}")
        else:
            problems.append(_problem(where, message, error.get("input")))
    if unknown:
        problems.append(f"unknown field(s): {', '.join(sorted(unknown))}")
    return "; ".join(problems)


def _problem(where: str, message: str, value: Any) -> str:
    """`where: message, not <value>`: the value a scalar field was given, when the message does not show it."""
    text = message if message.startswith(where) else f"{where}: {message}"
    shown = repr(value)
    if isinstance(value, str | int | float) and len(shown) <= 80 and shown not in text:
        text += f", not {shown}"
    return text


# --- the planner ------------------------------------------------------------------------------------------------


class InvalidScheduleEvent(ValueError):
    """The schedule Input is not what the template sends; the message names the field."""


class ScheduleTick(BaseModel):
    """The schedule's Input: `{"endpoint", "scheduled_time", "schedule_arn", "attempt", "schedule_expression"}`.

    The expression (`rate(15 minutes)`) tells how long until the next tick. A missing or unsubstituted
    `scheduled_time` (a manual invoke) means now, floored to the minute."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    endpoint: EndpointName
    scheduled_time: TickTime = None
    schedule_arn: str | None = None
    attempt: str | int | None = None
    schedule_expression: str | None = None


# --- the collector ------------------------------------------------------------------------------------------------


class InvalidPayload(ValueError):
    """A console payload or a collect message that does not parse; the message names each problem."""


def tweet_id_list(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError("tweet_ids must be a non-empty list of tweet id strings")
    return [str(tweet_id) for tweet_id in value]


class ConsoleCollect(BaseModel):
    """`{"endpoint", "tweet_ids", "account_id"?, "start"?, "end"?}`: any number of ids, split into messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: EndpointName
    tweet_ids: Annotated[list[str], BeforeValidator(tweet_id_list)]
    account_id: str | None = None
    start: IsoTime | None = None
    end: IsoTime | None = None

    @property
    def unique_ids(self) -> list[str]:
        return list(dict.fromkeys(self.tweet_ids))

    def messages(self, scheduled_time: datetime) -> list[CollectMessage]:
        """The ids in batches of the endpoint's size, one message each (raises ValidationError if they break a
        message's rules: digits only, an account for the time series, start/end for /historical only)."""
        size = self.endpoint.max_ids
        ids = self.unique_ids
        return [
            CollectMessage(
                endpoint=self.endpoint,
                tweet_ids=ids[index : index + size],
                account_id=self.account_id,
                scheduled_time=scheduled_time,
                start=self.start,
                end=self.end,
            )
            for index in range(0, len(ids), size)
        ]
