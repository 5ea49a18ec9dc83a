"""Functions of the template as long-lived worker subprocesses (warm Lambda containers).

`function_specs` reads each `AWS::Serverless::Function` (Handler, CodeUri, Layers, Timeout, MemorySize,
Environment) into a `FunctionSpec` whose `environment` is the complete process environment the function gets.
`FunctionWorker` runs one spec in its own process and invokes it with a timeout equal to the function's Timeout.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from local.stack.resources import FAKE_CREDENTIALS
from local.stack.template import SERVERLESS_FUNCTION, SERVERLESS_LAYER, IntrinsicResolver, StackTemplate, TemplateError

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128
INIT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one function locally; JSON-serialisable so `invoke` can rebuild it."""

    logical_id: str
    function_name: str
    function_arn: str
    handler: str
    code_dir: str
    layer_dirs: list[str]
    timeout: int
    memory_size: int
    environment: dict[str, str]
    events: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FunctionSpec:
        return cls(**data)


@dataclass
class Invocation:
    """One invocation's outcome, shaped like Lambda's Invoke response."""

    request_id: str
    payload: Any
    function_error: str | None = None  # "Unhandled" as in the X-Amz-Function-Error header
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.function_error is None

    @property
    def error_text(self) -> str:
        """`errorType: errorMessage` of a failed invocation's payload, for the triggers' warnings."""
        if isinstance(self.payload, dict):
            return f"{self.payload.get('errorType')}: {self.payload.get('errorMessage')}"
        return str(self.payload)


# What the triggers call: (function logical id, event) -> its invocation.
Invoker = Callable[[str, Any], Invocation]


