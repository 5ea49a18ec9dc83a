"""Account rollups against moto: after any sequence of writes, each rollup equals the sums of its Posts' buckets."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.fakes import TICK, post_ids, scan_items
from xengage.api_client.catalog import Endpoint
from xengage.dal import MetricPoint
from xengage.dal.aws import dynamodb_table
from xengage.dal.metrics import MetricsDal, WriteStats
from xengage.dal.paging import query_pages
from xengage.dal.rollups import ROLLED_UP, rollup_hours
from xengage.dal.series import day_hours, is_day_item
from xengage.timeutil import to_iso

NOW = to_iso(TICK)
HOURS = [to_iso(TICK.replace(minute=0) - timedelta(hours=offset)) for offset in range(30)]  # spans two days
METRICS = ("impressions", "favorites", "url_clicks", "a_metric_x_added")  # one outside DAY_COLUMNS
_namespaces = itertools.count(1)

Expected = dict[tuple[str, str, str, int, str], int]  # (account, endpoint, day, hour, metric) -> sum


def items_of(table_name: str, pks: list[str]) -> list[dict[str, Any]]:
    table = dynamodb_table(table_name)
    return [item for pk in pks for item in query_pages(table, KeyConditionExpression=Key("pk").eq(pk))]


def bucket_sums(metrics_table: str, tweet_ids: list[str], accounts: set[str]) -> Expected:
    """What the rollups must hold: every rolled-up day item's hours summed by its account."""
    sums: Expected = defaultdict(int)
    pks = [f"{tweet_id}#{endpoint}" for tweet_id in tweet_ids for endpoint in ("28hr", "historical")]
    for item in items_of(metrics_table, pks):
        if is_day_item(item) and item.get("a") in accounts:
            assert item.get(ROLLED_UP), f"day item {item['pk']} {item['sk']} written without its rollup"
            endpoint = item["pk"].rsplit("#", 1)[1]
            for hour, values in day_hours(item).items():
                for name, value in values.items():
                    sums[(item["a"], endpoint, item["sk"], hour, name)] += value
    return {key: value for key, value in sums.items() if value}


def rollup_sums(rollups_table: str, accounts: set[str]) -> Expected:
    sums: Expected = {}
    for item in items_of(rollups_table, [f"{a}#{endpoint}" for a in accounts for endpoint in ("28hr", "historical")]):
        account, endpoint = item["pk"].rsplit("#", 1)
        for hour, values in rollup_hours(item).items():
            sums |= {(account, endpoint, item["sk"][:10], hour, n): v for n, v in values.items() if v}
    return sums


class RacingDal(MetricsDal):
    """A writer that another writer overtakes: right after its first read, `interloper` writes first."""

    def __init__(self, metrics_table: str, rollups_table: str, interloper: list[MetricPoint]) -> None:
        super().__init__(metrics_table, rollups_table)
        self.interloper = interloper

    def _read_days(self, keys: list[tuple[str, str]], stats: WriteStats, *, consistent: bool) -> Any:
        stored = super()._read_days(keys, stats, consistent=consistent)
        if self.interloper:
            points, self.interloper = self.interloper, []
            MetricsDal(self.table_name, self.rollups_table).put_points(points)
        return stored


