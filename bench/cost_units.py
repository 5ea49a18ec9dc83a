"""What one collection of one Post costs in DynamoDB units, log bytes and seconds, measured on the real write path.

    (used by bench.cost; it has no figures of its own)

Setup: `bench.pipeline_writes.Pipeline` (moto in-process, tables, queue and app secret from template.yaml, the real
planner and collector, the real EngagementClient against the emulator on a virtual clock) with one registered
account. For each age band of the cadence (`sample_bands`), a sample of Posts of that age is tracked, collected once
at a warm-up tick (tick0) and once more a day later (tick1): only tick1 is measured, so what it writes is what a
collection writes once a Post's items exist (an UpdateItem is charged on the larger of the item before and after;
each item of a TransactWriteItems twice).
Every DynamoDB request is metered by DynamoDB's rules (`CapacityMeter`): write units ceil(size / 1 KB) per item
written, plus the writes of each global secondary index whose entry changes (a changed index key is a delete and a
put); read units ceil(size / 4 KB), halved for eventually consistent reads, a Query's items summed per page. Item
sizes are moto's own `Item.size()` (attribute names + values) on the items moto holds before and after each write.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from bench.client_calls import VirtualTime
from bench.common import fake_aws_env, quiet_library_output, scoped_env
from bench.pipeline_writes import EndpointRun, Pipeline, register_account
from tests.aws_fixtures import STACK_NAME, TABLES, AwsResources, create_resources, load_template

if TYPE_CHECKING:
    from local.emulator import World
    from xengage.api_client import Endpoint

# tick1 - tick0: one day covers every cadence interval, so each band's Posts are due again at tick1.
MEASURE_GAP: Final = timedelta(days=1)
DYNAMODB_ITEM_OVERHEAD: Final = 100  # bytes DynamoDB adds to each item's stored size (storage billing)
WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096
_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
TRANSACTION_FACTOR: Final = 2  # DynamoDB bills each item of a TransactWriteItems twice (prepare and commit)
_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query"})


@dataclass(frozen=True)
class IndexSchema:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | INCLUDE | KEYS_ONLY
    included: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    logical_id: str
    keys: tuple[str, ...]
    indexes: tuple[IndexSchema, ...]


def table_schemas(template: Mapping[str, Any]) -> dict[str, TableSchema]:
    """Key attributes and global secondary indexes of each table in the template, by the name moto gives it."""
    schemas = {}
    for logical_id in TABLES:
        properties = template["Resources"][logical_id]["Properties"]
        indexes = tuple(
            IndexSchema(
                index["IndexName"],
                tuple(key["AttributeName"] for key in index["KeySchema"]),
                index["Projection"]["ProjectionType"],
                tuple(index["Projection"].get("NonKeyAttributes", ())),
            )
            for index in properties.get("GlobalSecondaryIndexes", ())
        )
        keys = tuple(key["AttributeName"] for key in properties["KeySchema"])
        schemas[f"{STACK_NAME}-{logical_id}"] = TableSchema(logical_id, keys, indexes)
    return schemas


@dataclass(frozen=True)
class Stored:
    """What a write is charged on: the item's size and each index entry (its key, size and projected values)."""

    size: int
    entries: dict[str, tuple[str, int, str]]


def _stored(item: Any, schema: TableSchema) -> Stored | None:
    if item is None:
        return None
    attrs = item.attrs
    entries = {}
    for index in schema.indexes:
        if not all(key in attrs for key in index.keys):
            continue  # sparse: no entry in this index
        names = set(schema.keys) | set(index.keys)
        names |= set(attrs) if index.projection == "ALL" else set(index.included) & set(attrs)
        size = sum(len(name.encode()) + attrs[name].size() for name in names)
        key = json.dumps([attrs[name].to_json() for name in index.keys], default=str)
        values = json.dumps({name: attrs[name].to_json() for name in sorted(names)}, default=str)
        entries[index.name] = (key, size, values)
    return Stored(item.size(), entries)


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def _index_write_units(before: tuple[str, int, str] | None, after: tuple[str, int, str] | None) -> int:
    if before is None and after is None:
        return 0
    if before is None or after is None:
        return _units((before or after)[1], WRITE_UNIT_BYTES)  # type: ignore[index]
    if before[0] != after[0]:
        return _units(before[1], WRITE_UNIT_BYTES) + _units(after[1], WRITE_UNIT_BYTES)  # delete + put
    if before[2] == after[2]:
        return 0
    return _units(max(before[1], after[1]), WRITE_UNIT_BYTES)


