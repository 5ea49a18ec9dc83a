"""What a due marker keeps about its Post's series for the data checks (docs/DESIGN.md, "Data checks").

The /totals marker keeps the latest snapshot (`latest_totals`, `latest_totals_at`) and the last decrease seen
(`totals_decrease`); the /historical marker keeps the running sums of every hour bucket stored
(`hour_sums` from `hour_sums_from` up to, not including, `hour_sums_through`). Both are parts of the settling
UpdateItem, each with its own condition; when that condition fails the settle is written without the part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from xengage.dal.paging import plain
from xengage.dal.updates import ItemUpdate

_NEVER_OLDER_TOTALS: Final = "attribute_not_exists(latest_totals_at) OR latest_totals_at <= :latest_totals_at"
_SUMS_UNMOVED: Final = "attribute_not_exists(hour_sums_through) OR hour_sums_through = :previous_through"
_SUMS_NEW: Final = "attribute_not_exists(hour_sums_through)"


@dataclass(slots=True)
class SeriesState:
    """The check-related attributes of one due marker (empty where the marker has none)."""

    latest_totals: dict[str, int] = field(default_factory=dict)
    latest_totals_at: str | None = None
    totals_decrease: dict[str, Any] | None = None
    hour_sums: dict[str, int] = field(default_factory=dict)
    hour_sums_from: str | None = None
    hour_sums_through: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SeriesState:
        return cls(
            latest_totals=plain(item.get("latest_totals") or {}),
            latest_totals_at=item.get("latest_totals_at"),
            totals_decrease=plain(item["totals_decrease"]) if "totals_decrease" in item else None,
            hour_sums=plain(item.get("hour_sums") or {}),
            hour_sums_from=item.get("hour_sums_from"),
            hour_sums_through=item.get("hour_sums_through"),
        )


class MarkerPart(Protocol):
    """An optional part of the settling write, with a condition of its own."""

    def add_to(self, update: ItemUpdate) -> None: ...


@dataclass(frozen=True, slots=True)
class TotalsSnapshot:
    """The latest /totals snapshot, never older than the one kept; with the decrease it showed, if any."""

    totals: Mapping[str, int]
    at: str
    decrease: Mapping[str, Any] | None = None

    def add_to(self, update: ItemUpdate) -> None:
        update.set("latest_totals", dict(self.totals))
        update.set("latest_totals_at", self.at)
        update.conditions.append(_NEVER_OLDER_TOTALS)
        if self.decrease:
            update.set("totals_decrease", dict(self.decrease))


@dataclass(frozen=True, slots=True)
class HourSums:
    """Running sums of a Post's /historical hours, moved on from `previous_through` (None: the first) only if the
    marker still holds that: a redelivered or concurrent collection never adds the same hours twice."""

    sums: Mapping[str, int]
    first_hour: str
    through: str
    previous_through: str | None

    def as_state(self) -> SeriesState:
        """The marker's sums once this part is written."""
        return SeriesState(hour_sums=dict(self.sums), hour_sums_from=self.first_hour, hour_sums_through=self.through)

    def add_to(self, update: ItemUpdate) -> None:
        update.set("hour_sums", dict(self.sums))
        update.set("hour_sums_from", self.first_hour)
        update.set("hour_sums_through", self.through)
        if self.previous_through is None:
            update.conditions.append(_SUMS_NEW)
        else:
            update.values[":previous_through"] = self.previous_through
            update.conditions.append(_SUMS_UNMOVED)
