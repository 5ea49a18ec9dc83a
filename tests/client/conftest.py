"""Fixtures of the client tests: obviously fake credentials and a clock whose sleep only moves time."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.emulator import BRAND_USER_ID, CLIENT_USER_ID, EmulatorServer, FaultConfig, default_world
from xengage.api_client import AppCredentials, EngagementClient, RetryPolicy, UserTokens


class FakeClock:
    """now() and sleep() for the client: sleeping advances the clock instantly and is recorded."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, "the client never sleeps a negative time"
        self.sleeps.append(seconds)
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 25, 18, 0, 10, tzinfo=UTC))


@pytest.fixture
def app() -> AppCredentials:
    return AppCredentials(
        consumer_key="test-consumer-key", consumer_secret="test-consumer-secret", bearer_token="AAAA-test"
    )


@pytest.fixture
def owner() -> UserTokens:
    return UserTokens(
        access_token="1001-test-access-token",
        access_token_secret="test-access-secret",
        user_id="1001",
        screen_name="owner",
    )


# --- the emulator over real HTTP ----------------------------------------------------------------------

EMULATOR_START = datetime.now(UTC).replace(second=5, microsecond=0)


class SharedTime(FakeClock):
    """Virtual time shared by the client and a pinned emulator: the client's sleeps move both clocks,
    so waits for the next minute cost nothing and rate-limit windows still turn over."""

    def __init__(self, emulator: EmulatorServer) -> None:
        super().__init__(EMULATOR_START)
        self.emulator = emulator
        emulator.set_now(self.moment)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.emulator.set_now(self.moment)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(world=default_world(EMULATOR_START), port=0, now=EMULATOR_START) as emu:
        yield emu


@pytest.fixture
def emu(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The module's emulator with a clean log, no faults, no limit and its clock pinned."""
    emulator.clear_log()
    emulator.set_faults(FaultConfig())
    emulator.set_per_minute_limit(None)
    yield emulator
    emulator.set_now(EMULATOR_START)
    assert not emulator.service.faults.pending_script(), "a test left scripted faults unused"


@pytest.fixture
def shared_time(emu: EmulatorServer) -> SharedTime:
    return SharedTime(emu)


@pytest.fixture
def make_client(emu: EmulatorServer, shared_time: SharedTime) -> Iterator[Callable[..., EngagementClient]]:
    """EngagementClient factory bound to the emulator and the shared virtual clock."""
    clients: list[EngagementClient] = []

    def build(**overrides: Any) -> EngagementClient:
        options: dict[str, Any] = {
            "base_url": emu.url,
            "timeout": (2.0, 5.0),
            "retry": RetryPolicy(base_delay=0.2, max_delay=2.0),
            "sleep": shared_time.sleep,
            "now": shared_time.now,
            "rng": random.Random(3),
        }
        options.update(overrides)
        client = EngagementClient(emu.world.app, **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def _tokens_of(emu: EmulatorServer, user_id: str) -> UserTokens:
    user = emu.world.users[user_id]
    return UserTokens(user.access_token, user.access_token_secret, user_id=user.user_id, screen_name=user.screen_name)


@pytest.fixture
def brand(emu: EmulatorServer) -> UserTokens:
    return _tokens_of(emu, BRAND_USER_ID)


@pytest.fixture
def agency_client(emu: EmulatorServer) -> UserTokens:
    return _tokens_of(emu, CLIENT_USER_ID)
