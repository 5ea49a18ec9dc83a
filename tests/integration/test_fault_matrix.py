"""The fault matrix (bench/fault_matrix.py) on the local stack: after every fault, no function timed out, every
tracked Post was accounted for, no item was duplicated, no window was fetched twice, and once the fault was gone the
state equals a clean run's.

One stack and emulator serve the module; each scenario starts from empty tables. `python -m bench.fault_matrix`
prints the same runs as a table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.fault_matrix import Harness, Outcome, Scenario, harness, scenarios

pytestmark = pytest.mark.integration

SCENARIOS = {scenario.name: scenario for scenario in scenarios()}
# Faults that take credentials away need the operator (or the account owner) and then one tick; X's own failures
# heal by themselves through continuations and redelivery.
NEEDS_A_TICK = {"user tokens revoked", "app bearer token revoked"}
# The answer to the call in flight when the collector died went down with it: that one call is asked again.
LOST_WITH_THE_PROCESS = {"collector killed mid-batch"}


@pytest.fixture(scope="module")
def matrix() -> Iterator[Harness]:
    with harness() as running:
        running.reference()
        yield running


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {}


def _run(matrix: Harness, outcomes: dict[str, Outcome], scenario: Scenario) -> Outcome:
    outcome = matrix.run(scenario)
    outcomes[scenario.name] = outcome
    return outcome


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_after_each_fault_nothing_is_lost_doubled_or_timed_out_and_the_state_is_a_clean_runs(
    matrix: Harness, outcomes: dict[str, Outcome], name: str
) -> None:
    # Given the clean run's state, When the scenario's fault comes and goes
    scenario = SCENARIOS[name]
    clean = scenario.expect(matrix.reference())
    tracked = len(clean.only(matrix.few_posts()).statuses) if scenario.few_posts else len(clean.statuses)
    outcome = _run(matrix, outcomes, scenario)

    # Then no function ran into its timeout, and while the fault lasted every tracked Post was accounted for: with a
    # status, or queued in a message not yet collected
    assert outcome.timeouts == 0
    assert sum(outcome.during.values()) == tracked, outcome.during
    # And nothing was stored twice, and no Post's window was answered twice (but the call that died with a process)
    assert outcome.duplicates == 0
    allowed = 25 if name in LOST_WITH_THE_PROCESS else 0
    assert outcome.refetched <= allowed
    # And once the fault was gone the state became the clean run's: by itself, or after one tick for credentials
    assert outcome.recovered, outcome.differences
    assert outcome.ticks_to_recover == (1 if name in NEEDS_A_TICK else 0)


def test_while_rate_limited_every_post_waits_visibly_and_nothing_fails(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["100% 429 for 5 (3 s) minutes, then none"]
    assert outcome.throttled > 0
    assert set(outcome.during) <= {"ok", "rate_limited", "queued", "unavailable", "protected"}
    assert outcome.during["rate_limited"] > 0


def test_revoked_credentials_are_told_apart(outcomes: dict[str, Outcome]) -> None:
    # The account's revoked tokens blame the account; the app's revoked bearer blames the app, never an account
    assert outcomes["user tokens revoked"].during["auth_failed"] > 0
    app = outcomes["app bearer token revoked"].during
    assert app["app_auth_failed"] > 0 and "auth_failed" not in app
