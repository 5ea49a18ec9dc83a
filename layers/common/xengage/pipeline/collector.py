"""Collector: fetch one message's Posts from the Engagement API and store metrics, statuses and due markers.

Everything written is keyed by the tick (`scheduled_time`) or the hour bucket, so a retried tick or a redelivered
SQS message overwrites the same items instead of adding new ones. Every Post of a message ends stored, with a final
status and reason, or handed on (`rate_limited` / `deferred`, with its next attempt) in a continuation message:
nothing waits past the invocation's deadline and nothing is left to SQS redelivery. The error taxonomy
(`catalog.ErrorKind`) decides what each failure does; docs/DESIGN.md, "Collection at the limits", lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from xengage.api_client.batching import historical_windows, resolve_metrics
from xengage.api_client.catalog import STATUS_OK, Endpoint, Reason, Refusal
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.errors import AppAuthError, RequestValidationError, UserAuthError
from xengage.api_client.models import DEADLINE, EngagementResult, PostMetrics
from xengage.dal import (
    AppState,
    AppStateDal,
    HourSums,
    MetricPoint,
    NotFound,
    SeriesState,
    TotalsSnapshot,
)
from xengage.dal.jobs import Job, JobPost
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH, Advance, DueMarker, MarkerMove, Reschedule
from xengage.dal.secrets import AppSecretPlaceholder, SecretError
from xengage.dal.series_state import MarkerPart
from xengage.dal.status import StatusChange
from xengage.deps import Deps, Fetcher
from xengage.observability import count, logger
from xengage.pipeline import jobs
from xengage.pipeline.cadence import earliest_historical_start, next_due_at
from xengage.pipeline.checks import DRIFT, drift_of, next_hour_sums, totals_decrease
from xengage.pipeline.continuations import continuations, gives_up, lease_until
from xengage.pipeline.events import ConsoleCollect, InvalidPayload, describe
from xengage.pipeline.messages import CollectMessage
from xengage.pipeline.usage import capped_retry_at, user_context
from xengage.settings import CollectorSettings
from xengage.timeutil import floor_hour, floor_minute, parse_iso, snowflake_created_at, to_iso

NEEDS_REAUTH_MESSAGE = "account needs re-authorization"
APP_PAUSED_MESSAGE = "the app's credentials were refused; collection waits until the app secret changes"
# A permanent error is asked again at the Post's next regular time, but never sooner than this.
PERMANENT_RETRY: timedelta = timedelta(days=1)


# The collector's dependencies (registry, metrics, statuses, app_state, queue, client_factory, load_app, load_tokens,
# secret_version, now, rng, usage, jobs): a queue of None (console runs) hands nothing on; a usage guard of None
# neither counts nor caps calls; jobs of None refuses job messages (they cannot be settled).
CollectorDeps = Deps[CollectorSettings]


@dataclass(slots=True)
class CollectSummary:
    endpoint: str
    account_id: str | None
    scheduled_time: str
    posts: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # status -> Posts
    items_written: int = 0  # metric points stored (a /totals snapshot, or an hour bucket)
    batch_write_calls: int = 0
    item_updates: int = 0  # UpdateItems of day items alone (no rollup difference: a Post without an account)
    transactions: int = 0  # TransactWriteItems: day items with their accounts' rollup differences
    transacted_days: int = 0  # day items written by those transactions
    rollup_writes: int = 0  # rollup items those transactions added to
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    already_done: int = 0  # Posts another delivery already collected (their lease had ended): not fetched again
    continuations: int = 0  # messages handed on
    totals_decreased: int = 0  # Posts whose /totals snapshot fell below the previous one (data checks)
    totals_drift: int = 0  # Posts whose /totals drift from the sum of their /historical hours (data checks)
    skipped: str | None = None  # why no call was made, if none was

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: CollectSummary) -> None:
        self.posts += other.posts
        for status, posts in other.counts.items():
            self.counts[status] = self.counts.get(status, 0) + posts
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def count_status(self, status: str, posts: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + posts


_SUMMED: Final = (
    "items_written",
    "batch_write_calls",
    "item_updates",
    "transactions",
    "transacted_days",
    "rollup_writes",
    "calls",
    "retries",
    "throttled",
    "already_done",
    "continuations",
    "totals_decreased",
    "totals_drift",
)


class _Skip(Exception):
    """No call can be made for this message: every Post gets `reason`, and its lease is released."""

    def __init__(self, reason: Reason, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_at = retry_at  # when the Posts are due again, if not as of the tick


def parse_message(body: Mapping[str, Any] | str) -> CollectMessage:
    try:
        if isinstance(body, str):
            return CollectMessage.model_validate_json(body)
        return CollectMessage.model_validate(body)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from exc


# --- one message --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Collection:
    """One message being collected: what it needs to decide, store and hand on."""

    message: CollectMessage
    deps: CollectorDeps
    summary: CollectSummary
    deadline: Deadline | None
    advance_markers: bool
    state: AppState = field(default_factory=AppState)
    markers: dict[str, DueMarker] = field(default_factory=dict)
    resume_from: dict[str, datetime | None] = field(default_factory=dict)  # /historical: window to start again
    refused: dict[str, str] = field(default_factory=dict)  # engagement types the API refused on this endpoint
    progressed: bool = False  # some Post got data or a final outcome (a continuation then counts afresh)
    job: Job | None = None  # a live query's job: its Posts are settled there (pipeline/jobs.py)
    job_posts: dict[str, JobPost] = field(default_factory=dict)  # what the job knows of the message's Posts

    @property
    def endpoint(self) -> Endpoint:
        return self.message.endpoint

    @property
    def log_keys(self) -> dict[str, str]:
        keys = {"endpoint": self.endpoint.value, "account_id": self.message.account_id or "APP"}
        return {**keys, "job_id": self.message.job_id} if self.message.job_id else keys

    @property
    def snapshot_at(self) -> str:
        """When a /totals snapshot is taken: the tick (a redelivery overwrites the same point), or for a job, the
        minute of the fetch (a job's Post is fetched once: settled Posts are not asked again)."""
        return to_iso(floor_minute(self.deps.now())) if self.job else self.summary.scheduled_time


def collect(
    message: CollectMessage,
    deps: CollectorDeps,
    *,
    deadline: Deadline | None = None,
    advance_markers: bool = True,
    app_state: AppState | None = None,
) -> CollectSummary:
    """Collect one message within `deadline`: store what is fetched, settle every Post, hand on the rest."""
    summary = CollectSummary(
        endpoint=message.endpoint.value, account_id=message.account_id, scheduled_time=to_iso(message.scheduled_time)
    )
    run = _Collection(message, deps, summary, deadline, advance_markers and message.job_id is None)
    tweet_ids = _job_waiting(run) if message.job_id else _still_leased(run)
    summary.posts = len(tweet_ids)
    if not tweet_ids:
        logger.info("collected", extra={**run.log_keys, "summary": summary.as_dict()})
        return summary
    run.state = app_state if app_state is not None else deps.app_state.get()
    run.refused = dict(run.state.refused_metrics.get(message.endpoint, {}))
    try:
        user = _account_tokens(run)
        app = _app_credentials(run)
        posts = _metered_fetch(run, app, user, tweet_ids)
    except _Skip as skip:
        posts = [_post_with(tweet_id, skip.reason, skip.message, retry_at=skip.retry_at) for tweet_id in tweet_ids]
        summary.skipped = skip.message
        logger.warning("posts not collected", extra={**run.log_keys, "reason": skip.message})
    if _never_started(run, posts):
        return summary
    _settle(run, posts)
    _emit(summary)
    logger.info("collected", extra={**run.log_keys, "summary": summary.as_dict()})
    return summary


def _never_started(run: _Collection, posts: list[PostMetrics]) -> bool:
    """No call could start before the deadline (earlier messages of the batch used the time): the message goes on
    as it is, with nothing written, instead of recording a deferral for each of its Posts."""
    if run.deps.queue is None or run.summary.calls or not posts:
        return False
    if not all(post.pending_cause == DEADLINE for post in posts):
        return False
    run.deps.queue.send_batch([run.message.to_body()])
    run.summary.continuations = 1
    run.summary.skipped = "no time left for a call: sent on as it is"
    logger.info("collected", extra={**run.log_keys, "summary": run.summary.as_dict()})
    return True


def _job_waiting(run: _Collection) -> list[str]:
    """A job message's Posts the job still waits for (none if the job has expired)."""
    message, store = run.message, run.deps.jobs
    if store is None or message.job_id is None:
        raise InvalidPayload(f"job message {message.job_id} reached a collector without a jobs table")
    run.job = store.get(message.job_id)
    if run.job is None:
        logger.warning("job not found (expired): message dropped", extra=run.log_keys)
        return []
    run.job_posts = store.get_posts(message.job_id, message.tweet_ids)
    waiting = jobs.waiting(run.job_posts, message.tweet_ids)
    run.summary.already_done = len(message.tweet_ids) - len(waiting)
    # Statuses are kept for tracked Posts only: knowing which are saves a refused write for each of the others.
    run.markers = run.deps.registry.get_due_markers(waiting, run.endpoint) if waiting else {}
    return waiting


def _still_leased(run: _Collection) -> list[str]:
    """The message's Posts that still wait for it. A Post whose lease another delivery already ended (a duplicate
    SQS delivery, a retried tick) is not fetched again; a Post no longer tracked is dropped."""
    tweet_ids = list(run.message.tweet_ids)
    if not run.advance_markers:
        return tweet_ids
    run.markers = run.deps.registry.get_due_markers(tweet_ids, run.endpoint)
    waiting = [tweet_id for tweet_id in tweet_ids if _waits_for(run.markers.get(tweet_id), run.message)]
    run.summary.already_done = len(tweet_ids) - len(waiting)
    if run.summary.already_done:
        logger.info("posts already collected or untracked", extra={**run.log_keys, "posts": run.summary.already_done})
    return waiting


def _waits_for(marker: DueMarker | None, message: CollectMessage) -> bool:
    if marker is None or marker.next_due_at is None:
        return False  # untracked, or no longer collected on this endpoint
    if marker.lease is not None:
        return marker.lease == message.lease
    # Not leased (queued before leases existed, or collected since): still due at this tick?
    return marker.next_due_at <= message.lease


def _account_tokens(run: _Collection) -> UserTokens | None:
    account_id = run.message.account_id
    if not account_id:
        return None
    account = run.deps.registry.get_account(account_id)
    if account is None:
        raise _Skip(Reason.AUTH_FAILED, f"account {account_id} is not registered")
    if account.needs_reauth:
        raise _Skip(Reason.AUTH_FAILED, NEEDS_REAUTH_MESSAGE)
    try:
        tokens = run.deps.load_tokens(account_id)
    except SecretError as exc:
        _mark_needs_reauth(run.deps, account_id, str(exc))
        raise _Skip(Reason.AUTH_FAILED, f"no usable tokens stored for account {account_id}") from exc
    # The registry's screen name is the current one: the @handle the usage ledger shows.
    return replace(tokens, screen_name=account.screen_name or tokens.screen_name)


def _app_credentials(run: _Collection) -> AppCredentials:
    """The app's credentials, unless X refused them and the secret has not changed since (or they are the
    template's placeholders): then nothing is sent."""
    state = run.state
    if state.needs_credentials and state.paused_for(run.deps.secret_version()):
        raise _Skip(Reason.APP_AUTH_FAILED, f"{APP_PAUSED_MESSAGE} ({state.credentials_error})")
    # Just replaced (the refused version is no longer current): read it past the 5-minute cache.
    try:
        return run.deps.load_app(fresh=state.needs_credentials)  # a missing secret is a deployment problem: raises
    except AppSecretPlaceholder:
        pass
    try:
        return run.deps.load_app(fresh=True)  # the cache may still hold what the operator has replaced since
    except AppSecretPlaceholder as exc:
        _flag_app(run.deps, str(exc))
        raise _Skip(Reason.APP_AUTH_FAILED, str(exc)) from exc


def _metered_fetch(
    run: _Collection, app: AppCredentials, user: UserTokens | None, tweet_ids: list[str]
) -> list[PostMetrics]:
    """`_fetch` within the @handle billing guard (pipeline/usage.py): a user-context message counts its account's
    handle first, and past the monthly cap a handle not counted yet calls nothing (its Posts end `usage_capped`,
    due again within the hour or when the month turns); every call made is counted by endpoint afterwards."""
    usage, now = run.deps.usage, run.deps.now()
    if usage is None:
        return _fetch(run, app, user, tweet_ids)
    account_id = run.message.account_id
    metrics = _metrics_to_ask(run.endpoint, run.refused, has_user=True, asked=run.message.engagement_types)
    if account_id and user_context(run.endpoint, metrics, user):
        handle = user.screen_name if user else None
        if not usage.admit(account_id, handle, now=now):
            count("UsageCapDeferredPosts", len(tweet_ids))
            raise _Skip(Reason.USAGE_CAPPED, usage.capped_message(account_id, handle, now=now), capped_retry_at(now))
    calls_before = run.summary.calls
    try:
        return _fetch(run, app, user, tweet_ids)
    finally:
        usage.record_calls(run.endpoint, run.summary.calls - calls_before, now=run.deps.now())


def _fetch(run: _Collection, app: AppCredentials, user: UserTokens | None, tweet_ids: list[str]) -> list[PostMetrics]:
    """Fetch and store; returns every Post with its outcome. Credential failures become a _Skip."""
    metrics = _metrics_to_ask(run.endpoint, run.refused, has_user=user is not None, asked=run.message.engagement_types)
    client = run.deps.client_factory(app)
    try:
        if run.endpoint is Endpoint.HISTORICAL:
            return _fetch_history(run, client, user, tweet_ids, metrics)
        result = client.fetch(run.endpoint, tweet_ids, user=user, engagement_types=metrics, deadline=run.deadline)
        _learn(run, result)
        _store(run, result.posts.values())
        return _every_requested_post(tweet_ids, result)
    except UserAuthError as exc:
        if run.message.account_id:
            _mark_needs_reauth(run.deps, run.message.account_id, str(exc))
        raise _Skip(Reason.AUTH_FAILED, str(exc)) from exc
    except AppAuthError as exc:
        if run.deps.load_app(fresh=True) != app:
            # The secret changed since these credentials were read: not a refusal of the current ones, try again.
            why = f"{exc}; the app secret has changed since: asked again with it"
            return [_post_deferred(tweet_id, why, run) for tweet_id in tweet_ids]
        _flag_app(run.deps, str(exc))
        raise _Skip(Reason.APP_AUTH_FAILED, f"{exc}; {APP_PAUSED_MESSAGE}") from exc
    except RequestValidationError as exc:
        # Retrying cannot fix a request the client refuses to send: a permanent failure with the reason.
        logger.error("request refused before sending", extra={**run.log_keys, "error": str(exc)})
        return [_post_with(tweet_id, Reason.FAILED, str(exc)) for tweet_id in tweet_ids]


def _metrics_to_ask(
    endpoint: Endpoint, refused: Mapping[str, str], *, has_user: bool, asked: Sequence[str] | None = None
) -> list[str] | None:
    """What a job asked for, or the endpoint's default metrics, less those the API refused before (None: the
    client's default)."""
    if not refused:
        return list(asked) if asked else None
    return [m for m in resolve_metrics(endpoint, asked, has_user=has_user) if m not in refused] or None


def _fetch_history(
    run: _Collection, client: Fetcher, user: UserTokens | None, tweet_ids: list[str], metrics: list[str] | None
) -> list[PostMetrics]:
    """/historical window by window: each finished window is stored and checkpointed on the due markers at once,
    so a continuation or a redelivery starts after it and nothing fetched is fetched again."""
    message, now = run.message, run.deps.now()
    start = _history_start(run, tweet_ids, now)
    if start is not None and message.end is not None and start >= message.end:
        return [PostMetrics(tweet_id) for tweet_id in tweet_ids]  # every hour is stored already: nothing to ask
    windows = historical_windows(start, message.end, now=now)
    settled: dict[str, PostMetrics] = {}
    active = tweet_ids
    for window_start, window_end in windows:
        result = client.fetch(
            Endpoint.HISTORICAL,
            active,
            user=user,
            engagement_types=metrics,
            start=window_start,
            end=window_end,
            deadline=run.deadline,
        )
        _learn(run, result)
        _store(run, result.posts.values())
        _job_window(run, result.posts.values(), window_end)
        for post in _every_requested_post(active, result):
            if post.pending:
                run.resume_from[post.tweet_id] = window_start
            settled[post.tweet_id] = post
        active = [tweet_id for tweet_id in active if settled[tweet_id].ok]
        if window_end != windows[-1][1]:
            _checkpoint(run, active, window_end)
        if not active:
            break
    return [settled.get(tweet_id) or _post_with(tweet_id, Reason.FAILED, "not fetched") for tweet_id in tweet_ids]


def _history_start(run: _Collection, tweet_ids: list[str], now: datetime) -> datetime | None:
    """Where to start: the message's start, after the hours every one of its Posts already has (checkpoints of an
    earlier delivery), and never before the look-back at collection time."""
    start = run.message.start
    if run.job is not None:
        resumed = jobs.history_start(run.job_posts, tweet_ids, start)
        start = parse_iso(resumed) if resumed else None
    checkpoints = [run.markers[i].last_hour_collected for i in tweet_ids if i in run.markers]
    if checkpoints and all(checkpoints) and run.advance_markers:
        done = parse_iso(min(c for c in checkpoints if c))
        start = max(start, done) if start is not None else done
    return max(start, earliest_historical_start(now)) if start is not None else None


def _job_window(run: _Collection, posts: Iterable[PostMetrics], window_end: datetime) -> None:
    """A job's /historical window stored: its Posts' hours and `through` recorded, their status left as it was."""
    if run.job is None or run.deps.jobs is None:
        return
    now, done = run.deps.now(), []
    for post in posts:
        if post.ok:
            known = run.job_posts.get(post.tweet_id) or JobPost(post.tweet_id)
            outcome = jobs.job_post(post, run.endpoint, now=now, through=to_iso(window_end))
            done.append(replace(outcome, status=known.status, reason=known.reason))
    jobs.record(run.deps.jobs, run.job, run.job_posts, done)


def _checkpoint(run: _Collection, tweet_ids: list[str], window_end: datetime) -> None:
    if not run.advance_markers:
        return
    for tweet_id in tweet_ids:
        run.deps.registry.checkpoint_hours(tweet_id, run.endpoint, last_hour_collected=to_iso(window_end))


def _learn(run: _Collection, result: EngagementResult) -> None:
    """Keep what a call taught about the app: refused engagement types (not asked again) and the per-minute limit."""
    summary = run.summary
    summary.calls += result.calls
    summary.retries += result.retries
    summary.throttled += result.throttled
    run.progressed = run.progressed or any(not post.pending for post in result.posts.values())
    new_refusals = {m: why for m, why in result.refused_metrics.items() if m not in run.refused}
    if new_refusals:
        run.deps.app_state.add_refused_metrics(run.endpoint, new_refusals, known=run.refused)
        run.refused.update(new_refusals)
        count("MetricsRefused", len(new_refusals))
        logger.warning("engagement types refused by the API", extra={**run.log_keys, "refused": new_refusals})
    if result.rate_limit is not None and run.state.rate_limits.get(run.endpoint) != result.rate_limit:
        run.deps.app_state.record_rate_limit(run.endpoint, result.rate_limit, now=to_iso(run.deps.now()))
        run.state.rate_limits[run.endpoint] = result.rate_limit


def _store(run: _Collection, posts: Any) -> None:
    """Upsert every point fetched, for Posts handed on too: what was fetched is never fetched again."""
    at, collected_at = run.snapshot_at, to_iso(run.deps.now())
    points = (
        point
        for post in posts
        if post.ok or post.pending
        for point in metric_points(
            run.endpoint, post, snapshot_at=at, collected_at=collected_at, account_id=run.message.account_id or ""
        )
    )
    write = run.deps.metrics.put_points(points)
    run.summary.items_written += write.items
    run.summary.batch_write_calls += write.batch_write_calls
    run.summary.item_updates += write.update_calls
    run.summary.transactions += write.transact_calls
    run.summary.transacted_days += write.transacted_days
    run.summary.rollup_writes += write.rollup_writes


# --- settling: statuses, due markers, continuations ---------------------------------------------------------------


def _settle(run: _Collection, posts: list[PostMetrics]) -> None:
    """Give every Post its visible status and move its due marker; hand the pending ones on."""
    pending = [post for post in posts if post.pending]
    if pending and run.deps.queue is not None and gives_up(run.message, pending, progressed=run.progressed):
        _give_up(run, pending)
        pending = []
    collected_at = to_iso(run.deps.now())
    sums: dict[str, HourSums] = {}
    for post in posts:
        if post.ok or post.pending:
            for metric, words in run.refused.items():  # not asked: the API refused them on this endpoint before
                post.refuse((metric,), Refusal.REFUSED_BY_API, words)
        if run.job is not None and post.tweet_id not in run.markers:
            run.summary.count_status(post.status)
            continue  # not tracked: the job keeps its outcome
        part = _series_part(run, post)
        if isinstance(part, HourSums):
            sums[post.tweet_id] = part
        run.deps.registry.settle(
            post.tweet_id,
            run.endpoint,
            status=StatusChange.of(post, at=collected_at),
            move=_marker_move(run, post, collected_at) if run.advance_markers else None,
            part=part,
        )
        run.summary.count_status(post.status)
    _check_drift(run, sums)
    _settle_job(run, posts)
    if pending and run.deps.queue is not None:
        _hand_on(run, pending)
    if run.message.account_id and run.summary.counts.get(STATUS_OK):
        run.deps.registry.mark_account_success(run.message.account_id, now=collected_at)


def _settle_job(run: _Collection, posts: list[PostMetrics]) -> None:
    """A job message: every Post's outcome in the job (a pending one keeps the window to start again from)."""
    if run.job is None or run.deps.jobs is None:
        return
    now = run.deps.now()
    outcomes = []
    for post in posts:
        resume = run.resume_from.get(post.tweet_id) if post.pending else None
        outcomes.append(jobs.job_post(post, run.endpoint, now=now, through=to_iso(resume) if resume else None))
    jobs.record(run.deps.jobs, run.job, run.job_posts, outcomes)


def _series_part(run: _Collection, post: PostMetrics) -> MarkerPart | None:
    """What the Post's marker keeps of this collection for the data checks: the /totals snapshot (with the
    decrease it shows against the one kept), or the /historical hour sums moved on by the hours fetched."""
    marker = run.markers.get(post.tweet_id)
    state = marker.series if marker is not None else SeriesState()
    if run.endpoint is Endpoint.TOTALS and post.ok and post.totals:
        decrease = totals_decrease(state, post.totals, run.snapshot_at)
        if decrease is not None:
            run.summary.totals_decreased += 1
            logger.warning("totals decreased", extra={"tweet_id": post.tweet_id, "decrease": decrease})
        return TotalsSnapshot(post.totals, run.snapshot_at, decrease)
    # A job's window is any range: the marker's running sums follow scheduled collection only.
    if run.endpoint is Endpoint.HISTORICAL and marker is not None and run.job is None and (post.ok or post.pending):
        return next_hour_sums(state, post_hours(post))
    return None


def _check_drift(run: _Collection, sums: Mapping[str, HourSums]) -> None:
    """Compare the new /historical sums with /totals (one small Query a Post, once a day at the daily cadence)."""
    for tweet_id, moved in sums.items():
        state = SeriesState(
            hour_sums=dict(moved.sums), hour_sums_from=moved.first_hour, hour_sums_through=moved.through
        )
        check = drift_of(tweet_id, state, run.deps.metrics)
        if check.status == DRIFT:
            run.summary.totals_drift += 1
            logger.warning("totals drift from the hour sums", extra={"tweet_id": tweet_id, "check": asdict(check)})


def _give_up(run: _Collection, pending: list[PostMetrics]) -> None:
    """Transient errors outlasted every continuation: final, with the reason (asked again at the next regular time)."""
    attempts = run.message.attempt + 1
    for post in pending:
        post.mark(Reason.FAILED, f"gave up after {attempts} attempts without progress: {post.reason or post.status}")
        post.retry_at = None


def _marker_move(run: _Collection, post: PostMetrics, collected_at: str) -> MarkerMove:
    """Where the Post's due marker goes, by the kind of its outcome (docs/DESIGN.md, "Collection at the limits")."""
    message = run.message
    if post.pending:
        return Reschedule(to_iso(lease_until(post.retry_at or run.deps.now())), keep_lease=True)
    if post.status == Reason.USAGE_CAPPED.value and post.retry_at is not None:
        return Reschedule(to_iso(post.retry_at), keep_lease=False)  # not called: collected when the cap allows
    if post.status in (Reason.AUTH_FAILED.value, Reason.APP_AUTH_FAILED.value):
        # Due again as of the tick that queued it; the planner leaves it alone until the account or the app has
        # credentials again, then takes it among the oldest due.
        return Reschedule(message.lease, keep_lease=False)
    due = next_due_at(run.endpoint, post.tweet_id, message.scheduled_time)
    if post.status == Reason.FAILED.value and due is not None:
        due = max(due, message.scheduled_time + PERMANENT_RETRY)
    return Advance(
        next_due_at=to_iso(due) if due is not None else None,
        collected_at=collected_at,
        last_hour_collected=_last_hour(message, post),
    )


def _hand_on(run: _Collection, pending: list[PostMetrics]) -> None:
    """Send the continuations (10 per SendMessageBatch), each delayed to its next attempt."""
    assert run.deps.queue is not None
    found = continuations(
        run.message,
        pending,
        run.resume_from,
        now=run.deps.now(),
        progressed=run.progressed,
        rng=run.deps.rng,
    )
    bodies = [continuation.message.to_body() for continuation in found]
    for offset in range(0, len(bodies), 10):
        run.deps.queue.send_batch(
            bodies[offset : offset + 10], delays=[c.delay_seconds for c in found[offset : offset + 10]]
        )
    run.summary.continuations += len(found)
    count("Continuations", len(found))
    logger.info(
        "handed on",
        extra={
            **run.log_keys,
            "continuations": [
                {"posts": len(c.message.tweet_ids), "reason": c.reason.value, "delay_seconds": c.delay_seconds}
                for c in found
            ],
        },
    )


# --- console runs -------------------------------------------------------------------------------------------------


def collect_direct(request: ConsoleCollect, deps: CollectorDeps, *, deadline: Deadline | None = None) -> dict[str, Any]:
    """A console run (`ConsoleCollect`, parsed by the handler): any number of ids, in the endpoint's batch size.

    Collects each batch now, within `deadline` (due markers are left alone: a manual run does not shift the schedule,
    and nothing is handed on: what does not fit is reported `rate_limited` / `deferred`). Returns counts by status.
    Raises InvalidPayload when the ids break a message's rules (digits only, an account for the time series).
    """
    deps = deps.replace(queue=None)  # nothing is handed on
    scheduled_time = floor_minute(deps.now())
    try:
        messages = request.messages(scheduled_time)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from exc
    total = CollectSummary(
        endpoint=request.endpoint.value, account_id=request.account_id, scheduled_time=to_iso(scheduled_time)
    )
    try:
        for message in messages:
            total.add(collect(message, deps, deadline=deadline, advance_markers=False))
    finally:
        flush_usage(deps)
    return {
        "endpoint": total.endpoint,
        "account_id": total.account_id,
        "scheduled_time": total.scheduled_time,
        "requested": len(request.unique_ids),
        "counts": total.counts,
        "items_written": total.items_written,
        "calls": total.calls,
    }


# --- shared with live queries -------------------------------------------------------------------------------------


def _every_requested_post(tweet_ids: Sequence[str], result: EngagementResult) -> list[PostMetrics]:
    """The client promises every id back; if one is missing anyway it ends `failed`, never silently dropped."""
    return [
        result.posts.get(tweet_id) or _post_with(tweet_id, Reason.FAILED, "missing from the client's answer")
        for tweet_id in tweet_ids
    ]


def _post_deferred(tweet_id: str, message: str, run: _Collection) -> PostMetrics:
    """Handed on at once and not counted as a failed attempt (nothing is wrong with the current credentials)."""
    post = PostMetrics(tweet_id=tweet_id)
    post.defer(Reason.DEFERRED, message, run.deps.now(), cause=DEADLINE)
    return post


def _post_with(tweet_id: str, reason: Reason, message: str, *, retry_at: datetime | None = None) -> PostMetrics:
    post = PostMetrics(tweet_id=tweet_id)
    post.mark(reason, message)
    post.retry_at = retry_at
    return post


def metric_points(
    endpoint: Endpoint, post: PostMetrics, *, snapshot_at: str, collected_at: str, account_id: str
) -> Iterator[MetricPoint]:
    """The MetricsTable items of one Post's answer: one /totals snapshot at `snapshot_at`, or one per hour.

    Hours before the Post's creation hour (a /28hr window reaches back 28 h, a new Post is younger) are dropped:
    nothing happened then, and the API answers them with zeros.
    """
    if endpoint is Endpoint.TOTALS:
        if post.totals:
            yield MetricPoint(post.tweet_id, endpoint, snapshot_at, dict(post.totals), collected_at, account_id)
        return
    for hour, values in post_hours(post):
        yield MetricPoint(post.tweet_id, endpoint, to_iso(hour), dict(values), collected_at, account_id)


def post_hours(post: PostMetrics) -> list[tuple[datetime, dict[str, int]]]:
    """A Post's hour buckets from its creation hour on, oldest first."""
    created = floor_hour(snowflake_created_at(post.tweet_id))
    return [(hour, values) for hour, values in sorted(post.hourly.items()) if hour >= created]


def _last_hour(message: CollectMessage, post: PostMetrics) -> str | None:
    """Where the next /historical window starts: the end of this one (also recorded for /28hr, for readers)."""
    if message.endpoint is Endpoint.HISTORICAL and message.end is not None:
        return to_iso(message.end)
    if message.endpoint.is_time_series and post.hourly:
        return to_iso(max(post.hourly))
    return None


def _mark_needs_reauth(deps: CollectorDeps, account_id: str, error: str) -> None:
    try:
        deps.registry.set_account_status(account_id, ACCOUNT_NEEDS_REAUTH, now=to_iso(deps.now()), last_error=error)
    except NotFound:
        return
    count("AccountsNeedingReauth")
    logger.warning("account marked needs_reauth", extra={"account_id": account_id, "error": error})


def _flag_app(deps: CollectorDeps, error: str) -> None:
    record_app_refusal(deps.app_state, error, secret_version=deps.secret_version(), now=to_iso(deps.now()))


def record_app_refusal(app_state: AppStateDal, error: str, *, secret_version: str | None, now: str) -> None:
    """The app's credentials are refused (by the collector or a live query): no account is blamed; planning pauses
    until the app secret has another version than `secret_version`."""
    app_state.flag_credentials(error, secret_version=secret_version, now=now)
    count("AppCredentialsRefused")
    logger.error("app credentials refused: collection paused until the app secret changes", extra={"error": error})


def flush_usage(deps: CollectorDeps) -> None:
    """Write the calls this invocation counted (pipeline/usage.py). A failure is logged, not raised: the records are
    done (failing them would fetch them again), and call counts are for reading; handles were counted before."""
    if deps.usage is None:
        return
    try:
        deps.usage.flush()
    except Exception:
        logger.exception("calls made could not be counted in the usage ledger")
        count("UsageCallsNotCounted")


def _emit(summary: CollectSummary) -> None:
    count("EngagementCalls", summary.calls)
    count("Retries", summary.retries)
    count("Throttled", summary.throttled)
    count("PostsCollected", summary.counts.get(STATUS_OK, 0))
    count("MetricItemsWritten", summary.items_written)
    count("TotalsDecreased", summary.totals_decreased)
    count("TotalsDrift", summary.totals_drift)
    for status, posts in summary.counts.items():
        if status != STATUS_OK:
            count(f"Posts_{status}", posts)
