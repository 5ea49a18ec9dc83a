"""What a collection run left behind, read back from moto and the triggers, as data and as readable text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from local.stack.schedules import TickOutcome
from local.stack.stack import LocalStack

_DESERIALIZER = TypeDeserializer()


def scan_items(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    """Every item of a template table (local data sets are small), as plain Python values."""
    client = stack.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=stack.ids.ref(logical_id)):
        items.extend({key: _DESERIALIZER.deserialize(value) for key, value in item.items()} for item in page["Items"])
    return items


@dataclass
class CollectionSummary:
    ticks: list[dict[str, Any]] = field(default_factory=list)  # endpoint, ok, planner payload or error
    sqs: dict[str, int] = field(default_factory=dict)  # batches, messages, deleted, failures, DLQ depth
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)  # endpoint -> status -> Posts
    items: dict[str, int] = field(default_factory=dict)  # table -> item count
    metrics_by_endpoint: dict[str, int] = field(default_factory=dict)  # endpoint -> MetricsTable items
    samples: list[dict[str, Any]] = field(default_factory=list)  # a few Posts' latest /totals metrics
    usage: dict[str, Any] = field(default_factory=dict)  # month -> {"handles": [...], "calls": endpoint -> calls}

    @property
    def landed(self) -> bool:
        """Every tick ran and at least one metrics item reached DynamoDB."""
        return (
            bool(self.ticks) and all(tick["ok"] for tick in self.ticks) and sum(self.metrics_by_endpoint.values()) > 0
        )


def summarize(stack: LocalStack, ticks: list[TickOutcome], *, sample_size: int = 3) -> CollectionSummary:
    summary = CollectionSummary()
    for outcome in ticks:
        payload = outcome.invocation.payload
        summary.ticks.append(
            {
                "schedule": outcome.target.event_name,
                "scheduled_time": outcome.scheduled_time,
                "ok": outcome.invocation.ok,
                "attempts": outcome.attempts,
                "result": payload,
            }
        )
    for poller in stack.pollers:
        stats = vars(poller.stats)
        for key, value in stats.items():
            if isinstance(value, int):  # counts only (not the recent bodies kept for inspection)
                summary.sqs[key] = summary.sqs.get(key, 0) + value
    dead_letter = stack.queue_url("CollectDeadLetterQueue")
    if dead_letter:
        summary.sqs["dead_lettered"] = stack.queue_depth(dead_letter)

    resources = stack.template.resources
    # The registry holds a few items per Post (statuses on its due markers): scan it. The metrics table can hold
    # tens of thousands of hour buckets, so it is counted per tracked Post and endpoint with key queries instead.
    registry = scan_items(stack, "RegistryTable") if "RegistryTable" in resources else []
    statuses = [item for item in registry if item["sk"].startswith("DUE#") and "status" in item]
    summary.items = {"RegistryTable": len(registry)}
    summary.usage = _usage(registry)
    for (endpoint, status), posts in sorted(Counter((item["endpoint"], item["status"]) for item in statuses).items()):
        summary.statuses.setdefault(endpoint, {})[status] = posts
    if "MetricsTable" in resources:
        tracked = sorted(item["tweet_id"] for item in registry if item["sk"] == "POST")
        summary.metrics_by_endpoint = _count_metrics(stack, tracked)
        summary.items["MetricsTable"] = sum(summary.metrics_by_endpoint.values())
        summary.samples = _latest_totals(stack, tracked, sample_size)
    return summary


_ENDPOINTS = ("totals", "28hr", "historical")


def _usage(registry: list[dict[str, Any]]) -> dict[str, Any]:
    """The @handle ledger's months (`xengage.dal.usage`): handles counted (screen names) and calls by endpoint."""
    months: dict[str, Any] = {}
    for item in registry:
        if not item["pk"].startswith("USAGE#"):
            continue
        month = months.setdefault(item["pk"].removeprefix("USAGE#"), {"handles": [], "calls": {}})
        if item["sk"] == "HANDLES":
            month["handles"] = sorted(
                (item.get(f"a_{user_id}") or {}).get("handle") or user_id for user_id in item.get("handles", ())
            )
        else:
            for endpoint in _ENDPOINTS:
                month["calls"][endpoint] = month["calls"].get(endpoint, 0) + int(item.get(endpoint, 0))
    return months