def write_units(before: Stored | None, after: Stored | None) -> int:
    """Write units of one item written: the table's (larger of before and after) plus each index's."""
    sizes = [stored.size for stored in (before, after) if stored is not None]
    units = _units(max(sizes, default=0), WRITE_UNIT_BYTES)
    names = set(before.entries if before else ()) | set(after.entries if after else ())
    for name in names:
        units += _index_write_units(
            before.entries.get(name) if before else None, after.entries.get(name) if after else None
        )
    return units


def typed_size(item: Mapping[str, Any]) -> int:
    """DynamoDB size of an item in its wire form ({"attr": {"S": ...}}), by moto's rules."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    return int(DynamoType({"M": dict(item)}).size())


def read_units(operation: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    """Read units of one read request, from its answer."""
    if operation == "BatchGetItem":
        total = 0.0
        for table, items in response.get("Responses", {}).items():
            factor = 1.0 if request["RequestItems"][table].get("ConsistentRead") else 0.5
            total += sum(_units(typed_size(item), READ_UNIT_BYTES) * factor for item in items)
        return total
    factor = 1.0 if request.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return _units(typed_size(response.get("Item", {})), READ_UNIT_BYTES) * factor
    return _units(sum(typed_size(item) for item in response.get("Items", [])), READ_UNIT_BYTES) * factor


class CapacityMeter:
    """Write/read requests and units of every DynamoDB request made through `clients` (botocore hooks)."""

    def __init__(self, schemas: Mapping[str, TableSchema], *clients: Any) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self.backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        self.schemas = schemas
        self.units: Counter[str] = Counter()
        self._lock = threading.Lock()  # the planner leases from a thread pool
        self._hooks = [(client.meta.events, client.meta.service_model.endpoint_prefix) for client in clients]
        for events, prefix in self._hooks:
            events.register(f"before-call.{prefix}", self._before)
            events.register(f"after-call.{prefix}", self._after)

    def take(self) -> Counter[str]:
        with self._lock:
            taken, self.units = self.units, Counter()
        return taken

    def close(self) -> None:
        for events, prefix in self._hooks:
            events.unregister(f"before-call.{prefix}", self._before)
            events.unregister(f"after-call.{prefix}", self._after)

    def _item(self, table: str, key: dict[str, Any]) -> Stored | None:
        return _stored(self.backend.get_item(table, key), self.schemas[table])

    def _written(self, operation: str, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if operation == "BatchWriteItem":
            for table, requests in body["RequestItems"].items():
                for request in requests:
                    put = request.get("PutRequest", {}).get("Item")
                    key = put if put is not None else request["DeleteRequest"]["Key"]
                    yield table, {name: key[name] for name in self.schemas[table].keys}
        elif operation == "TransactWriteItems":
            for action in body["TransactItems"]:
                for write in action.values():
                    key = write.get("Key") or write["Item"]
                    yield write["TableName"], {name: key[name] for name in self.schemas[write["TableName"]].keys}
        else:
            table = body["TableName"]
            key = body.get("Key") or body["Item"]
            yield table, {name: key[name] for name in self.schemas[table].keys}

    def _before(self, model: Any = None, params: Any = None, context: Any = None, **_: Any) -> None:
        if model is None or model.name not in _WRITES | _READS:
            return
        body = json.loads(params["body"] or "{}")
        context["cost_request"] = body
        if model.name in _WRITES:
            context["cost_before"] = [
                (table, key, self._item(table, key)) for table, key in self._written(model.name, body)
            ]

    def _after(self, model: Any = None, http_response: Any = None, context: Any = None, **_: Any) -> None:
        if model is None or "cost_request" not in context or http_response.status_code != 200:
            return
        counted: Counter[str] = Counter()
        if model.name in _WRITES:
            counted["write_requests"] += 1
            factor = TRANSACTION_FACTOR if model.name == "TransactWriteItems" else 1
            for table, key, before in context["cost_before"]:
                units = write_units(before, self._item(table, key)) * factor
                counted["write_units"] += units
                counted[f"write_units {table}"] += units  # by table too, for the per-table figures
                counted[f"item_writes {table}"] += 1
        else:
            counted["read_requests"] += 1
            answer = json.loads(http_response.content or b"{}")
            counted["read_units"] += read_units(model.name, context["cost_request"], answer)  # type: ignore[assignment]
        with self._lock:
            self.units.update(counted)


def table_bytes(backend: Any, table: str, tweet_ids: Sequence[str] = ()) -> int:
    """Stored size of a table as DynamoDB bills it, each item's size plus 100 bytes (only these Posts' items when
    `tweet_ids` are given: MetricsTable keys start with the id)."""
    items = backend.get_table(table).all_items()
    if tweet_ids:
        prefixes = tuple(tweet_ids)
        items = [item for item in items if str(item.hash_key.value).startswith(prefixes)]
    return sum(item.size() + DYNAMODB_ITEM_OVERHEAD for item in items)


@dataclass
class TickUnits:
    """One measured tick of one endpoint for one band's sample."""

    posts: int = 0
    messages: int = 0
    calls: int = 0
    units: Counter[str] = field(default_factory=Counter)  # planner and collector together
    plan_seconds: float = 0.0
    collect_seconds: float = 0.0
    plan_log_bytes: int = 0  # the planner's log lines and metrics blob for this tick
    collect_log_bytes: int = 0  # the collector's log lines, all messages
    metrics_blob_bytes: int = 0  # the largest EMF blob one message flushed (one per invocation)
    stored_bytes: int = 0  # MetricsTable growth

    def per_post(self, name: str) -> float:
        return self.units[name] / self.posts


