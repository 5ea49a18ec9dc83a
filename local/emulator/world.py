"""What the emulated X knows: the app, its users and their access tokens, and Posts with snowflake ids.

Post creation time is never stored separately: like on X it is read back from the snowflake id
(`created_ms = (id >> 22) + 1288834974657`), so the collector's age rules see exactly what they would
see in production.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from xengage.api_client.credentials import AppCredentials

TWITTER_EPOCH_MS = 1288834974657
_SEQUENCE_BITS = 22
_MAX_SEQUENCE = (1 << _SEQUENCE_BITS) - 1


def snowflake_for(created_at: datetime, sequence: int = 0) -> str:
    """A snowflake id whose embedded timestamp is `created_at` (ms precision); `sequence` keeps ids unique."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (UTC)")
    if not 0 <= sequence <= _MAX_SEQUENCE:
        raise ValueError(f"sequence must be within 0..{_MAX_SEQUENCE}")
    created_ms = int(created_at.timestamp() * 1000)
    if created_ms < TWITTER_EPOCH_MS:
        raise ValueError("snowflake ids start on 2010-11-04; created_at is earlier")
    return str(((created_ms - TWITTER_EPOCH_MS) << _SEQUENCE_BITS) | sequence)


def created_at_of(tweet_id: str) -> datetime:
    """Creation time embedded in a snowflake id."""
    created_ms = (int(tweet_id) >> _SEQUENCE_BITS) + TWITTER_EPOCH_MS
    return datetime.fromtimestamp(created_ms / 1000, tz=UTC)


class PostState(StrEnum):
    PUBLIC = "public"
    PROTECTED = "protected"  # answers 400 "Tweet ID(s) are unavailable", even to its owner
    DELETED = "deleted"  # listed in unavailable_tweet_ids


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    screen_name: str
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)
    display_name: str | None = None  # the `name` /2/users/me answers; the screen name when None


@dataclass(frozen=True, slots=True)
class Post:
    tweet_id: str
    owner_id: str
    state: PostState = PostState.PUBLIC
    has_video: bool = False

    @property
    def created_at(self) -> datetime:
        return created_at_of(self.tweet_id)


@dataclass(frozen=True, slots=True)
class CredentialState:
    """What was revoked or rotated, and never a secret: safe for admin answers and logs."""

    revoked_users: tuple[str, ...]
    bearer_token_rotated: bool
    consumer_secret_rotated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "revoked_users": list(self.revoked_users),
            "bearer_token_rotated": self.bearer_token_rotated,
            "consumer_secret_rotated": self.consumer_secret_rotated,
        }


DEMO_APP = AppCredentials(
    consumer_key="demo-consumer-key",
    consumer_secret="demo-consumer-secret",
    bearer_token="demo-bearer-token",
)


