"""AWS faults answered by botocore itself: throttling errors and unprocessed batch writes, for fault-matrix tests.

moto and dynalite never throttle, so the retry paths of the functions (botocore's retries, the DAL's
`UnprocessedItems` loop, Powertools' secret reads) would never run locally. This module answers a share of calls in
the function workers with the response AWS sends when it throttles, before the request leaves the process:

- `throttle`: the service's throttling error, the code botocore's retry handler classifies as throttling;
- `unprocessed` (`dynamodb.BatchWriteItem` only): HTTP 200 with every request item in `UnprocessedItems`, nothing
  written.

The rules are a JSON file named by `LOCAL_AWS_FAULTS_FILE` (see `FaultConfig`), re-read whenever it changes, so a test
turns faults on and off while the workers run. Each injected fault is appended as a JSON line to `<file>.log`, which a
test (another process) reads with `read_fault_log`. Only botocore and the standard library are used: `worker.py` loads
this file by path into a function's interpreter, where `local` is not importable.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import botocore.session
from botocore.awsrequest import AWSRequest, AWSResponse, HeadersDict

ENV_VAR = "LOCAL_AWS_FAULTS_FILE"
THROTTLE = "throttle"
UNPROCESSED = "unprocessed"
BATCH_WRITE_ITEM = "dynamodb.BatchWriteItem"

_RULE_FIELDS = {THROTTLE, UNPROCESSED, "seed"}
# The operation key (`dynamodb.PutItem`) travels from `before-call` to `before-send` in the request context.
_CONTEXT_KEY = "local_aws_faults_operation"
_HANDLER_ID = "local-aws-faults"


@dataclass(frozen=True)
class ThrottleAnswer:
    """What a service sends when it throttles: status, body, and the extra headers its protocol reads the code from."""

    status: int
    body: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/x-amz-json-1.0"


# Codes botocore retries as throttling in both retry modes (`retries/standard.py` ThrottledRetryableChecker and
# `data/_retry.json` for legacy). SQS speaks JSON with `awsQueryCompatible`: the parser takes the code from
# `x-amzn-query-error`; RequestThrottled comes with 403 as SQS sends it (legacy mode retries it only with 403).
THROTTLE_ANSWERS: dict[str, ThrottleAnswer] = {
    "dynamodb": ThrottleAnswer(
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
        },
    ),
    "secretsmanager": ThrottleAnswer(
        400, {"__type": "ThrottlingException", "message": "Rate exceeded"}, content_type="application/x-amz-json-1.1"
    ),
    "sqs": ThrottleAnswer(
        403,
        {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Request is throttled."},
        {"x-amzn-query-error": "RequestThrottled;Sender"},
    ),
}
# Any other service: the generic code every botocore retry mode treats as throttling.
DEFAULT_THROTTLE_ANSWER = ThrottleAnswer(
    400, {"__type": "ThrottlingException", "message": "Rate exceeded"}, content_type="application/x-amz-json-1.1"
)


@dataclass(frozen=True)
class FaultRule:
    """Shares (0..1) of an operation's calls answered with a fault; `seed` makes the sequence of faults repeatable."""

    throttle: float = 0.0
    unprocessed: float = 0.0
    seed: int | None = None

    @classmethod
    def from_json(cls, key: str, data: Any) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError(f"{key}: a rule is an object with throttle, unprocessed, seed; got {data!r}")
        unknown = set(data) - _RULE_FIELDS
        if unknown:
            raise ValueError(f"{key}: unknown rule fields {sorted(unknown)}; known are {sorted(_RULE_FIELDS)}")
        throttle = _share(key, THROTTLE, data.get(THROTTLE, 0.0))
        unprocessed = _share(key, UNPROCESSED, data.get(UNPROCESSED, 0.0))
        if unprocessed and key not in (BATCH_WRITE_ITEM, "dynamodb.*"):
            raise ValueError(f"{key}: unprocessed applies to {BATCH_WRITE_ITEM} only")
        if throttle + unprocessed > 1.0:
            raise ValueError(f"{key}: throttle + unprocessed is {throttle + unprocessed}, more than 1")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{key}: seed must be an integer, got {seed!r}")
        return cls(throttle=throttle, unprocessed=unprocessed, seed=seed)


