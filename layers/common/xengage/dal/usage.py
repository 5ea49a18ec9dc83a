"""The @handle billing ledger in RegistryTable: per UTC month, the accounts whose tokens signed an Engagement API call,
and the calls made by endpoint and day (docs/DESIGN.md, "The @handle billing guard").

- `pk=USAGE#{YYYY-MM}`, `sk=HANDLES`: `handles` (a string set of user ids: its size is the month's unique @handles)
  and per account `a_{user_id}` (map: `first_call_at`, `handle` = the screen name, for display).
- `pk=USAGE#{YYYY-MM}`, `sk=CALLS#{YYYY-MM-DD}`: `totals`, `28hr`, `historical`: calls that day (numbers, ADDed).

Counting a handle is one UpdateItem that ADDs the id to the set (adding a member twice changes nothing, so retries,
redeliveries and concurrent collectors never count twice). With a cap, the same write holds the condition that the
id is in the set already or the set is smaller than the cap: DynamoDB applies writes to one item one at a time, so
two collectors taking the last free slot cannot both get it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from xengage.api_client.catalog import Endpoint
from xengage.dal.aws import dynamodb_table, is_conditional_failure
from xengage.dal.paging import plain, query_pages

USAGE_PREFIX: Final = "USAGE#"
HANDLES_SK: Final = "HANDLES"
CALLS_PREFIX: Final = "CALLS#"
ACCOUNT_ATTRIBUTE_PREFIX: Final = "a_"
# Within the month's item every handle's first call is kept: ~60 bytes each, so the 400 KB item holds ~6,000.
# The write answers the item as it was (ALL_OLD: not billed as a read) to tell a new handle from a known one.
_CAPPED_WHEN: Final = "contains(handles, :id) OR attribute_not_exists(handles) OR size(handles) < :cap"


@dataclass(frozen=True, slots=True)
class HandleCount:
    """The outcome of counting one account's handle in a month."""

    counted: bool  # the handle is in the month's set (newly or already): calls may go
    new: bool = False  # this write added it
    unique: int | None = None  # the month's unique handles after the write (None: refused, not read)


@dataclass(frozen=True, slots=True)
class AccountUsage:
    account_id: str
    handle: str | None
    first_call_at: str


@dataclass(slots=True)
class MonthUsage:
    month: str
    accounts: list[AccountUsage] = field(default_factory=list)  # first call first
    calls_by_day: dict[str, dict[str, int]] = field(default_factory=dict)  # YYYY-MM-DD -> endpoint -> calls

    @property
    def unique_handles(self) -> int:
        return len(self.accounts)


def month_key(month: str) -> dict[str, str]:
    return {"pk": f"{USAGE_PREFIX}{month}", "sk": HANDLES_SK}


class UsageDal:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Any:
        return dynamodb_table(self.table_name)

    def count_handle(self, month: str, account_id: str, handle: str | None, *, at: str, cap: int | None) -> HandleCount:
        """Add the account to the month's set (idempotent); with a `cap`, only while the set has room for it."""
        first: dict[str, str] = {"first_call_at": at, **({"handle": handle} if handle else {})}
        arguments: dict[str, Any] = {
            "UpdateExpression": "ADD handles :ids SET #account = if_not_exists(#account, :first)",
            "ExpressionAttributeNames": {"#account": f"{ACCOUNT_ATTRIBUTE_PREFIX}{account_id}"},
            "ExpressionAttributeValues": {":ids": {account_id}, ":first": first},
            "ReturnValues": "ALL_OLD",
        }
        if cap is not None:
            arguments["ConditionExpression"] = _CAPPED_WHEN
            arguments["ExpressionAttributeValues"].update({":id": account_id, ":cap": cap})
        try:
            response = self.table.update_item(Key=month_key(month), **arguments)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return HandleCount(counted=False)  # not in the set, and the set is full
            raise
        before = set((response.get("Attributes") or {}).get("handles") or ())
        new = account_id not in before
        return HandleCount(counted=True, new=new, unique=len(before) + (1 if new else 0))

    def add_calls(self, day: str, calls: Mapping[Endpoint, int]) -> None:
        """Count the calls made to each endpoint on `day` (YYYY-MM-DD), in that day's item of its month."""
        names = {f"#e{index}": endpoint.value for index, endpoint in enumerate(calls)}
        self.table.update_item(
            Key={"pk": f"{USAGE_PREFIX}{day[:7]}", "sk": f"{CALLS_PREFIX}{day}"},
            UpdateExpression="ADD " + ", ".join(f"#e{index} :c{index}" for index in range(len(calls))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":c{index}": made for index, made in enumerate(calls.values())},
        )

    def month(self, month: str) -> MonthUsage:
        """The month's handles and calls: one Query on its partition (the handles item and one item a day)."""
        usage = MonthUsage(month=month)
        for item in query_pages(self.table, KeyConditionExpression=Key("pk").eq(f"{USAGE_PREFIX}{month}")):
            sort_key = str(item["sk"])
            if sort_key == HANDLES_SK:
                usage.accounts = _accounts(item)
            elif sort_key.startswith(CALLS_PREFIX):
                calls: dict[str, int] = {e.value: int(plain(item[e.value])) for e in Endpoint if e.value in item}
                usage.calls_by_day[sort_key.removeprefix(CALLS_PREFIX)] = calls
        return usage


def _accounts(item: Mapping[str, Any]) -> list[AccountUsage]:
    """The set's members with what was kept of their first call (a member without it still counts)."""
    accounts = []
    for account_id in sorted(item.get("handles") or ()):
        first = item.get(f"{ACCOUNT_ATTRIBUTE_PREFIX}{account_id}") or {}
        accounts.append(AccountUsage(account_id, first.get("handle"), str(first.get("first_call_at", ""))))
    return sorted(accounts, key=lambda account: (account.first_call_at, account.account_id))
