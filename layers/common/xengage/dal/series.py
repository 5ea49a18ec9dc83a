"""The day item: one MetricsTable item per Post, endpoint and UTC day, holding that day's hour buckets.

    pk = "{tweet_id}#{28hr|historical}", sk = "YYYY-MM-DD"
    h     the day's 24 hours separated by ";", hour 00 first (trailing empty ones dropped): "" = no point that hour,
          "." = a point without metrics, else its values as decimal integers joined by "," in column order ("" =
          that metric absent)
    m     the columns, only when they are not DAY_COLUMNS (an item is self-describing either way)
    c, a  when the item was last written, and the account the Post belongs to ("" when app-only)

Why this shape (docs/DESIGN.md, "The time-series layout"): a year of hourly points is 365 items instead of 8,760;
an hourly /28hr tick writes a day item only when one of its hours changed (DynamoDB bills a write by the item's
size, whatever part of it changes); and a page of 500 points is ~22 items of five attributes to deserialize
instead of 500 maps of Decimals (botocore parses every attribute value on its own, the cost of a read). Columns
only ever grow by appending, so the hours written before a new column keep their meaning.

Items of the previous layout (one per hour, sk "YYYY-MM-DDTHH:00:00Z") stay readable: they sort right after their
day's item, and a day item's hour wins over them (`tools/migrate_series.py` folds them into day items).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pydantic_core

from xengage.api_client.catalog import TIME_SERIES_METRICS

# A storage format, not the catalog: items without `m` are read with these columns, so they never change once
# stored (a test pins their fingerprint); they are the catalog's time-series metrics of 2026-12, and metrics the
# catalog gains later are extra columns of the items that hold them.
DAY_COLUMNS: Final[tuple[str, ...]] = TIME_SERIES_METRICS

DAY_KEY_LENGTH: Final = len("YYYY-MM-DD")
_ABSENT_FIELDS: Final = (",,", "[,", ",]", "[]", ".")  # an empty field, or an hour without metrics
HOURS_ATTRIBUTE: Final = "h"
HOUR_SEPARATOR: Final = ";"
NO_METRICS: Final = "."  # an hour with a point but no metric in it
_HOUR_SUFFIXES: Final = tuple(f"T{hour:02d}:00:00Z" for hour in range(24))  # built once: formatted per point
HOURS_PER_DAY: Final = 24


def day_of(at: str) -> str:
    """'2026-11-20T05:00:00Z' -> '2026-11-20'."""
    return at[:DAY_KEY_LENGTH]


def hour_of(at: str) -> int:
    return int(at[11:13])


def hour_at(day: str, hour: int) -> str:
    return day + _HOUR_SUFFIXES[hour]


def is_day_item(item: Mapping[str, Any]) -> bool:
    return len(item["sk"]) == DAY_KEY_LENGTH


def columns_of(item: Mapping[str, Any] | None) -> tuple[str, ...]:
    if item is None or "m" not in item:
        return DAY_COLUMNS
    return tuple(item["m"])


def columns_for(existing: Sequence[str], names: Iterable[str]) -> tuple[str, ...]:
    """`existing` with any name it lacks appended (sorted, so two writers with the same names agree)."""
    extra = sorted(set(names).difference(existing))
    return (*existing, *extra)


def encode_hour(values: Mapping[str, int], columns: Sequence[str]) -> str:
    """Values in column order; an absent metric is an empty field and trailing absent ones are dropped."""
    fields = [str(values[name]) if name in values else "" for name in columns]
    while fields and fields[-1] == "":
        fields.pop()
    return ",".join(fields) or NO_METRICS


def decode_hour(text: str, columns: Sequence[str]) -> dict[str, int]:
    if text == NO_METRICS:
        return {}
    return {name: int(value) for name, value in zip(columns, text.split(","), strict=False) if value != ""}


def hour_texts(item: Mapping[str, Any] | None) -> dict[int, str]:
    """The encoded hours a day item holds, by hour of the day."""
    if item is None:
        return {}
    slots = item.get(HOURS_ATTRIBUTE, "").split(HOUR_SEPARATOR)
    return {hour: text for hour, text in enumerate(slots) if text}


def join_hours(texts: Mapping[int, str]) -> str:
    return HOUR_SEPARATOR.join(texts.get(hour, "") for hour in range(max(texts, default=-1) + 1))


def day_hours(item: Mapping[str, Any]) -> dict[int, dict[str, int]]:
    """The hour buckets a day item holds, by hour of the day."""
    columns = columns_of(item)
    texts = hour_texts(item)
    # The common case, every metric present in every hour, parses the whole day as one JSON array of arrays:
    # pydantic's Rust parser reads the integers about 5 times faster than int() on each field.
    joined = "[[" + "],[".join(texts.values()) + "]]"
    if not any(gap in joined for gap in _ABSENT_FIELDS):
        rows = pydantic_core.from_json(joined)
        return {hour: dict(zip(columns, row, strict=False)) for hour, row in zip(texts, rows, strict=True)}
    return {hour: decode_hour(text, columns) for hour, text in texts.items()}


@dataclass(slots=True)
class DayWrite:
    """What one Post's answer brings to one day item: encoded hours, and the columns they were encoded with."""

    pk: str
    day: str
    hours: dict[int, Mapping[str, int]] = field(default_factory=dict)
    collected_at: str = ""
    account_id: str = ""

    @property
    def key(self) -> dict[str, str]:
        return {"pk": self.pk, "sk": self.day}

    def names(self) -> set[str]:
        return {name for values in self.hours.values() for name in values}

    def encoded(self, columns: Sequence[str]) -> dict[int, str]:
        return {hour: encode_hour(values, columns) for hour, values in self.hours.items()}

    def changed_hours(
        self, stored: Mapping[str, Any] | None, columns: Sequence[str], *, keep_stored: bool = False
    ) -> dict[int, str]:
        """The encoded hours that differ from what is stored (all of them when nothing is); with `keep_stored`,
        only those the stored item lacks."""
        before = hour_texts(stored)
        if keep_stored:
            return {hour: text for hour, text in self.encoded(columns).items() if hour not in before}
        return {hour: text for hour, text in self.encoded(columns).items() if before.get(hour) != text}

    def covers_day_from(self, first_hour: int) -> bool:
        """Whether this write holds every hour of its day from `first_hour` on (the Post's creation hour, or 0)."""
        return all(hour in self.hours for hour in range(first_hour, HOURS_PER_DAY))

    def full_item(self, columns: Sequence[str]) -> dict[str, Any]:
        item: dict[str, Any] = {**self.key, "c": self.collected_at, "a": self.account_id}
        if tuple(columns) != DAY_COLUMNS:
            item["m"] = list(columns)
        item[HOURS_ATTRIBUTE] = join_hours(self.encoded(columns))
        return item
