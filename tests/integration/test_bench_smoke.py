"""Each benchmark run small, so none rots: the figures they print come from code that still runs and still means
what it says. Sizes here are the smallest that exercise every path; `make bench` runs the real ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import (
    api_latency,
    bulk_tracking,
    client_calls,
    cold_start,
    collector_memory,
    cost,
    live_jobs,
    pipeline_writes,
    planner_memory,
    rate_budget,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _log_levels_restored() -> Iterator[None]:
    """The benchmarks quiet the library's loggers (bench.common.quiet_library_output): later tests in this worker
    get them back as they were."""
    from xengage.observability import client_logger, logger

    levels = (logger.log_level, client_logger.level)
    yield
    logger.setLevel(levels[0])
    client_logger.setLevel(levels[1])


def test_rate_budget_collectors_sharing_the_budget_draw_no_429_where_pacing_alone_does() -> None:
    setup = rate_budget.Setup(limit=3, window_seconds=1.0, windows=2, concurrency=(4,))
    alone, shared = rate_budget.run(setup)
    # Four collectors pacing alone on a limit of three overdraw it at once; sharing the budget, they never do
    assert alone.mode == "alone" and alone.throttled > 0
    assert shared.mode == "shared" and shared.throttled == 0
    # And the shared budget still lets calls through, each window at most the limit
    assert 0 < shared.calls <= setup.limit * setup.windows
    assert shared.budget_calls >= shared.calls


def test_cold_start_handlers_import_and_the_xray_sdk_loads_only_with_tracing_active() -> None:
    with cold_start.built_layer() as layer:
        # The layer copy is the library with its bytecode, as the layer Makefile leaves it
        assert (layer / "xengage" / "__pycache__").is_dir()
        assert cold_start.import_seconds("collector", layer) > 0
        # With the template's default (Tracing=PassThrough) neither the X-Ray SDK's recorder nor requests load
        quiet = cold_start.import_profile("collector", layer, tracing=False)
        assert "aws_xray_sdk.core" not in quiet and "requests" not in quiet and "xengage.pipeline.collector" in quiet
        # With Tracing=Active the SDK loads
        assert "aws_xray_sdk.core" in cold_start.import_profile("collector", layer, tracing=True)
    with cold_start.built_layer(bytecode=False) as bare:
        assert not list(bare.rglob("*.pyc"))


def test_client_calls_runs_whole_and_isolates_the_protected_post_within_its_bound(capsys) -> None:
    client_calls.main()  # it stops on a Post not isolated, or a protected Post not reported as such
    printed = capsys.readouterr().out
    assert "1000 Posts of one account" in printed
    line = next(text for text in printed.splitlines() if text.startswith("one protected Post among 25"))
    worst = int(line.split("extra calls max ")[1].split(",")[0])
    assert 1 <= worst <= 6  # ceil(log2 25) + 1


def test_cost_model_follows_the_cadence_and_scales_with_the_posts(capsys) -> None:
    small, large = cost.main(["--posts", "1000", "10000", "--sample", "1"])
    printed = capsys.readouterr().out
    assert f"checked {cost.PRICES_DATE}" in printed
    assert small.dollars > 0
    # CloudWatch (metrics, alarms, the dashboard) is a fixed cost: the same for ten times the Posts
    cloudwatch = [sum(ln.dollars for ln in result.lines if ln.service == "CloudWatch") for result in (small, large)]
    assert cloudwatch[0] > 0 and cloudwatch[0] == cloudwatch[1]
    # Ten times the Posts: ten times the writes (the measured units per collection scale with collections)
    writes = [sum(load.units["write_units"] for load in result.loads) for result in (small, large)]
    assert writes[0] > 0 and writes[1] == pytest.approx(10 * writes[0], rel=0.01)
    # /totals calls follow from the cadence: every Post under 48 h old is due each tick, so a tick holds at least
    # the Posts that arrived in the last 48 hours
    totals = next(load for load in large.loads if load.endpoint == "totals")
    assert totals.posts_due_per_tick >= large.mix.posts * 2 / large.mix.age_days
    assert totals.calls_per_tick >= totals.posts_due_per_tick / 250
    # /historical: each account Post is due once a day, grouped 25 to a call
    historical = next(load for load in large.loads if load.endpoint == "historical")
    account_posts = large.mix.posts * large.mix.account_share
    assert historical.posts_due_per_tick == pytest.approx(account_posts, rel=0.01)
    assert historical.calls_per_tick >= account_posts / 25


def test_pipeline_writes_an_hourly_tick_writes_only_what_changed_and_settles_each_post_once(capsys) -> None:
    hourly = pipeline_writes.main(posts=30)
    printed = capsys.readouterr().out
    posts = hourly.run.posts_delivered
    metrics_units = hourly.units[f"write_units {hourly.metrics_table}"]
    registry_writes = sum(n for key, n in hourly.units.items() if key.startswith("item_writes") and "Registry" in key)
    # Every Post collected an hour later, its day items rewritten for the hours that moved only (≤ 3 WCU a Post),
    # and one settling write a Post (status, due marker and latest totals together)
    assert posts == 30 and hourly.run.statuses == {"ok": 30}
    assert 0 < metrics_units <= 3 * posts
    assert registry_writes == posts + hourly.run.messages  # and the account's last success, once a message
    # And the same tick rerun or redelivered changes nothing
    assert "(unchanged)" in printed and "0 API calls" in printed


def test_collector_memory_runs_the_handler_on_planned_batches_and_measures_its_own_process() -> None:
    chosen = collector_memory.scenarios(
        totals_accounts=2, totals_posts=10, historical_posts=3, window_days=2, historical_batch=None, hourly_posts=None
    )
    # run() stops when a Post is not collected: a failed record, a marker still leased, a status other than ok,
    # items written but not stored, or calls the emulator did not see
    totals, historical = collector_memory.run(chosen)
    # Two accounts' Posts go in a message each, both in one SQS event (BatchSize 5), one call a message
    assert (totals.messages, totals.invocations, totals.api_calls) == (2, 1, 2)
    assert totals.collected == 20 and totals.points_stored == 20
    # /historical asks from the Posts' creation hour: one 48-hour window, an hourly item a Post and hour
    assert historical.window_hours == [48] and historical.api_calls == 1
    assert historical.points_stored == 3 * 48 and historical.items_stored < 3 * 48
    for result in (totals, historical):
        assert result.peak >= result.baseline > 0 and result.peak_rss >= result.peak
        assert result.cpu_seconds > 0 and result.memory_size > 0
    # The recommendation is a candidate size at least twice the measured peak
    chosen_mb = collector_memory.recommend([totals, historical])
    assert chosen_mb in collector_memory.CANDIDATE_MB
    assert chosen_mb * (1 << 20) >= collector_memory.HEADROOM * max(totals.peak_rss, historical.peak_rss)


def test_planner_memory_plans_every_seeded_marker_at_each_size_and_leases_hold() -> None:
    small, large = planner_memory.main(sizes=(300, 600), lease_sizes=(50,))  # it stops on a lease that does not hold
    # Every seeded marker is due and planned, 250 ids a message, without one lease written in the measured runs
    for run in (small, large):
        assert run.due == run.leases == run.markers and run.messages == -(-run.markers // 250)
        assert run.other_calls["UpdateItem"] == 0 and run.due_pages >= 16  # one page of each shard at least
        assert run.traced_peak > 0


def test_api_latency_reads_every_stored_hour_through_the_api_in_pages() -> None:
    # 1,200 hours (50 day items): enough for the 500- and 1,000-point pages it checks, a few requests of each kind
    measured = api_latency.main(
        api_latency.Run(hours=1_200, max_requests=2, budget_seconds=1.0, min_requests=1, cold_starts=1)
    )
    # It stops on a page with the wrong number of points, or a year read through next_cursor missing any
    assert len(measured["(c) whole year via next_cursor"].http_ms) >= 1
    default_page = measured["(a) default page, limit 500"]
    assert default_page.function_ms and all(
        0 < fn <= http for fn, http in zip(default_page.function_ms, default_page.http_ms, strict=True)
    )


def test_bulk_tracking_sends_json_and_csv_until_stored_and_again_finds_nothing_new() -> None:
    # It stops on counts that do not add up, ids not all new over the rounds, or a repeat that finds anything new
    measured = bulk_tracking.main(count=40)
    assert [m.label for m in measured] == [
        "JSON, app (2 items a Post)",
        "JSON, app (2 items a Post), again",
        "CSV, account (4 items a Post)",
        "CSV, account (4 items a Post), again",
    ]
    first, again = measured[2], measured[3]
    assert first.rounds[-1][0] == 200 and first.counts == {"new": 40, "already_tracked": 0, "rejected": 0}
    assert len(again.rounds) == 1 and again.counts == {"new": 0, "already_tracked": 40, "rejected": 0}


def test_live_jobs_measures_live_queries_and_jobs_at_the_minimum_of_calls() -> None:
    # It stops on any answer but 200/202 or a job not done in time
    from bench.live_jobs import Sizes
    from xengage.api_client.catalog import Endpoint

    sizes = Sizes(
        posts=60,
        live=((Endpoint.TOTALS, 60, None), (Endpoint.HISTORICAL, 30, 2)),
        jobs=((Endpoint.TOTALS, 60, None), (Endpoint.HISTORICAL, 3, 60)),
    )
    measured = live_jobs.main(sizes)
    assert [row.status for row in measured["live"]] == [200, 200]
    assert [row.what for row in measured["jobs"]] == ["job /totals 60 ids", "job /historical 3 ids x 60 days"]
    # Every row asked X exactly the fewest calls its ids and windows need
    assert [(row.calls, row.minimum) for row in measured["live"] + measured["jobs"]] == [(1, 1), (2, 2), (1, 1), (3, 3)]
