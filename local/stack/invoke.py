"""`python -m local.stack.invoke` (`make invoke FUNCTION=<LogicalId> EVENT=<file>`): `sam local invoke` for the
stack `make run` is running.

Reads the running stack's state file (`.local-state/stack.json`, or `$LOCAL_STATE_DIR/stack.json`, or
`--state-file`), rebuilds the function's `FunctionSpec` from it (handler, code and layer directories, timeout,
memory, and the template environment: tables, queues, secret names, the moto endpoint) and runs the function once
in a fresh worker process (a cold start, as `sam local invoke` starts a fresh container) with the event file's
JSON as the event. The result payload is printed as one line of JSON on stdout; the function's logs and the
START/END/REPORT lines go to stderr, so `make invoke ... | jq` works.

Exit status: 0 the function returned a result; 1 the invocation failed (an unhandled exception, a timeout or a
crash: the Lambda error payload is printed); 2 usage errors (no running stack, unknown function, missing or
invalid event file).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from local.stack.functions import FunctionSpec, FunctionWorker, Invocation, WorkerDied

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
STATE_FILE_NAME = "stack.json"

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2

# Which sample events in events/ suit which function (only used to suggest one).
SAMPLE_PREFIXES: dict[str, tuple[str, ...]] = {
    "PlannerFunction": ("schedule_",),
    "CollectorFunction": ("sqs_", "collector_"),
    "ApiFunction": ("api_",),
    "ExportFunction": ("export_",),
}

USAGE = "make invoke FUNCTION=<LogicalId> EVENT=<event.json>   (python -m local.stack.invoke -f <LogicalId> -e <file>)"


class UsageError(Exception):
    """The command line, the state file or the event file cannot be used; the message says what to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\nusage: {USAGE}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m local.stack.invoke",
        description="Run one function of the running local stack once (a cold start) with an event file, "
        "like `sam local invoke`. The result goes to stdout, logs to stderr.",
    )
    parser.add_argument("-f", "--function", default="", help="the function's logical id, e.g. PlannerFunction")
    parser.add_argument(
        "-e", "--event", default="", help="a JSON event file (e.g. events/schedule_totals.json); - reads stdin"
    )
    parser.add_argument(
        "--state-file",
        default="",
        help=f"the running stack's state file (default: $LOCAL_STATE_DIR/{STATE_FILE_NAME}, "
        f"else .local-state/{STATE_FILE_NAME})",
    )
    return parser


def default_state_file(env: Mapping[str, str]) -> Path:
    """Where `make run` (local/run.py) writes its state: LOCAL_STATE_DIR, else .local-state in the repository."""
    return Path(env.get("LOCAL_STATE_DIR") or REPO_ROOT / ".local-state") / STATE_FILE_NAME


# --- the running stack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningStack:
    """What the state file says about the running stack."""

    path: Path
    moto_url: str
    functions: dict[str, dict[str, Any]]

    @property
    def function_ids(self) -> list[str]:
        return sorted(self.functions)


