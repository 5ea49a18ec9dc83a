"""Helpers for the emulator tests: fixed clock, plain HTTP calls with requests / requests_oauthlib.

The tests talk to the emulator only over HTTP with `requests` / `requests_oauthlib`, never through the
project's client, so they check the emulator against the documented API and not against our own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from requests_oauthlib import OAuth1

from local.emulator import (
    BRAND_USER_ID,
    CLIENT_USER_ID,
    UNRELATED_USER_ID,
    EmulatorServer,
    PostState,
    World,
)

# A fixed "now" for the emulator clock, so ages and windows are the same on every run. OAuth timestamps
# still use real time (oauthlib checks them against the real clock), which is unaffected by this.
NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
PUBLIC_METRICS = ["favorites", "retweets", "quote_tweets", "replies", "video_views"]
PER_TWEET = {"per_tweet": {"group_by": ["tweet.id", "engagement.type"]}}

__all__ = ["BRAND_USER_ID", "CLIENT_USER_ID", "NOW", "PER_TWEET", "PUBLIC_METRICS", "UNRELATED_USER_ID", "Api"]


@dataclass
class Api:
    """Thin helpers over one running emulator."""

    emu: EmulatorServer
    session: requests.Session

    @property
    def world(self) -> World:
        return self.emu.world

    def oauth(self, user_id: str) -> OAuth1:
        user = self.world.users[user_id]
        app = self.world.app
        return OAuth1(app.consumer_key, app.consumer_secret, user.access_token, user.access_token_secret)

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.world.app.bearer_token}"}

    def ids(self, user_id: str, state: PostState = PostState.PUBLIC, *, video: bool | None = None) -> list[str]:
        return [p.tweet_id for p in self.world.posts_of(user_id, state=state) if video is None or p.has_video == video]

    def post(
        self,
        endpoint: str,
        body: Any,
        *,
        auth: OAuth1 | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = f"{self.emu.url}/insights/engagement/{endpoint}"
        if isinstance(body, (dict, list)):
            return self.session.post(url, json=body, auth=auth, headers=headers, timeout=10, **kwargs)
        return self.session.post(url, data=body, auth=auth, headers=headers, timeout=10, **kwargs)

    def query(
        self,
        endpoint: str,
        tweet_ids: list[str],
        metrics: list[str],
        groupings: dict[str, Any] | None = None,
        *,
        auth: OAuth1 | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> requests.Response:
        body = {"tweet_ids": tweet_ids, "engagement_types": metrics, "groupings": groupings or PER_TWEET, **extra}
        return self.post(endpoint, body, auth=auth, headers=headers)