@dataclass(frozen=True)
class Band:
    """Ages [low, high) over which no endpoint's cadence changes; its sample is `age` old at tick1."""

    label: str
    age: timedelta
    low: timedelta = timedelta(0)
    high: timedelta = timedelta.max


@dataclass
class Measurement:
    sample: int
    ticks: dict[tuple[str, str], TickUnits]  # (endpoint, band label)
    registry_bytes_per_post: float  # RegistryTable per tracked Post (the Post, its markers and their statuses)
    seconds: float


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The layer's log lines at INFO (the template's default LogLevel) into a buffer instead of stdout."""
    from xengage.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    logger.setLevel("INFO")
    try:
        yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
        quiet_library_output()


def metrics_blob_bytes() -> int:
    """Size of the EMF blob `log_metrics` would print for what was counted since the last call; clears it."""
    from aws_lambda_powertools.metrics.exceptions import SchemaValidationError

    from xengage.observability import metrics

    try:
        return len(json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))) + 1
    except SchemaValidationError:
        return 0  # nothing counted: log_metrics prints nothing
    finally:
        metrics.clear_metrics()


def measure(bands: list[Band], sample: int) -> Measurement:
    """Collect `sample` Posts of each band's age twice and meter the second collection of each endpoint."""
    from moto import mock_aws

    quiet_library_output()
    started = time.perf_counter()
    with scoped_env(fake_aws_env()), mock_aws():
        resources = create_resources()
        with scoped_env(resources.environment()):
            ticks, registry_bytes = _measure(resources, bands, sample)
    return Measurement(sample, ticks, registry_bytes, time.perf_counter() - started)


