"""One UpdateItem assembled from parts: each part adds its SET / REMOVE clauses, values and conditions.

The collector settles a Post with one write: its status, the move of its due marker and (on /totals) its latest
totals are parts of the same UpdateItem on the marker's item (docs/DESIGN.md, "Settling a Post").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from xengage.dal.aws import is_conditional_failure


@dataclass(slots=True)
class ItemUpdate:
    sets: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)  # every one must hold

    def set(self, name: str, value: Any, *, expression: str | None = None) -> None:
        """SET name = :name (or = `expression`, which may use :name, e.g. if_not_exists)."""
        self.values[f":{name}"] = value
        self.sets.append(f"{self._name(name)} = {expression or f':{name}'}")

    def set_or_remove(self, name: str, value: Any) -> None:
        """SET when there is a value, else REMOVE, so a later outcome never keeps a stale one."""
        if value is None:
            self.remove(name)
        else:
            self.set(name, value)

    def remove(self, *names: str) -> None:
        self.removes += [self._name(name) for name in names]

    def _name(self, name: str) -> str:
        if name in _RESERVED:
            self.names[f"#{name}"] = name
            return f"#{name}"
        return name

    def apply(self, table: Any, key: Mapping[str, str]) -> bool:
        """UpdateItem on `table`; False when a condition does not hold (nothing written)."""
        try:
            table.update_item(Key=dict(key), **self.arguments())
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of Table.update_item (Key aside)."""
        expression = ("SET " + ", ".join(self.sets) if self.sets else "") + (
            " REMOVE " + ", ".join(self.removes) if self.removes else ""
        )
        arguments: dict[str, Any] = {"UpdateExpression": expression.strip()}
        if self.conditions:
            arguments["ConditionExpression"] = " AND ".join(f"({condition})" for condition in self.conditions)
        if self.values:
            arguments["ExpressionAttributeValues"] = dict(self.values)
        if self.names:
            arguments["ExpressionAttributeNames"] = dict(self.names)
        return arguments


_RESERVED = frozenset({"status", "message"})  # DynamoDB reserved words among the attributes written this way
