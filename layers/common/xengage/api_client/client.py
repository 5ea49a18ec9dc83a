"""EngagementClient: batches, signs, sends, retries and normalizes Engagement API calls.

Every requested Post comes back in `EngagementResult.posts`, either `ok` with its metrics or with a
`catalog.Reason`; none vanishes. Credential problems raise `UserAuthError` (the account's tokens) or
`AppAuthError` (the app's), never retried; missing user tokens raise `UserContextRequired` before any HTTP
request. Given a `Deadline`, no sleep, retry or request runs past it: what does not fit ends `rate_limited` or
`deferred` with the time of its next attempt, for the caller to hand on.
"""

from __future__ import annotations

import random
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter

from xengage.api_client.app_check import consumer_credentials_refused
from xengage.api_client.auth import AuthChoice, AuthKind, choose_auth
from xengage.api_client.batching import (
    batches,
    build_body,
    group_by_for,
    historical_windows,
    normalize_tweet_ids,
    resolve_metrics,
)
from xengage.api_client.catalog import DEFAULT_BASE_URL, Endpoint, Reason, Refusal
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.errors import (
    AppAuthError,
    AuthError,
    MalformedResponse,
    RequestValidationError,
    RetriesExhausted,
    UserAuthError,
)
from xengage.api_client.models import DEADLINE, RATE_LIMIT, TRANSIENT, EngagementResult, ParsedResponse, PostMetrics
from xengage.api_client.pacing import RATE_WINDOW_SECONDS, Pacer, RateGate, utc_now
from xengage.api_client.parsing import parse_response
from xengage.api_client.retry import RetryPolicy, Transient, classify_status
from xengage.observability import client_logger as logger
from xengage.observability import tracer

DEFAULT_TIMEOUT: Final = (3.05, 30.0)  # (connect, read) seconds
REQUEST_HEADERS: Final = {
    "Accept-Encoding": "gzip",
    "Content-Type": "application/json",
    "User-Agent": "xengage-collector/0.1",
}
VIDEO_METRICS: Final = frozenset({"video_views"})
IMPRESSIONS_METRICS: Final = frozenset({"impressions", "engagements"})
# What a Post listed in an answer's unsupported_for_* ids was refused, and the words used when `errors` has none.
AGE_LIMITS: Final = (
    (
        "unsupported_for_video_views_tweet_ids",
        VIDEO_METRICS,
        Refusal.OVER_1800_DAYS,
        "video views are not served for Posts older than 1,800 days",
        re.compile(r"video", re.IGNORECASE),
    ),
    (
        "unsupported_for_impressions_engagements_tweet_ids",
        IMPRESSIONS_METRICS,
        Refusal.OVER_90_DAYS,
        "impressions and engagements are not served for Posts older than 90 days",
        re.compile(r"impressions.*90 days", re.IGNORECASE),
    ),
)

_FORBIDDEN_TWEETS = re.compile(r"Forbidden to access tweets(?: for author id \d+)?\s*:\s*(?P<ids>.*)", re.IGNORECASE)
_FORBIDDEN_METRICS = re.compile(r"Forbidden to access metrics\s*:\s*(?P<names>.*)", re.IGNORECASE)
_UNAVAILABLE = re.compile(r"Tweet ID\(s\) are unavailable", re.IGNORECASE)
# A retired or unknown engagement type: "Unsupported engagement types for /totals: a, b" (and wordings like it).
_REFUSED_TYPES = re.compile(
    r"(?:unsupported|invalid|unknown|unrecognized|retired)\s+engagement[ _]?types?[^:]*:\s*(?P<names>.*)", re.IGNORECASE
)
_NOT_AUTHENTICATED = re.compile(r"could not be authenticated|not authorized", re.IGNORECASE)
# Which credentials a refusal names: the app's (bearer token, consumer key) or the account's (access token).
_BLAMES_APP = re.compile(r"consumer|bearer|application", re.IGNORECASE)
_BLAMES_ACCOUNT = re.compile(r"access token|invalid or expired token|token (?:not found|revoked)", re.IGNORECASE)
APP_CHECK_TTL_SECONDS: Final = 300.0
# How often the client asks the rate gate again after waiting: a shared budget may hand a renewed allowance to
# other callers first; past this (or the throttle wait) the Posts end `rate_limited`.
MAX_PACING_ROUNDS: Final = 8
# The least a request needs to be worth sending before a deadline (connect, send, a short answer).
MIN_CALL_SECONDS: Final = 2.0
RECENT_CALLS: Final = 5  # the answered calls whose duration predicts the next one's
CALL_TIME_MARGIN: Final = 1.2