@dataclass(frozen=True)
class FaultConfig:
    """`{"<service>.<Operation>": rule}` with botocore's names (`dynamodb.BatchWriteItem`,
    `secretsmanager.GetSecretValue`); `"<service>.*"` covers the operations of a service that have no rule of their own.
    """

    rules: dict[str, FaultRule] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        if not isinstance(data, Mapping):
            raise ValueError(f"the fault configuration is an object of operation rules, got {type(data).__name__}")
        return cls({_operation_key(key): FaultRule.from_json(key, rule) for key, rule in data.items()})

    @classmethod
    def load(cls, path: Path) -> FaultConfig:
        """The file's rules; a missing or empty file means no faults."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        return cls.from_json(json.loads(text)) if text.strip() else cls()

    def rule_for(self, operation: str) -> tuple[str, FaultRule] | None:
        """The rule of `operation` and its key: its own, else its service's wildcard."""
        service = operation.partition(".")[0]
        for key in (operation, f"{service}.*"):
            if key in self.rules:
                return key, self.rules[key]
        return None


def _operation_key(key: Any) -> str:
    service, dot, operation = str(key).partition(".")
    if not (isinstance(key, str) and service and dot and operation and "." not in operation):
        raise ValueError(f"{key!r}: an operation key is '<service>.<Operation>' or '<service>.*'")
    return key