def _count_metrics(stack: LocalStack, tweet_ids: list[str]) -> dict[str, int]:
    """Items per endpoint, by COUNT queries per Post (dynalite reads just that partition; on moto each one reads
    the whole table, so a moto-only stack prints this slowly)."""
    client = stack.client("dynamodb")
    table = stack.ids.ref("MetricsTable")
    counts = dict.fromkeys(_ENDPOINTS, 0)
    for tweet_id in tweet_ids:
        for endpoint in _ENDPOINTS:
            pages = client.get_paginator("query").paginate(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"{tweet_id}#{endpoint}"}},
                Select="COUNT",
            )
            counts[endpoint] += sum(page["Count"] for page in pages)
    return counts


def _latest_totals(stack: LocalStack, tweet_ids: list[str], sample_size: int) -> list[dict[str, Any]]:
    client = stack.client("dynamodb")
    samples = []
    for tweet_id in tweet_ids:
        items = client.query(
            TableName=stack.ids.ref("MetricsTable"),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{tweet_id}#totals"}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        if not items:
            continue
        item = {key: _DESERIALIZER.deserialize(value) for key, value in items[0].items()}
        samples.append(
            {
                "tweet_id": tweet_id,
                "at": item["sk"],
                "account_id": item.get("account_id") or "(app)",
                "metrics": {name: int(value) for name, value in sorted(item.get("metrics", {}).items())},
            }
        )
        if len(samples) >= sample_size:
            break
    return samples


def format_summary(summary: CollectionSummary) -> str:
    lines = ["", "== first collection =="]
    for tick in summary.ticks:
        result = tick["result"] if isinstance(tick["result"], dict) else {}
        if tick["ok"]:
            lines.append(
                f"  {tick['schedule']:<20} due {result.get('due', '?'):>4}  planned {result.get('planned', '?'):>4}"
                f"  messages {result.get('messages', '?'):>3}  (scheduled_time {tick['scheduled_time']})"
            )
        else:
            lines.append(
                f"  {tick['schedule']:<20} FAILED after {tick['attempts']} attempt(s): {result.get('errorMessage')}"
            )
    sqs = summary.sqs
    lines.append(
        f"  collector: {sqs.get('batches', 0)} batches, {sqs.get('messages', 0)} messages, "
        f"{sqs.get('deleted', 0)} done, {sqs.get('item_failures', 0)} item failures, "
        f"{sqs.get('function_errors', 0)} function errors, {sqs.get('dead_lettered', 0)} dead-lettered"
    )
    lines.append("== Posts by status ==")
    for endpoint, statuses in summary.statuses.items():
        text = ", ".join(f"{status} {count}" for status, count in statuses.items())
        lines.append(f"  {endpoint:<11} {text}")
    lines.append("== items in DynamoDB ==")
    lines.append("  " + ", ".join(f"{table} {count}" for table, count in summary.items.items()))
    lines.append("  MetricsTable by endpoint: " + ", ".join(f"{k} {v}" for k, v in summary.metrics_by_endpoint.items()))
    for month, usage in sorted(summary.usage.items()):
        calls = ", ".join(f"{endpoint} {made}" for endpoint, made in usage["calls"].items())
        handles = ", ".join(f"@{handle}" for handle in usage["handles"]) or "none"
        lines.append(f"== @handle usage {month} (GET /usage) ==")
        lines.append(f"  {len(usage['handles'])} unique @handles ({handles}); calls: {calls or 'none'}")
    if summary.samples:
        lines.append("== sample /totals metrics ==")
        for sample in summary.samples:
            metrics = ", ".join(f"{name}={value}" for name, value in sample["metrics"].items())
            lines.append(f"  {sample['tweet_id']} ({sample['account_id']}) at {sample['at']}: {metrics}")
    return "\n".join(lines)
