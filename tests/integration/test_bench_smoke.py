"""Each benchmark run small, so none rots: the figures they print come from code that still runs and still means
what it says. Sizes here are the smallest that exercise every path; `make bench` runs the real ones."""

from __future__ import annotations

import pytest

from bench import client_calls, cold_start, rate_budget

pytestmark = pytest.mark.integration


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
    assert cold_start.import_seconds("collector") > 0
    # With the template's default (Tracing=PassThrough) neither the X-Ray SDK's recorder nor requests load
    quiet = cold_start.import_profile("collector", tracing=False)
    assert "aws_xray_sdk.core" not in quiet and "requests" not in quiet and "xengage.pipeline.collector" in quiet
    # With Tracing=Active the SDK loads
    assert "aws_xray_sdk.core" in cold_start.import_profile("collector", tracing=True)


def test_client_calls_runs_whole_and_isolates_the_protected_post_within_its_bound(capsys) -> None:
    client_calls.main()  # it stops on a Post not isolated, or a protected Post not reported as such
    printed = capsys.readouterr().out
    assert "1000 Posts of one account" in printed
    line = next(text for text in printed.splitlines() if text.startswith("one protected Post among 25"))
    worst = int(line.split("extra calls max ")[1].split(",")[0])
    assert 1 <= worst <= 6  # ceil(log2 25) + 1