def _share(key: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{key}: {name} must be a share between 0 and 1, got {value!r}")
    return float(value)


def fault_log_path(config_path: Path) -> Path:
    """Where the faults injected under `config_path` are logged."""
    return config_path.with_name(config_path.name + ".log")


def read_fault_log(log_path: Path) -> collections.Counter[tuple[str, str]]:
    """Injected faults counted by (operation, kind), e.g. `("dynamodb.PutItem", "throttle")`; empty when none."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return counts
    for line in lines:
        if line.strip():
            entry = json.loads(line)
            counts[(entry["op"], entry["kind"])] += 1
    return counts


def write_fault_config(config_path: Path, config: Mapping[str, Any] | None) -> None:
    """Replace the rules atomically (a worker never reads half a file); None leaves no rules. Rules are validated here
    so a bad one fails the caller rather than every call of the workers.

    The new file gets a later mtime than the one it replaces, even within one tick of the file system's clock, and
    None writes `{}` rather than deleting the file: the injector's stat signature then sees every write.
    """
    document = dict(config) if config is not None else {}
    FaultConfig.from_json(document)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous_mtime_ns = os.stat(config_path).st_mtime_ns
    except FileNotFoundError:
        previous_mtime_ns = 0
    descriptor, temporary = tempfile.mkstemp(dir=config_path.parent, prefix=f".{config_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file)
        now_ns = time.time_ns()
        os.utime(temporary, ns=(now_ns, max(now_ns, previous_mtime_ns + 1)))
        os.replace(temporary, config_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class _RawBody:
    """The part of urllib3's response `AWSResponse` reads a body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> list[bytes]:
        return [self._body]

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def _json_response(
    request: AWSRequest,
    status: int,
    body: Mapping[str, Any],
    extra: Mapping[str, str],
    content_type: str = "application/x-amz-json-1.0",
) -> AWSResponse:
    content = json.dumps(body).encode()
    headers = HeadersDict(
        {
            "Content-Type": content_type,
            "Content-Length": str(len(content)),
            "x-amzn-RequestId": str(uuid.uuid4()),
            **extra,
        }
    )
    # botocore reads headers as a case-insensitive mapping (urllib3's HTTPHeaderDict when it sends); its stubs say
    # HTTPHeaders.
    return AWSResponse(request.url or "", status, cast(Any, headers), _RawBody(content))


def throttling_response(request: AWSRequest, service: str) -> AWSResponse:
    answer = THROTTLE_ANSWERS.get(service, DEFAULT_THROTTLE_ANSWER)
    return _json_response(request, answer.status, answer.body, answer.headers, answer.content_type)


def unprocessed_response(request: AWSRequest) -> AWSResponse:
    """BatchWriteItem's answer when DynamoDB wrote none of the items: each one back in `UnprocessedItems`."""
    body = request.body or b"{}"
    sent = json.loads(body.decode() if isinstance(body, bytes) else body)
    return _json_response(request, 200, {"UnprocessedItems": sent.get("RequestItems", {})}, {})


class FaultInjector:
    """Decides, for each attempt botocore sends, whether a fault answers it instead of the service.

    The file is stat'ed on every attempt and re-read when its inode, mtime or size changes (`write_fault_config` gives
    each write a later mtime). The random sequences restart with each new configuration; each attempt of a retried
    call is a new draw, which is how botocore's retries get through a share below 1.
    """

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.log_path = fault_log_path(config_path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._config = FaultConfig()
        self._randoms: dict[str, random.Random] = {}

    def register(self, session: botocore.session.Session) -> None:
        """Hook the injector into `session`; clients copy their session's handlers when they are created."""
        session.register("before-call", self._remember_operation, unique_id=f"{_HANDLER_ID}-operation")
        # First, so the fault is the answer botocore takes over any other `before-send` answer (moto's in-process mock
        # registers one, and still sees the request: faults are meant for the stack's HTTP servers).
        emitter = session.get_component("event_emitter")
        emitter.register_first("before-send", self._before_send, unique_id=f"{_HANDLER_ID}-send")

    def _remember_operation(self, **kwargs: Any) -> None:
        # `before-send` only gets the request, and its event name carries the service *id* ("secrets-manager"),
        # not the service name of the rules; the request's context is the dict `before-call` receives.
        model = kwargs["model"]
        kwargs["context"][_CONTEXT_KEY] = f"{model.service_model.service_name}.{model.name}"

    def _before_send(self, request: AWSRequest, **kwargs: Any) -> AWSResponse | None:
        operation = request.context.get(_CONTEXT_KEY)
        if operation is None:
            return None
        kind = self.decide(operation)
        if kind is None:
            return None
        self._log(operation, kind)
        if kind == UNPROCESSED:
            return unprocessed_response(request)
        return throttling_response(request, operation.partition(".")[0])

    def decide(self, operation: str) -> str | None:
        """`throttle`, `unprocessed` or None (send the request) for one attempt of `operation`."""
        with self._lock:
            config = self._current_config()
            found = config.rule_for(operation)
            if found is None:
                return None
            key, rule = found
            roll = self._randoms[key].random()
        if roll < rule.throttle:
            return THROTTLE
        if operation == BATCH_WRITE_ITEM and roll < rule.throttle + rule.unprocessed:
            return UNPROCESSED
        return None

    def _current_config(self) -> FaultConfig:
        try:
            stat = os.stat(self.config_path)
        except FileNotFoundError:
            self._signature, self._config, self._randoms = None, FaultConfig(), {}
            return self._config
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature != self._signature:
            self._config = FaultConfig.load(self.config_path)
            self._randoms = {key: random.Random(rule.seed) for key, rule in self._config.rules.items()}
            self._signature = signature
        return self._config

    def _log(self, operation: str, kind: str) -> None:
        # One short O_APPEND write per fault: lines from several workers do not interleave.
        line = json.dumps({"op": operation, "kind": kind}) + "\n"
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line)


def install(injector: FaultInjector) -> None:
    """Give every botocore session created from now on in this process the injector's handlers.

    The hook is `botocore.session.Session.__init__` because every session is built there, whoever builds it: the DAL's
    `boto3.session.Session()`, boto3's default session (`boto3.client`/`boto3.resource`), Powertools' providers, and
    code calling `botocore.session.Session()` directly, which `get_session` would miss. Clients copy their session's
    handlers when created, so this must run before the function's code creates its first session.
    """
    session_class = botocore.session.Session
    original: Callable[..., None] = session_class.__init__
    if getattr(original, _HANDLER_ID, False):  # installed before: the new injector replaces the old one
        original = original.__wrapped__  # type: ignore[attr-defined]

    @functools.wraps(original)
    def __init__(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        injector.register(self)

    setattr(__init__, _HANDLER_ID, True)
    setattr(session_class, "__init__", __init__)  # noqa: B010 (mypy refuses assigning to a method)


def install_from_environment() -> FaultInjector | None:
    """Install the injector for the file named by `LOCAL_AWS_FAULTS_FILE`; nothing when it is unset."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    injector = FaultInjector(Path(path))
    install(injector)
    return injector
