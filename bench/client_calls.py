"""HTTP calls the client makes against the emulator vs the minimum the API limits allow.

    python -m bench.client_calls        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Prints, for 1,000 Posts of one account on each endpoint, the calls made and the minimum
(ceil(ids / ids-per-call) per window), the same with injected 5xx/429 faults, and the extra calls
spent isolating one protected Post among 25 at every position. Time is virtual: the client's
sleeps move a pinned emulator clock, so waits for the next minute cost nothing.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from local.emulator import EmulatorServer, FaultConfig, PostState, World
from xengage.api_client import Endpoint, EngagementClient, RetryPolicy, UserTokens
from xengage.observability import client_logger

IDS = 1_000
HISTORY = timedelta(days=7)  # one /historical window; the call count does not depend on its length
METRICS = {
    Endpoint.TOTALS: ["impressions", "engagements", "favorites"],
    Endpoint.HOURLY_28HR: ["impressions", "engagements"],
    Endpoint.HISTORICAL: ["impressions", "engagements"],
}


class VirtualTime:
    """Client clock and sleep that drive the emulator's pinned clock."""

    def __init__(self, emulator: EmulatorServer, start: datetime) -> None:
        self.emulator, self.moment, self.slept = emulator, start, 0.0
        emulator.set_now(start)

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.moment += timedelta(seconds=seconds)
        self.emulator.set_now(self.moment)


def minimum_calls(endpoint: Endpoint, ids: int, windows: int = 1) -> int:
    return math.ceil(ids / endpoint.max_ids) * windows


def run_endpoints(emulator: EmulatorServer, user: UserTokens, ids: list[str], start: datetime, label: str) -> None:
    for endpoint in Endpoint:
        clock = VirtualTime(emulator, start)
        client = EngagementClient(
            emulator.world.app,
            base_url=emulator.url,
            retry=RetryPolicy(max_attempts=6),
            sleep=clock.sleep,
            now=clock.now,
            rng=random.Random(5),
        )
        began = time.perf_counter()
        historical = endpoint is Endpoint.HISTORICAL
        with client:
            result = client.fetch(
                endpoint,
                ids,
                engagement_types=METRICS[endpoint],
                user=user,
                start=start - HISTORY if historical else None,
                end=start if historical else None,
            )
        elapsed = time.perf_counter() - began
        print(
            f"{label:<12} /{endpoint.value:<10} calls {result.calls:>3}  minimum {minimum_calls(endpoint, len(ids)):>3}"
            f"  retries {result.retries:>2}  429s {result.throttled:>2}  statuses {result.counts_by_status()}"
            f"  virtual wait {clock.slept:6.1f}s  wall {elapsed:5.2f}s"
        )


def isolation_costs(emulator: EmulatorServer, user_id: str, user: UserTokens, start: datetime) -> list[int]:
    """Extra calls beyond the first to find one protected Post among 25, for each of its 25 positions."""
    world = emulator.world
    public = [world.add_post(user_id, start - timedelta(hours=3 + k)).tweet_id for k in range(24)]
    protected = world.add_post(user_id, start - timedelta(days=2), state=PostState.PROTECTED).tweet_id
    extra: list[int] = []
    for position in range(25):
        ids = [*public[:position], protected, *public[position:]]
        clock = VirtualTime(emulator, start)
        with EngagementClient(world.app, base_url=emulator.url, sleep=clock.sleep, now=clock.now) as client:
            result = client.hourly_28hr(ids, user=user, engagement_types=["impressions"])
        assert result.posts[protected].status == "protected", result.posts[protected]
        assert sum(post.ok for post in result.posts.values()) == 24
        extra.append(result.calls - 1)
    return extra


def main() -> None:
    client_logger.setLevel(logging.ERROR)  # retries are counted, not narrated
    start = datetime.now(UTC).replace(second=5, microsecond=0)
    world = World.generate(users=1, posts_per_user=IDS, now=start, max_age_days=80, seed=11)
    user_id = next(iter(world.users))
    account = world.users[user_id]
    user = UserTokens(account.access_token, account.access_token_secret, user_id=user_id)
    ids = world.tweet_ids()
    with EmulatorServer(world=world, port=0, now=start) as emulator:
        print(f"{len(ids)} Posts of one account; ids per call: totals 250, 28hr 25, historical 25 (one 7-day window)")
        run_endpoints(emulator, user, ids, start, "clean")
        emulator.set_faults(FaultConfig(rate_5xx=0.05, rate_429=0.02, malformed_share=0.01, seed=3))
        run_endpoints(emulator, user, ids, start, "5xx/429/bad")
        emulator.set_faults(FaultConfig())
        extra = isolation_costs(emulator, user_id, user, start)
        bound = math.ceil(math.log2(25)) + 1
        print(
            f"one protected Post among 25, every position: extra calls max {max(extra)}, "
            f"mean {statistics.mean(extra):.2f}, min {min(extra)} (bound ceil(log2 25)+1 = {bound}; "
            f"naive one-by-one would be 25)"
        )


if __name__ == "__main__":
    main()