values = st.dictionaries(st.sampled_from(METRICS), st.integers(min_value=0, max_value=10_000), max_size=3)
write = st.tuples(
    st.integers(0, 2),  # which Post
    st.sampled_from([Endpoint.HOURLY_28HR, Endpoint.HISTORICAL]),
    st.sampled_from(["acct-a", "acct-b", ""]),  # its account in this write ("": app-only, keeps the stored one)
    st.lists(st.tuples(st.sampled_from(HOURS), values), min_size=1, max_size=6),
)
step = st.one_of(
    st.tuples(st.just("write"), write),
    st.tuples(st.just("redeliver"), st.integers(0, 10)),
    st.tuples(st.just("race"), write, write),
    st.tuples(st.just("purge"), st.integers(0, 2)),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_rollups_equal_the_sums_of_the_buckets_after_any_writes(aws, steps):
    # Given three Posts and two accounts of their own (fresh names: moto's tables are shared across examples)
    namespace = next(_namespaces)
    tweet_ids = post_ids(3, age=timedelta(days=3), first=namespace * 10)
    accounts = {f"{namespace}-acct-a", f"{namespace}-acct-b"}

    def points(spec: tuple[int, Endpoint, str, list[tuple[str, Mapping[str, int]]]]) -> list[MetricPoint]:
        post, endpoint, account, hours = spec
        owner = f"{namespace}-{account}" if account else ""
        return [MetricPoint(tweet_ids[post], endpoint, at, dict(v), NOW, owner) for at, v in hours]

    # When a random sequence of writes, redeliveries, overtaken writers and purges is applied
    sent: list[list[MetricPoint]] = []
    for kind, *args in steps:
        if kind == "write":
            sent.append(points(args[0]))
            MetricsDal(aws.metrics_table, aws.rollups_table).put_points(sent[-1])
        elif kind == "redeliver" and sent:
            MetricsDal(aws.metrics_table, aws.rollups_table).put_points(sent[args[0] % len(sent)])
        elif kind == "race":
            first, second = points(args[0]), points(args[1])
            RacingDal(aws.metrics_table, aws.rollups_table, interloper=second).put_points(first)
            sent += [second, first]
        elif kind == "purge":
            MetricsDal(aws.metrics_table, aws.rollups_table).purge_points(tweet_ids[args[0]])

    # Then every account's rollup holds exactly the sums of the hour buckets of its Posts' day items
    assert rollup_sums(aws.rollups_table, accounts) == bucket_sums(aws.metrics_table, tweet_ids, accounts)


def test_an_overtaken_writer_adds_only_its_own_difference(aws):
    # Given a Post of one account with 10 impressions at an hour
    (tweet_id,) = post_ids(1, age=timedelta(days=3))
    hour = HOURS[0]
    MetricsDal(aws.metrics_table, aws.rollups_table).put_points(
        [MetricPoint(tweet_id, Endpoint.HOURLY_28HR, hour, {"impressions": 10}, NOW, "7")]
    )

    # When a writer reads it, another one sets 15 first, and the first one then writes 12
    interloper = [MetricPoint(tweet_id, Endpoint.HOURLY_28HR, hour, {"impressions": 15}, NOW, "7")]
    stats = RacingDal(aws.metrics_table, aws.rollups_table, interloper).put_points(
        [MetricPoint(tweet_id, Endpoint.HOURLY_28HR, hour, {"impressions": 12}, NOW, "7")]
    )

    # Then its first transaction was cancelled, it read again, and the account's hour is 12, not 10 + 5 + 2 or 17
    assert stats.transact_calls == 2 and stats.get_calls == 2
    (item,) = scan_items(aws.rollups_table)
    assert item["pk"] == "7#28hr" and rollup_hours(item) == {int(hour[11:13]): {"impressions": 12}}


def test_backfill_rolls_up_old_day_items_once(aws):
    # Given day items of two Posts of one account stored before rollups (no `r`, nothing in RollupsTable)
    from xengage.dal.migrate import migrate_rollups

    first, second = post_ids(2, age=timedelta(days=3))
    metrics = MetricsDal(aws.metrics_table, aws.rollups_table)
    metrics.put_points(
        [
            MetricPoint(tweet_id, Endpoint.HISTORICAL, at, {"favorites": 2}, NOW, "9")
            for tweet_id in (first, second)
            for at in HOURS[:3]
        ]
    )
    for item in scan_items(aws.metrics_table):
        metrics.table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE r")
    for item in scan_items(aws.rollups_table):
        dynamodb_table(aws.rollups_table).delete_item(Key={"pk": item["pk"], "sk": item["sk"]})

    # When the backfill runs, then a collector rewrites one hour, then the backfill runs again
    dry = migrate_rollups(aws.metrics_table, aws.rollups_table, dry_run=True)
    done = migrate_rollups(aws.metrics_table, aws.rollups_table)
    metrics.put_points([MetricPoint(first, Endpoint.HISTORICAL, HOURS[0], {"favorites": 5}, NOW, "9")])
    again = migrate_rollups(aws.metrics_table, aws.rollups_table)

    # Then every day item was rolled up once, and the sums stay exact
    days = len({at[:10] for at in HOURS[:3]})
    assert (dry.day_items, dry.rolled_up) == (2 * days, 0)
    assert (done.day_items, done.rolled_up) == (2 * days, 2 * days)
    assert (again.day_items, again.rolled_up) == (0, 0)
    assert rollup_sums(aws.rollups_table, {"9"}) == bucket_sums(aws.metrics_table, [first, second], {"9"})
    assert sum(rollup_sums(aws.rollups_table, {"9"}).values()) == 2 * 3 * 2 + 3


def test_a_whole_day_of_every_metric_fits_the_expression_limit(aws, monkeypatch):
    # Given a /historical answer filling a whole day of a Post with every time-series metric, with large values
    from xengage.dal import metrics as metrics_module
    from xengage.dal.series import DAY_COLUMNS

    sent: list[dict[str, Any]] = []
    real = metrics_module.transact_write
    monkeypatch.setattr(metrics_module, "transact_write", lambda actions: sent.extend(actions) or real(actions))
    (tweet_id,) = post_ids(1, age=timedelta(days=3))
    day = HOURS[-1][:10]
    values = {name: 10_000_000 + index for index, name in enumerate(DAY_COLUMNS)}
    points = [MetricPoint(tweet_id, Endpoint.HISTORICAL, f"{day}T{h:02d}:00:00Z", values, NOW, "5") for h in range(24)]

    # When it is stored
    MetricsDal(aws.metrics_table, aws.rollups_table).put_points(points)

    # Then the day's rollup is four items of six hours, each ADD expression under DynamoDB's 4 KB, and exact
    adds = [action["Update"] for action in sent if action["Update"]["TableName"] == aws.rollups_table]
    assert sorted(add["Key"]["sk"]["S"] for add in adds) == [f"{day}#{block}" for block in range(4)]
    assert all(len(add["UpdateExpression"]) < 4096 for add in adds)
    assert rollup_sums(aws.rollups_table, {"5"}) == bucket_sums(aws.metrics_table, [tweet_id], {"5"})
    assert len(rollup_sums(aws.rollups_table, {"5"})) == 24 * len(DAY_COLUMNS)


def test_the_collectors_writes_keep_the_account_rollup(aws):
    # Given an account and three of its Posts collected on /28hr by the collector
    from tests.unit.fakes import FakeEngagementClient, fake_deps, register_account
    from xengage.pipeline.collector import collect, parse_message

    deps = fake_deps(FakeEngagementClient(series_hours=5))
    register_account(deps, "42")
    tweet_ids = post_ids(3, age=timedelta(days=2))
    deps.registry.track_posts(tweet_ids, "42", now=NOW)
    body = {"endpoint": "28hr", "tweet_ids": tweet_ids, "account_id": "42", "scheduled_time": NOW}

    # When the message is collected, then delivered again
    first = collect(parse_message(body), deps)
    again = collect(parse_message(body), deps)

    # Then one transaction wrote the day items with the account's rollup, the redelivery nothing, and the
    # account's sums are those of the stored buckets
    assert (first.transactions, first.rollup_writes) == (1, 1) and first.transacted_days == 3
    assert again.transactions == again.transacted_days == again.rollup_writes == 0
    expected = bucket_sums(aws.metrics_table, tweet_ids, {"42"})
    assert expected and rollup_sums(aws.rollups_table, {"42"}) == expected