class World:
    """Users, tokens and Posts. Safe to read and extend while the server runs (3-legged OAuth adds tokens).

    `app` is replaced, never mutated, when a credential is rotated: every check reads it once and sees
    either the old or the new credentials, never a mix.
    """

    def __init__(self, app: AppCredentials = DEMO_APP, *, authorize_as: str | None = None) -> None:
        self.app = app
        self.users: dict[str, User] = {}
        self.posts: dict[str, Post] = {}
        # Who approves at /oauth/authorize unless the request says `as_user=`; defaults to the first user.
        self.authorize_as = authorize_as
        self._tokens: dict[str, tuple[str, str]] = {}  # access token -> (secret, user_id)
        self._revoked_tokens: dict[str, tuple[str, str]] = {}  # kept aside so restore_credentials() can undo
        self._revoked_users: set[str] = set()
        self._app_before_rotation: AppCredentials | None = None
        self._sequence = 0
        self._lock = threading.Lock()

    # --- users and tokens -------------------------------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        screen_name: str,
        access_token: str,
        access_token_secret: str,
        *,
        display_name: str | None = None,
    ) -> User:
        user = User(user_id, screen_name, access_token, access_token_secret, display_name)
        with self._lock:
            self.users[user_id] = user
            self._tokens[access_token] = (access_token_secret, user_id)
            if self.authorize_as is None:
                self.authorize_as = user_id
        return user

    def register_access_token(self, user_id: str, access_token: str, access_token_secret: str) -> None:
        """Another token pair for an existing user (what a completed 3-legged flow grants)."""
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}")
        with self._lock:
            self._tokens[access_token] = (access_token_secret, user_id)

    def token_owner(self, access_token: str) -> User | None:
        with self._lock:
            entry = self._tokens.get(access_token)
        return self.users.get(entry[1]) if entry else None

    def token_secret(self, access_token: str) -> str | None:
        with self._lock:
            entry = self._tokens.get(access_token)
        return entry[0] if entry else None

    # --- credential changes (what an account or the app's owner does on X) --------------------------------
    def revoke_user_tokens(self, user_id: str) -> int:
        """Every access token the user granted so far stops working, as when the account revokes the app.

        Data calls then fail with "Access token not found". Tokens granted afterwards (the account
        re-authorizes through the 3-legged flow) work: that is how a revoked account recovers.
        Returns how many tokens were revoked.
        """
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}")
        with self._lock:
            revoked = {token: entry for token, entry in self._tokens.items() if entry[1] == user_id}
            for token in revoked:
                del self._tokens[token]
            self._revoked_tokens.update(revoked)
            self._revoked_users.add(user_id)
        return len(revoked)

    def rotate_bearer_token(self) -> str:
        """The app gets a new bearer token; the old one is refused everywhere. Returns the new one."""
        return self._rotate("bearer_token")

    def rotate_consumer_secret(self) -> str:
        """The app's consumer secret changes: signatures made with the old one fail. Returns the new one."""
        return self._rotate("consumer_secret")

    def _rotate(self, name: Literal["bearer_token", "consumer_secret"]) -> str:
        """Swap `app` for a copy with a new value. Readers take `app` once per check, so the swap is atomic."""
        value = f"rotated-{name.replace('_', '-')}-{secrets.token_urlsafe(24)}"
        with self._lock:
            if self._app_before_rotation is None:
                self._app_before_rotation = self.app
            self.app = dataclasses.replace(self.app, **{name: value})
        return value

    def restore_credentials(self) -> None:
        """Undo every revocation and rotation: the original app credentials, revoked tokens valid again."""
        with self._lock:
            if self._app_before_rotation is not None:
                self.app = self._app_before_rotation
                self._app_before_rotation = None
            for token, entry in self._revoked_tokens.items():
                self._tokens.setdefault(token, entry)
            self._revoked_tokens.clear()
            self._revoked_users.clear()

    def credential_state(self) -> CredentialState:
        """What changed since the World was built, for admin answers: flags and user ids, no secret."""
        with self._lock:
            original = self._app_before_rotation or self.app
            return CredentialState(
                revoked_users=tuple(sorted(self._revoked_users)),
                bearer_token_rotated=self.app.bearer_token != original.bearer_token,
                consumer_secret_rotated=self.app.consumer_secret != original.consumer_secret,
            )

    # --- posts ----------------------------------------------------------------------------------------------
    def add_post(
        self,
        owner_id: str,
        created_at: datetime,
        *,
        state: PostState | str = PostState.PUBLIC,
        has_video: bool = False,
    ) -> Post:
        """Mint a snowflake id for `created_at` and store the Post."""
        if owner_id not in self.users:
            raise KeyError(f"unknown user {owner_id}")
        with self._lock:
            self._sequence = (self._sequence + 1) & _MAX_SEQUENCE
            post = Post(snowflake_for(created_at, self._sequence), owner_id, PostState(state), has_video)
            self.posts[post.tweet_id] = post
        return post

    def set_state(self, tweet_id: str, state: PostState | str) -> Post:
        """Delete or protect a Post while the emulator runs."""
        with self._lock:
            post = self.posts[tweet_id]
            changed = Post(post.tweet_id, post.owner_id, PostState(state), post.has_video)
            self.posts[tweet_id] = changed
        return changed

    def posts_of(self, user_id: str, *, state: PostState | None = None) -> list[Post]:
        return [p for p in self.posts.values() if p.owner_id == user_id and (state is None or p.state == state)]

    def tweet_ids(self, posts: Iterable[Post] | None = None) -> list[str]:
        return [p.tweet_id for p in (self.posts.values() if posts is None else posts)]

    @classmethod
    def generate(
        cls,
        *,
        users: int = 10,
        posts_per_user: int = 100,
        now: datetime | None = None,
        max_age_days: float = 85.0,
        video_share: float = 0.2,
        seed: int = 0,
    ) -> World:
        """A large deterministic world for benchmarks: public Posts, ages spread over `max_age_days`."""
        anchor = _hour_floor(now or datetime.now(UTC))
        rng = random.Random(seed)
        world = cls()
        for index in range(1, users + 1):
            user_id = str(2_000_000_000 + index)
            world.add_user(user_id, f"bench_user_{index}", f"{user_id}-bench-access-token", f"bench-secret-{index}")
            for _ in range(posts_per_user):
                age = timedelta(hours=rng.uniform(1.0, max_age_days * 24.0))
                world.add_post(user_id, anchor - age, has_video=rng.random() < video_share)
        return world


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


