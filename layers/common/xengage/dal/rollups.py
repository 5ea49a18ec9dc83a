"""Account rollups: per account, endpoint and UTC day, the sums of its Posts' hour buckets (RollupsTable).

    pk = "{account_id}#{28hr|historical}", sk = "YYYY-MM-DD#B": B = hour // 6, a day in four blocks of six hours
    "HH:<code>"  the sum over the account's Posts of one metric at hour HH (a number); <code> is the metric's index
                 in DAY_COLUMNS, or its name for a metric outside them

Why blocks of six hours: an ADD names every attribute it adds to, and an expression is at most 4 KB (a whole day
of 17 metrics would be 408 of them); and a write is billed by the item's size, so the hourly tick, which moves the
last hour or two, rewrites a block of at most 102 numbers (under 1 KB), not the whole day.

Exact by construction (docs/DESIGN.md, "Rollups"): a day item whose `r` is set and whose `a` names an account
contributes its hours to that account's rollup, and nothing else does. Every write that changes what a day item
contributes (its hours, its account, `r`, its deletion) is one TransactWriteItems: the day item's write, conditional
on the item being as it was read, with an ADD of exactly the difference (after - before) to each rollup item it
touches. Either both happen or neither; a writer that lost a race reads again and recomputes the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from xengage.dal.aws import dynamodb_client
from xengage.dal.series import DAY_COLUMNS, day_hours
from xengage.dal.updates import ItemUpdate

ROLLED_UP: Final = "r"  # on a day item: its hours are in its account's rollup
MAX_TRANSACTION_ITEMS: Final = 100  # TransactWriteItems' limit on actions
HOURS_PER_BLOCK: Final = 6
_CODES: Final = {name: str(index) for index, name in enumerate(DAY_COLUMNS)}
_SERIALIZER: Final = TypeSerializer()
_RETRIED_REASONS: Final = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})

Sums = dict[str, int]  # rollup attribute ("HH:<code>") -> value


def rollup_pk(account_id: str, endpoint: str) -> str:
    return f"{account_id}#{endpoint}"


def block_key(day: str, hour: int) -> str:
    """The sort key of the rollup item holding `hour` of `day`."""
    return f"{day}#{hour // HOURS_PER_BLOCK}"


def hour_attribute(hour: int, metric: str) -> str:
    return f"{hour:02d}:{_CODES.get(metric, metric)}"


def parse_attribute(name: str) -> tuple[int, str] | None:
    """'05:0' -> (5, 'impressions'); None for the key attributes."""
    hour, sep, code = name.partition(":")
    if not sep or not hour.isdigit():
        return None
    return int(hour), DAY_COLUMNS[int(code)] if code.isdigit() else code


def rollup_hours(item: Mapping[str, Any]) -> dict[int, dict[str, int]]:
    """A rollup item's sums by hour of the day, hours without any sum left out."""
    hours: dict[int, dict[str, int]] = {}
    for name, value in item.items():
        parsed = parse_attribute(name)
        if parsed is not None:
            hours.setdefault(parsed[0], {})[parsed[1]] = int(value)
    return dict(sorted(hours.items()))


def contribution(item: Mapping[str, Any] | None) -> tuple[str, Sums]:
    """(account, sums) a day item adds to its account's rollup: nothing unless rolled up and owned by an account."""
    if item is None or not item.get(ROLLED_UP) or not item.get("a"):
        return "", {}
    sums = {
        hour_attribute(hour, name): int(value)
        for hour, values in day_hours(item).items()
        for name, value in values.items()
    }
    return str(item["a"]), sums


def deltas(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Sums]:
    """What each account's rollup of the day must gain when a day item goes from `before` to `after` (None: absent);
    zero differences are left out."""
    changes: dict[str, Sums] = {}
    for sign, item in ((-1, before), (1, after)):
        account, sums = contribution(item)
        if account:
            target = changes.setdefault(account, {})
            for name, value in sums.items():
                target[name] = target.get(name, 0) + sign * value
    return {
        account: nonzero
        for account, sums in changes.items()
        if (nonzero := {name: value for name, value in sums.items() if value})
    }