def read_state(path: Path) -> RunningStack:
    """The stack recorded in `path`; UsageError when there is none or it is not running any more."""
    if not path.is_file():
        raise UsageError(
            f"no running local stack: {path} does not exist. Start it with `make run` (in another terminal) "
            "and invoke again."
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        stack = RunningStack(path=path, moto_url=str(state["moto_url"]), functions=dict(state["functions"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"the state file {path} is unreadable ({error}); restart the stack with `make run`") from None
    if not moto_answers(stack.moto_url):
        raise UsageError(
            f"the local stack recorded in {path} is not running (its moto server {stack.moto_url} does not answer); "
            "start it with `make run`"
        )
    return stack


def moto_answers(url: str, timeout: float = 2.0) -> bool:
    """True when something answers HTTP at the moto server's URL."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error is still an answer
    except (urllib.error.URLError, OSError):
        return False


def function_spec(stack: RunningStack, function_id: str) -> FunctionSpec:
    """The recorded spec of `function_id`: its environment already points at the running moto and DynamoDB."""
    if function_id not in stack.functions:
        close = difflib.get_close_matches(function_id, stack.function_ids, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise UsageError(
            f"unknown function {function_id!r}; the template's functions: {', '.join(stack.function_ids)}.{hint}"
        )
    try:
        spec = FunctionSpec.from_json(stack.functions[function_id])
    except TypeError as error:
        raise UsageError(
            f"the state file {stack.path} records {function_id} in a form this version cannot read ({error}); "
            "restart the stack with `make run`"
        ) from None
    return spec


# --- the event -------------------------------------------------------------------------------------


def sample_events(function_id: str | None = None) -> list[str]:
    """The sample events in events/ (those suiting `function_id` when it is known), as paths to type."""
    if not EVENTS_DIR.is_dir():
        return []
    prefixes = SAMPLE_PREFIXES.get(function_id or "", ("",))
    return [_display_path(path) for path in sorted(EVENTS_DIR.glob("*.json")) if path.name.startswith(tuple(prefixes))]


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_event(source: str, stdin: TextIO) -> Any:
    """The event: JSON from the file `source` ("-" = stdin); UsageError naming the file when it is unusable."""
    if source == "-":
        text, name = stdin.read(), "stdin"
    else:
        path = Path(source)
        if not path.exists():
            raise UsageError(f"event file {source} does not exist (relative paths start at {Path.cwd()})")
        if not path.is_file():
            raise UsageError(f"event file {source} is not a file")
        try:
            text, name = path.read_text(encoding="utf-8"), f"event file {source}"
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"event file {source} cannot be read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{name} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None


# --- invoking --------------------------------------------------------------------------------------


def _fileno(stream: TextIO) -> int:
    """The descriptor behind `stream`, or 2 when it has none (a StringIO under test)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def invoke_once(spec: FunctionSpec, event: Any, err: TextIO) -> Invocation:
    """Run `spec` once in a fresh worker process (init + one invocation), its output on `err`'s descriptor."""
    request_id = str(uuid.uuid4())
    worker = FunctionWorker(spec, log_fd=_fileno(err))
    print(
        f"Invoking {spec.handler} ({spec.logical_id}, {spec.function_name}): a cold start in a fresh process",
        file=err,
        flush=True,
    )
    started = time.monotonic()
    try:
        try:
            worker.start()
        except WorkerDied as error:
            payload = {"errorMessage": str(error), "errorType": "Runtime.ExitError", "requestId": request_id}
            return Invocation(request_id, payload, "Unhandled")
        init_ms = (time.monotonic() - started) * 1000
        print(f"START RequestId: {request_id} Version: $LATEST", file=err, flush=True)
        invocation = worker.invoke(event, request_id=request_id)
    finally:
        worker.stop()
    print(f"END RequestId: {request_id}", file=err)
    print(
        f"REPORT RequestId: {request_id}\tInit Duration: {init_ms:.2f} ms\tDuration: {invocation.duration_ms:.2f} ms"
        f"\tMemory Size: {spec.memory_size} MB\tTimeout: {spec.timeout} s",
        file=err,
        flush=True,
    )
    return invocation


def _usage_text(state_file: Path) -> str:
    lines = [f"usage: {USAGE}"]
    try:
        functions = read_state(state_file).function_ids
    except UsageError:
        functions = []
    if functions:
        lines.append(f"functions of the running stack: {', '.join(functions)}")
    else:
        lines.append(f"(no running stack at {state_file}: start one with `make run` first)")
    samples = sample_events()
    if samples:
        lines.append("sample events:")
        for function_id, prefixes in SAMPLE_PREFIXES.items():
            suited = [path for path in samples if Path(path).name.startswith(prefixes)]
            if suited:
                lines.append(f"  {function_id:<18} {' '.join(suited)}")
    lines.append("e.g. make invoke FUNCTION=PlannerFunction EVENT=events/schedule_totals.json")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except UsageError as error:
        print(f"make invoke: {error}", file=err)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    state_file = Path(args.state_file) if args.state_file else default_state_file(env)
    function_id = args.function.strip()
    try:
        spec, event = _spec_and_event(state_file, function_id, args.event.strip(), stdin or sys.stdin)
    except UsageError as error:
        print(f"make invoke: {error}", file=err)
        return EXIT_USAGE
    invocation = invoke_once(spec, event, err)
    print(json.dumps(invocation.payload), file=out, flush=True)
    if not invocation.ok:
        error_type = invocation.payload.get("errorType") if isinstance(invocation.payload, dict) else None
        print(f"make invoke: {function_id} failed ({error_type or invocation.function_error})", file=err)
        return EXIT_FUNCTION_ERROR
    return EXIT_OK


def _spec_and_event(state_file: Path, function_id: str, event_source: str, stdin: TextIO) -> tuple[FunctionSpec, Any]:
    """The function's spec from the running stack's state, and the event; UsageError naming what is missing."""
    if not function_id and not event_source:
        raise UsageError(f"FUNCTION and EVENT are required.\n{_usage_text(state_file)}")
    stack = read_state(state_file)
    if not function_id:
        raise UsageError(f"FUNCTION is required: one of {', '.join(stack.function_ids)}\nusage: {USAGE}")
    spec = function_spec(stack, function_id)
    if not event_source:
        samples = sample_events(function_id)
        hint = f"; samples for {function_id}: {' '.join(samples)}" if samples else ""
        raise UsageError(f"EVENT is required: a JSON event file{hint}\nusage: {USAGE}")
    return spec, read_event(event_source, stdin)


if __name__ == "__main__":
    sys.exit(main())