def _measure(resources: AwsResources, bands: list[Band], sample: int) -> tuple[dict[tuple[str, str], TickUnits], float]:
    from local.emulator import EmulatorServer, World
    from xengage.dal.aws import dynamodb_client

    tick1 = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)
    tick0 = tick1 - MEASURE_GAP
    world = World.generate(users=1, posts_per_user=0, now=tick1, seed=7)
    with EmulatorServer(world=world, port=0, now=tick0) as emulator:
        account_id = ""
        ticks: dict[tuple[str, str], TickUnits] = {}
        for band in bands:
            # a fresh client each band: its pacing would not survive the clock going back to tick0
            pipeline = Pipeline(resources, emulator, VirtualTime(emulator, tick0))
            pipeline.counter.close()
            account_id = account_id or register_account(pipeline, world, tick0)
            meter = CapacityMeter(table_schemas(load_template()), pipeline.dynamodb, dynamodb_client())
            for endpoint, measured in _measure_band(pipeline, meter, world, account_id, band, sample, tick1).items():
                ticks[(endpoint, band.label)] = measured
            meter.close()
        registry_bytes = table_bytes(meter.backend, resources.registry_table) / (len(bands) * sample)
    return ticks, registry_bytes


def _at(pipeline: Pipeline, moment: datetime) -> None:
    pipeline.clock.moment = moment
    pipeline.emulator.set_now(moment)


def _measure_band(
    pipeline: Pipeline, meter: CapacityMeter, world: World, account_id: str, band: Band, sample: int, tick1: datetime
) -> dict[str, TickUnits]:
    from xengage.api_client import Endpoint
    from xengage.timeutil import floor_hour, to_iso

    tick0 = tick1 - MEASURE_GAP
    ids = [world.add_post(account_id, tick1 - band.age).tweet_id for _ in range(sample)]
    pipeline.deps.registry.track_posts(ids, account_id, now=to_iso(tick0))
    if band.age > 2 * MEASURE_GAP:  # steady state: the hours before the warm-up day are stored already
        for tweet_id in ids:
            pipeline.deps.registry.checkpoint_hours(
                tweet_id, Endpoint.HISTORICAL, last_hour_collected=to_iso(floor_hour(tick0 - MEASURE_GAP))
            )
    _at(pipeline, tick0 + timedelta(minutes=1))
    for endpoint in Endpoint:
        warm_up = EndpointRun(endpoint.value, endpoint.max_ids)
        pipeline.plan(warm_up, tick0)
        pipeline.collect(warm_up)
    _at(pipeline, tick1 + timedelta(minutes=1))
    measured = {}
    for endpoint in Endpoint:
        tick = measure_tick(pipeline, meter, endpoint, tick1, ids)
        if tick.posts:
            measured[endpoint.value] = tick
    return measured


def measure_tick(
    pipeline: Pipeline, meter: CapacityMeter, endpoint: Endpoint, tick: datetime, tweet_ids: Sequence[str]
) -> TickUnits:
    """Plan and collect one tick of one endpoint, metering DynamoDB, logs and time (the one place that follows the
    write path: whatever the planner and collector write, this counts)."""
    from xengage.pipeline.collector import collect, parse_message
    from xengage.pipeline.planner import plan

    measured = TickUnits()
    metrics_before = table_bytes(meter.backend, pipeline.resources.metrics_table, tweet_ids)
    meter.take()
    with captured_logs() as logs:
        started = time.perf_counter()
        summary = plan(endpoint, tick, deps=pipeline.planner_deps)
        measured.plan_seconds = time.perf_counter() - started
        measured.plan_log_bytes = len(logs.getvalue().encode()) + metrics_blob_bytes()
        logs.seek(0)
        logs.truncate()
        started = time.perf_counter()
        for body in pipeline.received():
            measured.calls += collect(parse_message(body), pipeline.deps).calls
            measured.messages += 1
            measured.metrics_blob_bytes = max(measured.metrics_blob_bytes, metrics_blob_bytes())
        measured.collect_seconds = time.perf_counter() - started
        measured.collect_log_bytes = len(logs.getvalue().encode())
    measured.posts = summary.planned
    measured.units = meter.take()
    measured.stored_bytes = table_bytes(meter.backend, pipeline.resources.metrics_table, tweet_ids) - metrics_before
    return measured
