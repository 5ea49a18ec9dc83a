"""fetch_me: GET /2/users/me signed with the app's key and the account's tokens, against the emulator over HTTP."""

from __future__ import annotations

import socket
import time

import pytest

from local.emulator import BRAND_USER_ID, EmulatorServer, FaultConfig
from xengage.api_client import AppAuthError, Deadline, UserTokens
from xengage.api_client.users import TokensRejected, VerificationUnavailable, XUser, fetch_me

pytestmark = pytest.mark.integration


def test_valid_tokens_name_their_user(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given the brand's tokens
    # When X is asked whose they are
    user = fetch_me(emu.world.app, brand, base_url=emu.url)

    # Then it is the brand, with its display name and handle, from one signed user-context call
    assert user == XUser(id=BRAND_USER_ID, name="Demo Brand", username="demo_brand")
    assert [(e.endpoint, e.auth_kind, e.user_id) for e in emu.log] == [("users/me", "oauth1", BRAND_USER_ID)]


def test_unknown_or_revoked_tokens_are_rejected(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given tokens X never issued, and the brand's tokens once the brand revoked the app
    unknown = UserTokens("999-neverIssued", "never-issued-secret", user_id="999")
    with pytest.raises(TokensRejected) as rejected:
        fetch_me(emu.world.app, unknown, base_url=emu.url)
    emu.revoke_user_tokens(BRAND_USER_ID)
    try:
        # When / Then both are refused as tokens, and no secret is in the message
        with pytest.raises(TokensRejected):
            fetch_me(emu.world.app, brand, base_url=emu.url)
    finally:
        emu.restore_credentials()
    assert rejected.value.status_code == 401
    assert "never-issued" not in str(rejected.value)


def test_a_wrong_consumer_secret_is_the_apps_problem_not_the_tokens(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given the app's consumer secret rotated at X, and the old one still in use
    old_app = emu.world.app
    emu.rotate_consumer_secret()
    try:
        # When the brand's valid tokens are checked with the old secret
        with pytest.raises(AppAuthError) as refused:
            fetch_me(old_app, brand, base_url=emu.url)
    finally:
        emu.restore_credentials()

    # Then the app is blamed (the app-only token endpoint refused the key/secret), not the account
    assert not isinstance(refused.value, TokensRejected)
    assert refused.value.status_code == 401


@pytest.mark.parametrize(("fault", "reason"), [("503", "HTTP 503"), ("429", "rate limited"), ("malformed", "data.id")])
def test_x_failing_is_unavailable_not_rejected(emu: EmulatorServer, brand: UserTokens, fault: str, reason: str) -> None:
    # Given X answering the next call with a failure
    emu.script_faults([fault])

    # When the tokens are checked / Then it says X did not answer, and why
    with pytest.raises(VerificationUnavailable, match=reason):
        fetch_me(emu.world.app, brand, base_url=emu.url)


def test_a_hanging_x_is_cut_at_the_deadline(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given X hanging 5 s before answering, and a deadline 1 s away
    emu.set_faults(FaultConfig(timeout_share=1.0, hang_seconds=5.0))
    deadline = Deadline.after(1.0)

    # When the tokens are checked
    started = time.monotonic()
    with pytest.raises(VerificationUnavailable, match="ReadTimeout"):
        fetch_me(emu.world.app, brand, base_url=emu.url, deadline=deadline)

    # Then it gave up at the deadline, not after X's hang or the default read timeout
    assert time.monotonic() - started < 3.0


def test_no_call_when_the_deadline_left_no_time(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given a deadline already past
    # When / Then it fails at once, without calling X
    with pytest.raises(VerificationUnavailable, match="deadline"):
        fetch_me(emu.world.app, brand, base_url=emu.url, deadline=Deadline.after(0.0))
    assert emu.log == []


def test_an_unreachable_x_is_unavailable(brand: UserTokens, emu: EmulatorServer) -> None:
    # Given a base URL where nothing listens (a closed loopback port)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    # When / Then the connection error is "unavailable"
    with pytest.raises(VerificationUnavailable, match="ConnectionError"):
        fetch_me(emu.world.app, brand, base_url=f"http://127.0.0.1:{closed_port}")


def test_tokens_that_cannot_be_signed_are_rejected_without_a_call(emu: EmulatorServer) -> None:
    # Given a token holding a lone surrogate (valid in JSON as "\ud800", not encodable as UTF-8)
    tokens = UserTokens("\ud800", "secret")

    # When / Then it is rejected as tokens, not as an X failure, and X was not called
    with pytest.raises(TokensRejected, match="not text that can be signed"):
        fetch_me(emu.world.app, tokens, base_url=emu.url)
    assert emu.log == []