@dataclass(slots=True)
class Transaction:
    """TransactWriteItems actions: day-item writes and the ADDs they bring to rollup items (merged per item)."""

    metrics_table: str
    rollups_table: str
    days: list[dict[str, Any]] = field(default_factory=list)
    adds: dict[tuple[str, str], Sums] = field(default_factory=dict)  # (rollup pk, day) -> sums to ADD
    keys: list[tuple[str, str]] = field(default_factory=list)  # the day items' (pk, sk)

    def size_with(self, endpoint: str, day: str, changes: Mapping[str, Sums]) -> int:
        new_rollups = set(_by_block(endpoint, day, changes)).difference(self.adds)
        return len(self.days) + len(self.adds) + 1 + len(new_rollups)

    def add_day(self, action: dict[str, Any], endpoint: str, day: str, changes: Mapping[str, Sums]) -> None:
        self.days.append(action)
        for key, sums in _by_block(endpoint, day, changes).items():
            target = self.adds.setdefault(key, {})
            for name, value in sums.items():
                target[name] = target.get(name, 0) + value

    def actions(self) -> list[dict[str, Any]]:
        adds = (
            ({"pk": pk, "sk": sk}, {name: value for name, value in sums.items() if value})
            for (pk, sk), sums in self.adds.items()
        )
        return self.days + [{"Update": _add_action(self.rollups_table, key, sums)} for key, sums in adds if sums]


def _by_block(endpoint: str, day: str, changes: Mapping[str, Sums]) -> dict[tuple[str, str], Sums]:
    """Each account's differences by the rollup item (pk, sk) they go to."""
    blocks: dict[tuple[str, str], Sums] = {}
    for account, sums in changes.items():
        for name, value in sums.items():
            blocks.setdefault((rollup_pk(account, endpoint), block_key(day, int(name[:2]))), {})[name] = value
    return blocks


def update_action(table_name: str, key: Mapping[str, str], update: ItemUpdate) -> dict[str, Any]:
    """An ItemUpdate as a TransactWriteItems Update (the client's typed values, not the resource's)."""
    arguments = update.arguments()
    if "ExpressionAttributeValues" in arguments:
        arguments["ExpressionAttributeValues"] = _typed(arguments["ExpressionAttributeValues"])
    return {"Update": {"TableName": table_name, "Key": _typed(key), **arguments}}


def delete_action(table_name: str, key: Mapping[str, str], update: ItemUpdate) -> dict[str, Any]:
    """A conditional Delete with the conditions (and their values) of `update`."""
    delete: dict[str, Any] = {"TableName": table_name, "Key": _typed(key)}
    arguments = update.arguments()
    for name in ("ConditionExpression", "ExpressionAttributeNames"):
        if name in arguments:
            delete[name] = arguments[name]
    if "ExpressionAttributeValues" in arguments:
        delete["ExpressionAttributeValues"] = _typed(arguments["ExpressionAttributeValues"])
    return {"Delete": delete}


def transact_write(actions: list[dict[str, Any]]) -> bool:
    """One TransactWriteItems; False when it was cancelled by a condition or a concurrent transaction (nothing of
    it written). botocore sends a ClientRequestToken and keeps it across its own retries: a request that reached
    DynamoDB before a timeout is not applied twice."""
    try:
        dynamodb_client().transact_write_items(TransactItems=actions)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = {reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])}
        if reasons.difference(_RETRIED_REASONS):
            raise
        return False
    return True


def _add_action(table_name: str, key: Mapping[str, str], sums: Sums) -> dict[str, Any]:
    names = {f"#n{index}": name for index, name in enumerate(sums)}
    values = {f":v{index}": value for index, value in enumerate(sums.values())}
    return {
        "TableName": table_name,
        "Key": _typed(key),
        "UpdateExpression": "ADD " + ", ".join(f"#n{index} :v{index}" for index in range(len(sums))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": _typed(values),
    }


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}