BRAND_USER_ID = "1000000001"
CLIENT_USER_ID = "1000000002"
UNRELATED_USER_ID = "1000000003"

# (owner, age, state, has_video). Ages straddle the rules: 28 hours, 90 days (/totals impressions),
# 365 days (/historical look-back) and 1,800 days (video views).
_DEMO_POSTS: tuple[tuple[str, timedelta, PostState, bool], ...] = (
    (BRAND_USER_ID, timedelta(hours=1), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(hours=3), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(hours=8), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(hours=20), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(hours=30), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=2), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=4), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(days=7), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=14), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=30), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(days=60), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=85), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=95), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(days=200), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=400), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=1000), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(days=1810), PostState.PUBLIC, True),
    (BRAND_USER_ID, timedelta(days=2000), PostState.PUBLIC, False),
    (BRAND_USER_ID, timedelta(days=5), PostState.PROTECTED, False),
    (BRAND_USER_ID, timedelta(days=3), PostState.DELETED, False),
    (CLIENT_USER_ID, timedelta(hours=2), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(hours=12), PostState.PUBLIC, True),
    (CLIENT_USER_ID, timedelta(hours=26), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(days=3), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(days=10), PostState.PUBLIC, True),
    (CLIENT_USER_ID, timedelta(days=45), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(days=89), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(days=120), PostState.PUBLIC, False),
    (CLIENT_USER_ID, timedelta(days=364), PostState.PUBLIC, True),
    (CLIENT_USER_ID, timedelta(days=1790), PostState.PUBLIC, True),
    (CLIENT_USER_ID, timedelta(days=20), PostState.PROTECTED, False),
    (CLIENT_USER_ID, timedelta(days=9), PostState.DELETED, True),
    (UNRELATED_USER_ID, timedelta(hours=5), PostState.PUBLIC, False),
    (UNRELATED_USER_ID, timedelta(hours=40), PostState.PUBLIC, True),
    (UNRELATED_USER_ID, timedelta(days=6), PostState.PUBLIC, False),
    (UNRELATED_USER_ID, timedelta(days=25), PostState.PUBLIC, False),
    (UNRELATED_USER_ID, timedelta(days=100), PostState.PUBLIC, False),
    (UNRELATED_USER_ID, timedelta(days=500), PostState.PUBLIC, False),
    (UNRELATED_USER_ID, timedelta(days=1500), PostState.PUBLIC, True),
    (UNRELATED_USER_ID, timedelta(days=1900), PostState.PUBLIC, False),
)


def default_world(now: datetime | None = None) -> World:
    """The demo world: the app, a brand account, an agency client, an unrelated user and 40 Posts.

    Post times are fixed offsets before `now` floored to the hour, so the ids are identical for every
    run within the same hour (and always identical for the same explicit `now`).
    """
    anchor = _hour_floor(now or datetime.now(UTC))
    world = World(DEMO_APP)
    world.add_user(
        BRAND_USER_ID,
        "demo_brand",
        f"{BRAND_USER_ID}-demoBrandAccessToken",
        "demo-brand-token-secret",
        display_name="Demo Brand",
    )
    world.add_user(
        CLIENT_USER_ID,
        "demo_agency_client",
        f"{CLIENT_USER_ID}-demoClientAccessToken",
        "demo-client-token-secret",
        display_name="Demo Agency Client",
    )
    world.add_user(
        UNRELATED_USER_ID,
        "demo_unrelated",
        f"{UNRELATED_USER_ID}-demoOtherAccessToken",
        "demo-other-token-secret",
        display_name="Demo Unrelated",
    )
    for owner, age, state, has_video in _DEMO_POSTS:
        world.add_post(owner, anchor - age, state=state, has_video=has_video)
    return world