def base_environment(
    spec_name: str, *, region: str, endpoint_url: str, dynamodb_url: str | None = None
) -> dict[str, str]:
    """What the Lambda runtime sets, plus moto's endpoint (DynamoDB's own when it runs apart) and fake credentials;
    no variable of the caller leaks."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Keep ~/.aws profiles out: every call goes to moto with the fake credentials below.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **FAKE_CREDENTIALS,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": endpoint_url,
        # botocore's service-specific endpoint: DynamoDB goes to dynalite, everything else to moto.
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url or endpoint_url,
        "AWS_LAMBDA_FUNCTION_NAME": spec_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec_name}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        # No X-Ray daemon on loopback: Powertools Tracer would only log failed segment sends.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def function_specs(
    template: StackTemplate,
    resolver: IntrinsicResolver,
    *,
    endpoint_url: str,
    dynamodb_url: str | None = None,
    environment_overrides: Mapping[str, str] | None = None,
) -> dict[str, FunctionSpec]:
    """A `FunctionSpec` per `AWS::Serverless::Function`, its environment resolved against the physical ids."""
    specs = {}
    for logical_id in template.of_type(SERVERLESS_FUNCTION):
        properties = template.properties(logical_id)
        code_dir = _code_dir(template, logical_id, properties)
        name = resolver.physical_ids.ref(logical_id)
        memory = int(resolver.resolve(properties.get("MemorySize", DEFAULT_MEMORY_MB)))
        environment = base_environment(
            name, region=template.region, endpoint_url=endpoint_url, dynamodb_url=dynamodb_url
        )
        environment.update(_template_environment(resolver, properties))
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
                "_HANDLER": str(properties["Handler"]),
                "LAMBDA_TASK_ROOT": str(code_dir),
            }
        )
        environment.update(environment_overrides or {})
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=name,
            function_arn=resolver.physical_ids.get_att(logical_id, "Arn"),
            handler=str(properties["Handler"]),
            code_dir=str(code_dir),
            layer_dirs=_layer_dirs(template, logical_id, properties.get("Layers") or []),
            timeout=int(resolver.resolve(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            memory_size=memory,
            environment=environment,
            events=resolver.resolve(properties.get("Events") or {}),
        )
    return specs


def _code_dir(template: StackTemplate, logical_id: str, properties: Mapping[str, Any]) -> Path:
    code_uri = properties.get("CodeUri")
    if not isinstance(code_uri, str):
        raise TemplateError(f"{logical_id}: CodeUri must be a local directory, got {code_uri!r}")
    code_dir = (template.base_dir / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"{logical_id}: CodeUri {code_uri!r} is not a directory")
    if "Handler" not in properties:
        raise TemplateError(f"{logical_id}: no Handler")
    return code_dir


def _template_environment(resolver: IntrinsicResolver, properties: Mapping[str, Any]) -> dict[str, str]:
    """The function's `Environment` variables, then Lambda's log variables from its `LoggingConfig`."""
    variables = resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
    environment = {key: _env_text(value) for key, value in variables.items()}
    logging_config = resolver.resolve(properties.get("LoggingConfig") or {})
    if logging_config.get("LogFormat"):
        environment["AWS_LAMBDA_LOG_FORMAT"] = str(logging_config["LogFormat"])
    if logging_config.get("ApplicationLogLevel"):
        environment["AWS_LAMBDA_LOG_LEVEL"] = str(logging_config["ApplicationLogLevel"])
    return environment


def _layer_dirs(template: StackTemplate, logical_id: str, layers: list[Any]) -> list[str]:
    """Local layers as the directories Lambda would mount at /opt/python; ARN layers are skipped.

    Layers given as ARNs (the public Powertools layer) have their packages in this interpreter's
    site-packages already, as in the dev requirements.
    """
    directories = []
    for layer in layers:
        if not (isinstance(layer, dict) and isinstance(layer.get("Ref"), str)):
            continue
        layer_id = layer["Ref"]
        resource = template.resources.get(layer_id, {})
        if resource.get("Type") != SERVERLESS_LAYER:
            continue
        content_uri = (resource.get("Properties") or {}).get("ContentUri")
        if not isinstance(content_uri, str):
            raise TemplateError(f"{logical_id}: layer {layer_id} ContentUri must be a local directory")
        content = (template.base_dir / content_uri).resolve()
        # A prebuilt layer keeps its packages in python/; a makefile-built one is copied there at build time.
        directories.append(str(content / "python" if (content / "python").is_dir() else content))
    return directories


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class WorkerDied(RuntimeError):
    """The worker process ended while it was starting or running an invocation."""


class FunctionWorker:
    """A warm container for one function: a subprocess that imported the handler, invoked one event at a time."""

    def __init__(self, spec: FunctionSpec, *, log_path: Path | None = None, log_fd: int | None = None) -> None:
        """The worker's stdout and stderr are appended to `log_path`, else written to the open descriptor `log_fd`
        (`make invoke` passes its stderr), else inherited."""
        self.spec = spec
        self.log_path = log_path
        self.log_fd = log_fd
        self.invocations = 0
        self.cold_starts = 0
        self.timeouts = 0  # invocations killed at the function's Timeout (Sandbox.Timedout)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: IO[bytes] | None = None
        self._responses_fd: int | None = None
        self._buffer = b""
        self._log_file: IO[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and wait until the handler module is imported (the init phase)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        config = {
            "logical_id": self.spec.logical_id,
            "function_name": self.spec.function_name,
            "function_arn": self.spec.function_arn,
            "memory_size": self.spec.memory_size,
            "handler": self.spec.handler,
            "code_dir": self.spec.code_dir,
            "layer_dirs": self.spec.layer_dirs,
        }
        output: Any = self.log_fd
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("ab")
            output = self._log_file
        try:
            self._process = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), json.dumps(config), str(request_read), str(response_write)],
                env=self.spec.environment,
                cwd=self.spec.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                pass_fds=(request_read, response_write),
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._requests = os.fdopen(request_write, "wb", buffering=0)
        self._responses_fd = response_read
        self._buffer = b""
        self.cold_starts += 1
        ready = self._read_message(time.monotonic() + INIT_TIMEOUT_SECONDS)
        if ready is None or not ready.get("ready"):
            self._kill_locked()
            raise WorkerDied(f"{self.spec.logical_id}: worker did not start (see its log)")

    def stop(self) -> None:
        with self._lock:
            self._kill_locked(graceful=True)

    def _kill_locked(self, *, graceful: bool = False) -> None:
        if self._requests is not None:
            self._requests.close()  # EOF on the request pipe ends the worker's loop
            self._requests = None
        if self._process is not None:
            if not graceful:
                self._process.kill()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._responses_fd is not None:
            os.close(self._responses_fd)
            self._responses_fd = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> bool:
        """Kill the process now, even mid-invocation (the sandbox dying: out of memory, a host failure). The
        invocation in flight fails with Runtime.ExitError; the next one starts cold. False when nothing ran."""
        process = self._process
        if process is None or process.poll() is not None:
            return False
        process.kill()
        return True

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs (benchmarks read its memory in /proc), else None."""
        return self._process.pid if self.running and self._process is not None else None

    # -- invocation ---------------------------------------------------------------------------------

    def invoke(self, event: Any, *, request_id: str | None = None) -> Invocation:
        """Run the handler on `event`; a timeout or crash resets the container, as Lambda does."""
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            if not self.running:
                self._kill_locked()
                try:
                    self._start_locked()
                except WorkerDied as error:
                    return _failed(request_id, "Runtime.ExitError", str(error), 0.0)
            assert self._requests is not None
            started = time.monotonic()
            deadline = started + self.spec.timeout
            self.invocations += 1
            message = {"request_id": request_id, "event": event, "deadline": time.time() + self.spec.timeout}
            try:
                self._requests.write(json.dumps(message).encode() + b"\n")
                response = self._read_message(deadline)
            except (BrokenPipeError, WorkerDied):
                self._kill_locked()
                return _failed(request_id, "Runtime.ExitError", "the function process exited", started)
            if response is None:
                self._kill_locked()
                self.timeouts += 1
                return _failed(
                    request_id, "Sandbox.Timedout", f"Task timed out after {self.spec.timeout:.2f} seconds", started
                )
            elapsed = (time.monotonic() - started) * 1000
            if "error" in response:
                return Invocation(request_id, response["error"], "Unhandled", elapsed)
            return Invocation(request_id, response.get("payload"), None, elapsed)

    def _read_message(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line from the worker, or None when the deadline passes first."""
        assert self._responses_fd is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self._responses_fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(self._responses_fd, 1 << 16)
            if not chunk:
                raise WorkerDied(f"{self.spec.logical_id}: worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message


def _failed(request_id: str, error_type: str, message: str, started: float) -> Invocation:
    elapsed = (time.monotonic() - started) * 1000 if started else 0.0
    payload = {"errorMessage": message, "errorType": error_type, "requestId": request_id}
    return Invocation(request_id, payload, "Unhandled", elapsed)
