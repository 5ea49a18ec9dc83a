"""A scripted transport for client tests: a requests adapter that answers from a list and records what was sent."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from xengage.api_client import AppCredentials, EngagementClient

BASE = "https://data-api.example.test"
OAUTH_BASE = "https://api.example.test"

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class ScriptedAdapter(HTTPAdapter):
    """Answers each request with the next scripted (status, body[, headers]) and keeps the requests.

    `latency` moves the test clock forward on every request, as a slow API would (nothing really waits).
    """

    def __init__(self, answers: list[Answer], *, clock: Any = None, latency: float = 0.0) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []
        self.clock = clock
        self.latency = latency

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        if self.clock is not None and self.latency:
            self.clock.moment += timedelta(seconds=self.latency)
        status, body, *extra = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(extra[0] if extra else {})})
        response.request, response.url = request, str(request.url)
        return response

    def sent_ids(self) -> list[list[str]]:
        return [json.loads(r.body or b"{}")["tweet_ids"] for r in self.sent if "/insights/" in str(r.url)]


def scripted_client(
    app: AppCredentials, clock: Any, answers: list[Answer], *, latency: float = 0.0, **options: Any
) -> tuple[EngagementClient, ScriptedAdapter]:
    adapter = ScriptedAdapter(answers, clock=clock, latency=latency)
    session = requests.Session()
    session.mount("https://", adapter)
    client = EngagementClient(
        app, base_url=BASE, session=session, sleep=clock.sleep, now=clock.now, rng=random.Random(1), **options
    )
    return client, adapter


def per_tweet(values: dict[str, Any]) -> dict[str, Any]:
    return {"per_tweet": values}