@dataclass(slots=True)
class _Answer:
    status: int
    parsed: ParsedResponse | None  # None when a 4xx body was not the documented JSON
    text: str  # a short excerpt for messages, never headers


@dataclass(slots=True)
class _Run:
    """State of one `fetch`: the result being filled, the metrics still asked, the time spent waiting."""

    endpoint: Endpoint
    auth: AuthChoice
    metrics: list[str]
    result: EngagementResult
    listed_unsupported: set[str] = field(default_factory=set)
    waited: float = 0.0
    deadline: Deadline | None = None
    pending: set[str] = field(default_factory=set)  # ids not yet answered in the current window


@dataclass(slots=True)
class _Tries:
    """Attempts of one request so far; 429s count apart, waiting them out is expected."""

    attempts: int = 0
    throttled: int = 0


class _Stop(Exception):
    """The run cannot go on now (the per-minute limit is spent, or the deadline is near): hand the rest on."""

    def __init__(self, reason: Reason, message: str, retry_at: datetime, *, cause: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_at = retry_at
        self.cause = cause


@dataclass(slots=True)
class _Job:
    """Ids to send. `known_bad`: they are known to hold a Post behind an unlisted 400 "unavailable"."""

    ids: list[str]
    known_bad: bool = False
    deferred: list[str] = field(default_factory=list)  # put aside while bisecting, sent once afterwards


class _Verdict(Enum):
    DONE = auto()  # every id of the call has its fate
    UNLISTED_UNAVAILABLE = auto()  # 400 "Tweet ID(s) are unavailable" naming no id: bisect
    RETRY_REST = auto()  # some ids got a fate from the error; send the others again


class EngagementClient:
    """Client of the three Engagement API endpoints (see docs/DESIGN.md "Client contract")."""

    def __init__(
        self,
        app: AppCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        pool_size: int = 8,
        oauth_base_url: str | None = None,
        rate_window_seconds: float = RATE_WINDOW_SECONDS,
        rate_gate: RateGate | None = None,
    ) -> None:
        """`oauth_base_url` (X's api.x.com) lets an ambiguous 401 be checked against the app's own credentials;
        without it such a 401 is blamed on the account. `rate_window_seconds` is the API's minute (tests shorten it).
        `rate_gate` paces the calls: the deployment's shared budget; by default a `Pacer` of this client alone.
        """
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.oauth_base_url = oauth_base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._now = now
        self._rng = rng or random.Random()
        self._pacer: RateGate = rate_gate or Pacer(now=now, window_seconds=rate_window_seconds)
        self._app_check: tuple[float, bool | None] | None = None  # (monotonic time, verdict)
        # How long the last answered calls took: a call the deadline cannot wait for is not started.
        self._call_seconds: deque[float] = deque(maxlen=RECENT_CALLS)
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # One pooled connection set per host; retries are ours (each attempt re-signed), never urllib3's.
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> EngagementClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API ------------------------------------------------------------------------------------

    @tracer.capture_method(capture_response=False)  # the answer: every Post's metrics
    def fetch(
        self,
        endpoint: Endpoint | str,
        tweet_ids: Sequence[str | int],
        *,
        engagement_types: Sequence[str] | None = None,
        user: UserTokens | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult:
        """Metrics of `tweet_ids` from `endpoint`; every id ends `ok` or with a Reason in `result.posts`.

        With a `deadline`, what cannot be fetched before it ends `rate_limited` or `deferred` with `retry_at`
        (and, for /historical, `result.resume_from` says which window to start from).
        """
        endpoint = Endpoint(endpoint)
        ids = normalize_tweet_ids(tweet_ids)
        metrics = resolve_metrics(endpoint, engagement_types, has_user=user is not None)
        auth = choose_auth(endpoint, metrics, self.app, user)
        windows = self._windows(endpoint, start, end)
        result = EngagementResult(endpoint=endpoint, posts={tweet_id: PostMetrics(tweet_id) for tweet_id in ids})
        run = _Run(endpoint=endpoint, auth=auth, metrics=metrics, result=result, deadline=deadline)
        logger.info(
            "fetch /%s: %d ids, %d metrics, auth %s, %d window(s)",
            *(endpoint.value, len(ids), len(metrics), auth.kind.value, len(windows)),
        )
        for index, window in enumerate(windows):
            run.pending = {tweet_id for tweet_id in ids if result.posts[tweet_id].ok}
            try:
                for batch in batches(ids, endpoint.max_ids):
                    self._collect_batch(run, batch, window)
            except _Stop as stop:
                self._hand_on(run, stop, window, last=index == len(windows) - 1)
                break
        self._finish(run)
        logger.info(
            "fetch /%s done: %s in %d calls (%d retries, %d throttled)",
            *(endpoint.value, result.counts_by_status(), result.calls, result.retries, result.throttled),
        )
        return result

    def _windows(
        self, endpoint: Endpoint, start: datetime | None, end: datetime | None
    ) -> list[tuple[datetime, datetime] | None]:
        """/historical's 4-week windows of [start, end); one call without a window on the other endpoints."""
        if endpoint is Endpoint.HISTORICAL:
            return list(historical_windows(start, end, now=self._now()))
        if start is not None or end is not None:
            raise RequestValidationError(f"start/end apply to /historical only, not /{endpoint.value}")
        return [None]

    def totals(
        self,
        tweet_ids: Sequence[str | int],
        *,
        engagement_types: Sequence[str] | None = None,
        user: UserTokens | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult:
        return self.fetch(Endpoint.TOTALS, tweet_ids, engagement_types=engagement_types, user=user, deadline=deadline)

    def hourly_28hr(
        self,
        tweet_ids: Sequence[str | int],
        *,
        user: UserTokens | None,
        engagement_types: Sequence[str] | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult:
        return self.fetch(
            Endpoint.HOURLY_28HR, tweet_ids, engagement_types=engagement_types, user=user, deadline=deadline
        )

    def historical(
        self,
        tweet_ids: Sequence[str | int],
        *,
        user: UserTokens | None,
        start: datetime | None = None,
        end: datetime | None = None,
        engagement_types: Sequence[str] | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult:
        return self.fetch(
            Endpoint.HISTORICAL,
            tweet_ids,
            engagement_types=engagement_types,
            user=user,
            start=start,
            end=end,
            deadline=deadline,
        )

    # -- one batch: send, read the verdict, bisect or resend the rest ----------------------------------

    def _collect_batch(self, run: _Run, ids: list[str], window: tuple[datetime, datetime] | None) -> None:
        """Work through one batch until each of its ids has metrics or a Reason.

        An unlisted 400 "Tweet ID(s) are unavailable" means some id in the call is protected but not
        which: probe half of the suspects; a failing half holds a culprit, a passing half clears itself
        and convicts the other half. Cleared-by-deduction ids wait in `deferred` and go in one call once
        the culprit is isolated, so one protected id among 25 costs at most ceil(log2 25) + 1 extra calls.
        """
        queue = deque([_Job(ids)])
        while queue:
            job = queue.popleft()
            job.ids = [i for i in job.ids if run.result.posts[i].ok]
            if not self._settled_without_a_call(run, job, queue):
                self._probe(run, job, window, queue)

    def _settled_without_a_call(self, run: _Run, job: _Job, queue: deque[_Job]) -> bool:
        """A lone id of a job known to hold a protected one is that one; an empty job only hands its deferred ids on.
        True when the job needed no call."""
        if job.known_bad and len(job.ids) == 1:
            self._mark(run, job.ids, Reason.PROTECTED, "Tweet ID(s) are unavailable (protected Post)")
        elif job.ids:
            return False
        if job.deferred:
            queue.append(_Job(job.deferred))
        return True

    def _probe(self, run: _Run, job: _Job, window: tuple[datetime, datetime] | None, queue: deque[_Job]) -> None:
        """One call for the job (only its first half when it is known to hold a protected id); queue what follows."""
        middle = (len(job.ids) + 1) // 2 if job.known_bad else len(job.ids)
        probe, suspects = job.ids[:middle], job.ids[middle:]
        try:
            answer = self._send(run, probe, window)
        except RetriesExhausted as exc:  # transient: the batch is handed on, the run goes on with the others
            retry_at = self._now() + timedelta(seconds=exc.retry_after)
            self._defer(run, probe, Reason.DEFERRED, str(exc), retry_at)
            if suspects or job.deferred:
                queue.append(_Job(suspects + job.deferred))
            return
        metrics_before = list(run.metrics)
        verdict, rest = self._apply(run, probe, answer)
        if verdict is _Verdict.DONE:
            if job.known_bad:
                queue.appendleft(_Job(suspects, known_bad=True, deferred=job.deferred))
            return
        if verdict is _Verdict.UNLISTED_UNAVAILABLE:
            logger.info("/%s: %d ids hold an unlisted unavailable Post; bisecting", run.endpoint.value, len(probe))
            queue.appendleft(_Job(probe, known_bad=True, deferred=suspects + job.deferred))
            return
        # Some ids got their fate from the error; the others are sent again (the suspects lose their
        # conviction: the error may have come from an id that is now removed).
        if len(rest) >= len(probe) and run.metrics == metrics_before:  # no progress: do not loop
            self._mark(run, probe, Reason.FAILED, f"HTTP {answer.status}: {answer.text}")
            rest = []
        if rest or suspects or job.deferred:
            queue.append(_Job(rest + suspects + job.deferred))

    def _apply(self, run: _Run, probe: list[str], answer: _Answer) -> tuple[_Verdict, list[str]]:
        """Give the ids of one call their metrics or Reason from its answer; say what is left to do."""
        parsed = answer.parsed
        errors = parsed.errors if parsed is not None else []
        for message in errors:
            if message not in run.result.errors:
                run.result.errors.append(message)
        if answer.status == 200:
            assert parsed is not None  # _send turns an unreadable 200 into a retry
            self._absorb(run, probe, parsed)
            return _Verdict.DONE, []
        if answer.status == 401 or (errors and all(_NOT_AUTHENTICATED.search(m) for m in errors)):
            raise self._auth_error(run, answer, errors)
        not_owned = _forbidden_tweet_ids(errors) & set(probe)
        unavailable = set(parsed.unavailable_tweet_ids if parsed is not None else ()) & set(probe)
        if not_owned or unavailable:
            self._mark(run, sorted(not_owned, key=probe.index), Reason.NOT_OWNED, _first(errors, "Forbidden"))
            self._mark(run, sorted(unavailable, key=probe.index), Reason.UNAVAILABLE, _first(errors, "unavailable"))
            return _Verdict.RETRY_REST, [i for i in probe if i not in not_owned and i not in unavailable]
        if answer.status == 400 and any(_UNAVAILABLE.search(m) for m in errors):
            return _Verdict.UNLISTED_UNAVAILABLE, probe
        refused = _refused_metrics(errors) & set(run.metrics)
        if answer.status in (400, 403) and refused:
            return self._drop_refused_metrics(run, probe, refused, _first(errors, answer.text))
        if answer.status == 403:
            raise self._auth_error(run, answer, errors)
        # Anything else (another 400, 404, ...) is permanent: the same request would fail the same way.
        self._mark(run, probe, Reason.FAILED, f"HTTP {answer.status}: {_first(errors, answer.text)}")
        return _Verdict.DONE, []

    def _drop_refused_metrics(
        self, run: _Run, probe: list[str], refused: set[str], message: str
    ) -> tuple[_Verdict, list[str]]:
        """The API refuses these engagement types (not offered to these credentials, or retired): ask again
        without them, and say so in the result so the caller stops asking for them."""
        run.metrics = [m for m in run.metrics if m not in refused]
        for metric in refused:
            run.result.refused_metrics[metric] = message
        for post in run.result.posts.values():
            post.refuse(sorted(refused), Refusal.REFUSED_BY_API, message)
        if not run.metrics:
            self._mark(run, list(run.result.posts), Reason.UNSUPPORTED_METRIC, message)
            return _Verdict.DONE, []
        logger.warning("/%s: %s; asking again without %s", run.endpoint.value, message, ", ".join(sorted(refused)))
        return _Verdict.RETRY_REST, probe

    def _auth_error(self, run: _Run, answer: _Answer, errors: Sequence[str]) -> AuthError:
        """Which credentials were refused: the app's never make an account need re-authorization."""
        message = _first(errors, answer.text)
        if run.auth.kind is AuthKind.BEARER or _BLAMES_APP.search(message):
            return AppAuthError(message, status_code=answer.status)
        if answer.status == 401 and not _BLAMES_ACCOUNT.search(message) and self._consumer_refused():
            return AppAuthError(f"{message}; X refuses the app's consumer key/secret", status_code=answer.status)
        return UserAuthError(message, account=run.auth.account, status_code=answer.status)

    def _consumer_refused(self) -> bool:
        """Ask X once (cached for a few minutes) whether the app's consumer key/secret are still valid."""
        if self.oauth_base_url is None:
            return False
        checked = self._app_check
        if checked is None or time.monotonic() - checked[0] > APP_CHECK_TTL_SECONDS:
            verdict = consumer_credentials_refused(self.session, self.app, self.oauth_base_url, timeout=self.timeout)
            self._app_check = checked = (time.monotonic(), verdict)
        return checked[1] is True

    def _absorb(self, run: _Run, probe: list[str], parsed: ParsedResponse) -> None:
        """Merge a 200 answer: data, listed unavailable/not-owned ids, unsupported metrics, absentees."""
        result = run.result
        run.pending.difference_update(probe)
        if parsed.start is not None and (result.start is None or parsed.start < result.start):
            result.start = parsed.start
        if parsed.end is not None and (result.end is None or parsed.end > result.end):
            result.end = parsed.end
        asked = set(probe)
        unavailable, not_owned = set(parsed.unavailable_tweet_ids), _forbidden_tweet_ids(parsed.errors)
        self._mark(run, [i for i in probe if i in unavailable], Reason.UNAVAILABLE, "listed in unavailable_tweet_ids")
        self._mark(run, [i for i in probe if i in not_owned], Reason.NOT_OWNED, _first(parsed.errors, "Forbidden"))
        self._refuse_listed(run, asked, parsed)
        for tweet_id, data in parsed.posts.items():
            if tweet_id not in asked:
                logger.warning("/%s answered for Tweet id %s it was not asked about", run.endpoint.value, tweet_id)
                continue
            _merge(result.posts[tweet_id], data, drop=result.posts[tweet_id].unsupported_metrics)
        for tweet_id in probe:
            post = result.posts[tweet_id]
            if post.ok and tweet_id not in parsed.posts and tweet_id not in run.listed_unsupported:
                post.mark(Reason.FAILED, "missing from the API answer")

    @staticmethod
    def _refuse_listed(run: _Run, asked: set[str], parsed: ParsedResponse) -> None:
        """Posts an answer lists as too old for some metrics: those metrics are refused, in the API's words when its
        `errors` say why (else the documented limit)."""
        for field_name, metrics, reason, default, wording in AGE_LIMITS:
            listed = asked.intersection(getattr(parsed, field_name))
            refused = sorted(metrics.intersection(run.metrics))
            message = next((m for m in parsed.errors if wording.search(m)), default)
            for tweet_id in listed:
                run.result.posts[tweet_id].refuse(refused, reason, message)
                run.listed_unsupported.add(tweet_id)

    def _finish(self, run: _Run) -> None:
        """A Post listed as unsupported that got nothing it asked for is `unsupported_metric`."""
        for tweet_id in run.listed_unsupported:
            post = run.result.posts[tweet_id]
            served = set(post.totals) | {m for values in post.hourly.values() for m in values}
            served |= {m for values in post.daily.values() for m in values}
            if post.ok and not (served & set(run.metrics)):
                post.mark(
                    Reason.UNSUPPORTED_METRIC,
                    f"{', '.join(sorted(post.unsupported_metrics)) or 'the asked metrics'} not served for this Post",
                )

    def _hand_on(self, run: _Run, stop: _Stop, window: tuple[datetime, datetime] | None, *, last: bool) -> None:
        """Out of time or allowance: the Posts not answered in this window (every Post still `ok` when later
        windows remain) are handed on, keeping whatever earlier windows gave them."""
        unfinished = [
            tweet_id for tweet_id, post in run.result.posts.items() if post.ok and (tweet_id in run.pending or not last)
        ]
        for tweet_id in unfinished:
            run.result.posts[tweet_id].defer(stop.reason, stop.message, stop.retry_at, cause=stop.cause)
            if window is not None:
                run.result.resume_at[tweet_id] = window[0] if tweet_id in run.pending else window[1]
        if window is not None and unfinished:
            run.result.resume_from = window[0]
        logger.warning("/%s: %d Post(s) %s: %s", run.endpoint.value, len(unfinished), stop.reason.value, stop.message)

    def _mark(self, run: _Run, ids: Sequence[str], reason: Reason, message: str) -> None:
        for tweet_id in ids:
            post = run.result.posts[tweet_id]
            if post.ok:  # the first fate sticks, later windows do not overwrite it
                post.mark(reason, message)
            run.pending.discard(tweet_id)
        if ids:
            logger.info("/%s: %d Post(s) %s: %s", run.endpoint.value, len(ids), reason.value, message)

    def _defer(self, run: _Run, ids: Sequence[str], reason: Reason, message: str, retry_at: datetime) -> None:
        for tweet_id in ids:
            post = run.result.posts[tweet_id]
            if post.ok:
                post.defer(reason, message, retry_at, cause=TRANSIENT)
            run.pending.discard(tweet_id)
        if ids:
            logger.warning("/%s: %d Post(s) %s: %s", run.endpoint.value, len(ids), reason.value, message)

    # -- one request, with its retries, within the deadline --------------------------------------------

    def _send(self, run: _Run, ids: list[str], window: tuple[datetime, datetime] | None) -> _Answer:
        """POST one call, re-signed on each attempt; retries 429/5xx/timeouts/resets/malformed JSON.

        Raises RetriesExhausted when transient failures outlast the policy, and _Stop when the per-minute limit
        or the deadline leaves no room for the next attempt.
        """
        body = build_body(run.endpoint, ids, run.metrics, window)
        url = f"{self.base_url}{run.endpoint.path}"
        group_by = group_by_for(run.endpoint)
        tries = _Tries()
        while True:
            self._pace(run)
            tries.attempts += 1
            outcome = self._attempt(run, url, body, group_by)
            if isinstance(outcome, _Answer):
                return outcome
            kind, detail = outcome
            delay = self._retry_delay(run, tries, kind, detail)
            logger.warning("/%s %s (%s); retry in %.2fs", run.endpoint.value, kind.value, detail, delay)
            run.waited += delay
            run.result.retries += 1
            self._sleep(delay)

    def _pace(self, run: _Run) -> None:
        """Wait until the gate lets the call go, or stop when the allowance renews too late for the deadline."""
        waited = delay = 0.0
        for _ in range(MAX_PACING_ROUNDS):
            delay = self._pacer.delay_before_call(run.endpoint.value)
            if delay <= 0:
                return
            if waited + delay > self.retry.max_throttle_wait or not self._fits(run, delay):
                break
            logger.debug("pacing /%s: waiting %.2fs to stay within the per-minute limit", run.endpoint.value, delay)
            self._sleep(delay)
            waited += delay
        retry_at = self._now() + timedelta(seconds=max(delay, 0.0))
        raise _Stop(
            Reason.RATE_LIMITED,
            f"the per-minute limit of /{run.endpoint.value} is spent; next call at {_iso(retry_at)}",
            retry_at,
            cause=RATE_LIMIT,
        )

    def _attempt(
        self, run: _Run, url: str, body: dict[str, Any], group_by: dict[str, list[str]]
    ) -> _Answer | tuple[Transient, str]:
        """Send once: the decoded answer, or the transient failure it met."""
        timeout = self._call_timeout(run)
        run.result.calls += 1
        sent = time.monotonic()
        try:
            response = self._post(url, body, run.auth.new_auth(), timeout)
        except requests.Timeout as exc:
            return Transient.TIMEOUT, type(exc).__name__
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            return Transient.CONNECTION, type(exc).__name__
        self._call_seconds.append(time.monotonic() - sent)
        self._pacer.record_response(run.endpoint.value, response.headers)
        run.result.rate_limit = self._pacer.limit(run.endpoint.value) or run.result.rate_limit
        logger.debug("/%s %d ids -> HTTP %d", run.endpoint.value, len(body["tweet_ids"]), response.status_code)
        kind = classify_status(response.status_code)
        if kind is not None:
            return kind, f"HTTP {response.status_code}"
        try:
            return _read_answer(response, group_by)
        except MalformedResponse as exc:
            return Transient.MALFORMED, f"malformed answer ({exc})"

    @tracer.capture_method(capture_response=False)  # the answer: one batch of Posts' metrics
    def _post(
        self, url: str, body: dict[str, Any], auth: requests.auth.AuthBase, timeout: float | tuple[float, float]
    ) -> requests.Response:
        """The Engagement API call itself: its own subsegment when tracing, which fails only when the request did."""
        return self.session.post(url, json=body, headers=REQUEST_HEADERS, auth=auth, timeout=timeout)

    def _retry_delay(self, run: _Run, tries: _Tries, kind: Transient, detail: str) -> float:
        """How long to wait before the next attempt; raises when there must be none now."""
        now = self._now()
        if kind is Transient.THROTTLED:
            tries.throttled += 1
            run.result.throttled += 1
            wait = self._pacer.record_throttled(run.endpoint.value)
            too_long = wait > self.retry.max_throttle_wait or run.waited + wait > self.retry.total_wait_budget
            too_long = too_long or not self._fits(run, wait)
            if too_long or tries.throttled > self.retry.max_throttled_retries:
                retry_at = now + timedelta(seconds=wait)
                spent = f"the per-minute limit of /{run.endpoint.value} is spent"
                message = f"HTTP 429: {spent}; next attempt at {_iso(retry_at)}"
                raise _Stop(Reason.RATE_LIMITED, message, retry_at, cause=RATE_LIMIT)
            return wait
        failures = tries.attempts - tries.throttled
        delay = self.retry.backoff_delay(failures - 1, self._rng)
        if not self.retry.allows(kind, attempts=tries.attempts, throttled=tries.throttled):
            raise RetriesExhausted(
                f"{kind.value}: {detail}, gave up after {tries.attempts} attempt(s)", retry_after=self.retry.max_delay
            )
        if run.waited + delay > self.retry.total_wait_budget:
            raise RetriesExhausted(
                f"{kind.value}: {detail}, retry wait budget of this fetch spent", retry_after=self.retry.max_delay
            )
        if not self._fits(run, delay):
            retry_at = now + timedelta(seconds=delay)
            message = f"{kind.value}: {detail}; no time left for another attempt"
            raise _Stop(Reason.DEFERRED, message, retry_at, cause=TRANSIENT)
        return delay

    def _fits(self, run: _Run, wait: float) -> bool:
        """Is there time to wait `wait` seconds and still make a call before the deadline?"""
        return run.deadline is None or run.deadline.allows(wait + MIN_CALL_SECONDS)

    def _call_timeout(self, run: _Run) -> float | tuple[float, float]:
        """The request timeout, cut to the deadline; stops the run when not even a short call fits."""
        if run.deadline is None:
            return self.timeout
        remaining = run.deadline.remaining()
        expected = max(MIN_CALL_SECONDS, CALL_TIME_MARGIN * max(self._call_seconds, default=0.0))
        if remaining < expected:
            raise _Stop(
                Reason.DEFERRED,
                f"out of time: calls take up to {expected:.1f} s, {remaining:.1f} s were left before the deadline",
                self._now(),
                cause=DEADLINE,
            )
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        return (min(connect, remaining), min(read, remaining))


def _read_answer(response: requests.Response, group_by: dict[str, list[str]]) -> _Answer:
    """Decode a non-transient answer. An unreadable 200 is MalformedResponse (retried); a 4xx is kept."""
    text = response.text[:300]
    try:
        body: Any = response.json()
        parsed = parse_response(body, group_by)
    except (ValueError, MalformedResponse) as exc:
        if response.status_code == 200:
            raise exc if isinstance(exc, MalformedResponse) else MalformedResponse(f"not JSON: {exc}") from exc
        return _Answer(status=response.status_code, parsed=None, text=text)
    return _Answer(status=response.status_code, parsed=parsed, text=text)


def _merge(target: PostMetrics, data: PostMetrics, *, drop: set[str]) -> None:
    """Add one answer's values for a Post; metrics listed as unsupported for it are placeholders, dropped."""
    target.totals.update({m: v for m, v in data.totals.items() if m not in drop})
    for hour, values in data.hourly.items():
        target.hourly.setdefault(hour, {}).update({m: v for m, v in values.items() if m not in drop})
    for day, values in data.daily.items():
        target.daily.setdefault(day, {}).update({m: v for m, v in values.items() if m not in drop})


def _forbidden_tweet_ids(errors: Sequence[str]) -> set[str]:
    """Ids named by "Forbidden to access tweets: a, b" and "... tweets for author id N: a, b" strings."""
    found: set[str] = set()
    for message in errors:
        match = _FORBIDDEN_TWEETS.search(message)
        if match:
            found.update(re.findall(r"\b\d{1,19}\b", match.group("ids")))
    return found


def _refused_metrics(errors: Sequence[str]) -> set[str]:
    """Engagement types named by "Forbidden to access metrics: a, b" or "Unsupported engagement types ...: a, b"."""
    found: set[str] = set()
    for message in errors:
        for pattern in (_FORBIDDEN_METRICS, _REFUSED_TYPES):
            match = pattern.search(message)
            if match:
                found.update(re.findall(r"[a-z_]+", match.group("names")))
    return found


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _first(errors: Sequence[str], fallback: str) -> str:
    return errors[0] if errors else fallback
