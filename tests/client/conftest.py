"""Fixtures of the client tests: obviously fake credentials and a clock whose sleep only moves time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xengage.api_client import AppCredentials, UserTokens


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
