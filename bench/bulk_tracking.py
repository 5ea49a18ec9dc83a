"""Bulk tracking over real HTTP: POST /tweets with 10,000 ids as JSON and as CSV, on the local stack.

    python -m bench.bulk_tracking        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: the local stack (`LocalStack` on the real template.yaml, ephemeral ports): moto server, the stack's DynamoDB
(dynalite when Node.js and `make node-deps` are there, else moto), the ApiFunction in its worker process, the API
Gateway-style HTTP server. One account is registered through the DAL.

Measured, each with a keep-alive HTTP client:
- JSON: 10,000 new ids of the app (a Post item and a /totals marker each: 20,000 items), then the same request again;
- CSV: 10,000 new ids of the account (`?account_id=`; a Post item and three markers each: 40,000 items), then the
  same request again.
A request the deadline cuts answers 503 `track_incomplete` with what it stored; the same request is then sent again
until it answers 200, as a client would, and each round is printed. The run stops when an answer's counts are not
what was sent (new + already tracked + rejected + not stored = ids) or a repeated request finds anything new.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import requests

from bench.common import TEMPLATE_PATH, fake_aws_env, header, quiet_library_output, scoped_env, table

if TYPE_CHECKING:
    from local.stack.stack import LocalStack

TITLE: Final = "bulk tracking: POST /tweets with 10,000 ids as JSON and as CSV (local stack, real HTTP)"
IDS: Final = 10_000
ACCOUNT_ID: Final = "1000000001"
FIRST_ID: Final = 1021817816134156288  # a 2018 snowflake; the ids after it are real Post ids too
MAX_ROUNDS: Final = 10


@dataclass
class Measured:
    """One kind of request sent until it answered 200: each round's status and seconds, and the last counts."""

    label: str
    ids: int
    rounds: list[tuple[int, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.rounds)

    def row(self) -> list[str]:
        statuses = " ".join(str(status) for status, _ in self.rounds)
        each = " + ".join(f"{seconds:.1f}" for _, seconds in self.rounds)
        return [
            self.label,
            f"{self.ids:,}",
            statuses,
            each,
            f"{self.seconds:.1f}",
            str(self.counts.get("new", 0)),
            str(self.counts.get("already_tracked", 0)),
        ]


def ids_from(offset: int, count: int) -> list[str]:
    return [str(FIRST_ID + offset + n) for n in range(count)]


def csv_body(ids: list[str]) -> str:
    return "tweet_id\r\n" + "".join(f"{tweet_id}\r\n" for tweet_id in ids)


def send_until_done(
    session: requests.Session, url: str, label: str, ids: list[str], **kwargs: Any
) -> tuple[Measured, int]:
    """POST until 200 (a 503 has stored part: the same request again does the rest); returns the ids new over all
    rounds with the measurement."""
    measured, new = Measured(label, len(ids)), 0
    for _ in range(MAX_ROUNDS):
        started = time.perf_counter()
        response = session.post(url, timeout=120, **kwargs)
        measured.rounds.append((response.status_code, time.perf_counter() - started))
        if response.status_code not in (200, 503):
            raise RuntimeError(f"{label}: answered {response.status_code}: {response.text[:300]}")
        answer = response.json()
        not_stored = len(answer.get("not_stored", []))
        if answer["new"] + answer["already_tracked"] + answer["rejected"] + not_stored != len(ids):
            raise RuntimeError(f"{label}: the counts do not add up to {len(ids)}: {response.text[:300]}")
        new += answer["new"]
        measured.counts = {key: answer[key] for key in ("new", "already_tracked", "rejected")}
        if response.status_code == 200:
            return measured, new
    raise RuntimeError(f"{label}: still not done after {MAX_ROUNDS} rounds")


def run_benchmark(stack: LocalStack, count: int) -> list[Measured]:
    from xengage.dal import RegistryDal

    assert stack.api is not None, "the stack runs without its API server"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    RegistryDal(stack.ids.ref("RegistryTable")).put_account(ACCOUNT_ID, "bench_account", now=now)
    url = f"{stack.api.url}/tweets"
    session = requests.Session()
    session.get(f"{stack.api.url}/tweets", params={"limit": "1"}, timeout=60)  # the worker's cold start, not timed
    json_ids, csv_ids = ids_from(0, count), ids_from(1_000_000, count)
    cases: list[tuple[str, list[str], dict[str, Any]]] = [
        ("JSON, app (2 items a Post)", json_ids, {"json": {"tweet_ids": json_ids}}),
        (
            "CSV, account (4 items a Post)",
            csv_ids,
            {"data": csv_body(csv_ids), "headers": {"Content-Type": "text/csv"}, "params": {"account_id": ACCOUNT_ID}},
        ),
    ]
    results: list[Measured] = []
    for label, ids, kwargs in cases:
        first, new = send_until_done(session, url, label, ids, **kwargs)
        if new != len(ids):
            raise RuntimeError(f"{label}: {new} ids were new over all rounds, not {len(ids)}")
        again, new_again = send_until_done(session, url, f"{label}, again", ids, **kwargs)
        if new_again or again.counts["already_tracked"] != len(ids):
            raise RuntimeError(f"{label}: the same request again changed something: {again.counts}")
        results.extend([first, again])
    return results


def main(count: int = IDS) -> list[Measured]:
    from local.stack.stack import LocalStack, StackSettings

    quiet_library_output()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-logs-") as logs:
        settings = StackSettings(
            template_path=TEMPLATE_PATH, moto_port=0, api_port=0, start_pollers=False, log_dir=Path(logs)
        )
        with LocalStack(settings) as stack:
            dynamodb_url = str(stack.client("dynamodb").meta.endpoint_url)
            backend = "moto" if dynamodb_url.rstrip("/") == stack.endpoint_url.rstrip("/") else "dynalite"
            print(f"setup: local stack started in {time.perf_counter() - started:.1f} s; DynamoDB: {backend}")
            environment = fake_aws_env(
                AWS_ENDPOINT_URL=stack.endpoint_url,
                AWS_ENDPOINT_URL_DYNAMODB=dynamodb_url,
                AWS_REGION=stack.template.region,
                AWS_DEFAULT_REGION=stack.template.region,
            )
            with scoped_env(environment):
                results = run_benchmark(stack, count)
    print(
        "each request sent until it answered 200 (a 503 track_incomplete stored part of it within the 29 s "
        "deadline; the same request again does the rest); seconds are HTTP round trips"
    )
    print(
        table(
            ["request", "ids", "statuses", "seconds each", "total s", "new", "already"],
            [result.row() for result in results],
        )
    )
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    return results


if __name__ == "__main__":
    header(TITLE)
    main()
