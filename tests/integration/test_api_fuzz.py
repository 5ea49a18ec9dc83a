"""The API under fuzzing, over HTTP against `make run`'s stack: schemathesis from openapi.json, then the hostile table.

A short, seeded run (over 1,000 requests); `make fuzz` runs the long one with a new seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile import HOSTILE, REDIRECT_ALLOWLIST
from tests.integration.api_fuzz import FIXED_SEED, run_schemathesis, send_hostile, summary
from tests.integration.helpers import make_run_in_background

pytestmark = pytest.mark.integration

# Per operation and phase: with every phase (examples, coverage, fuzzing, stateful) over 1,000 requests in ~30 s.
QUICK_EXAMPLES = 30
MIN_REQUESTS = 1_000


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"LOCAL_PARAMETER_OVERRIDES": f"OAuthRedirectAllowlist={REDIRECT_ALLOWLIST}"}
    try:
        with make_run_in_background(tmp_path_factory.mktemp("fuzz-state"), env=env) as api_url:
            yield api_url
    except RuntimeError as failed:
        pytest.fail(str(failed))


def test_generated_requests_get_no_5xx_and_every_answer_is_documented(fuzzed_stack: str, tmp_path: Path) -> None:
    # When schemathesis sends its generated requests (valid and invalid, every method) from the OpenAPI document
    report = run_schemathesis(fuzzed_stack, max_examples=QUICK_EXAMPLES, seed=FIXED_SEED, workdir=tmp_path)

    # Then there were enough of them, none answered 5xx, every error has the project's shape, and every check passed
    assert report.requests >= MIN_REQUESTS, summary(report, [])
    assert report.server_errors == 0, summary(report, [])
    assert report.off_shape == [], summary(report, [])
    assert report.exit_code == 0, report.output[-6000:]


def test_each_hostile_class_gets_its_answer_over_http(fuzzed_stack: str) -> None:
    # When each hostile request is sent as raw bytes through the local API Gateway
    answers = send_hostile(fuzzed_stack)

    # Then each gets the status and code the table names, in the project's shape
    assert len(answers) == len(HOSTILE)
    wrong = [answer for answer in answers if not answer.as_expected]
    assert not wrong, "\n".join(f"{a.case.name}: {a.status} {a.code} {a.problem}" for a in wrong)
