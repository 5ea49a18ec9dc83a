"""One warm "Lambda container": imports a handler once, then runs invocations sent over a pipe.

Started by `local.stack.functions.FunctionWorker` as `python worker.py <config-json> <request-fd> <response-fd>`
with the function's own environment. It uses only the standard library so the handler's `sys.path` can be
exactly what Lambda gives it: the code directory (/var/task), the layer directories (/opt/python), then the
runtime's packages. Requests and responses are JSON lines on dedicated pipes, so whatever the handler prints
(Powertools logs) goes to stdout/stderr untouched. The one exception to "standard library only": when
`LOCAL_AWS_FAULTS_FILE` is set, `aws_faults.py` (botocore) is loaded before the handler to inject AWS faults.
"""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the Lambda Python runtime's context object that handlers use."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline: float) -> None:
        self.function_name: str = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = config["function_arn"]
        self.memory_limit_in_mb: int = int(config["memory_size"])
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[$LATEST]{config['logical_id']}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def error_payload(error: BaseException, error_type: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """The JSON Lambda returns for an unhandled exception."""
    payload: dict[str, Any] = {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_exception(type(error), error, error.__traceback__)[1:],
    }
    if request_id:
        payload["requestId"] = request_id
    return payload


def _json_default(value: Any) -> Any:
    # The Lambda runtime serialises Decimal (what boto3's DynamoDB resource returns) as a number.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _install_aws_faults() -> None:
    """Hook the fault layer into botocore before the handler's import can create a session.

    `aws_faults.py` is loaded by its path: the repository root is not on the function's sys.path (it is not in
    Lambda's either, and putting it there would let a handler import `local.*` by accident).
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aws_faults.py")
    spec = importlib.util.spec_from_file_location("local_stack_aws_faults", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    module.install_from_environment()


def _load_handler(config: dict[str, Any]) -> Any:
    module_name, _, function_name = config["handler"].rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler {config['handler']!r}: expected module.function")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def main() -> None:
    config = json.loads(sys.argv[1])
    requests = os.fdopen(int(sys.argv[2]), "rb")
    responses = os.fdopen(int(sys.argv[3]), "wb", buffering=0)
    here = os.path.dirname(os.path.abspath(__file__))
    runtime_paths = [path for path in sys.path if path and os.path.abspath(path) != here]
    sys.path[:] = [config["code_dir"], *config["layer_dirs"], *runtime_paths]
    os.chdir(config["code_dir"])
    if os.environ.get("LOCAL_AWS_FAULTS_FILE"):
        _install_aws_faults()  # a failure ends the worker: a fault test must not run without its faults

    def send(message: dict[str, Any]) -> None:
        responses.write(json.dumps(message, default=_json_default).encode() + b"\n")

    handler, init_error = _init(config)
    send({"ready": True, "init_error": init_error})
    for line in requests:
        request = json.loads(line)
        if init_error is not None:
            send({"error": {**init_error, "requestId": request["request_id"]}})
            continue
        try:
            send(_invoke(handler, config, request))
        except (TypeError, ValueError) as error:  # a result JSON cannot carry
            send({"error": error_payload(error, "Runtime.MarshalError", request["request_id"])})


def _init(config: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """The init phase: (the handler, None), or (None, the error every invoke reports, as Lambda does)."""
    try:
        return _load_handler(config), None
    except Exception as error:
        error_type = "Runtime.ImportModuleError" if isinstance(error, ImportError) else "Runtime.HandlerNotFound"
        if not isinstance(error, (ImportError, AttributeError, ValueError)):
            error_type = type(error).__name__
        traceback.print_exc()
        return None, error_payload(error, error_type)


def _invoke(handler: Any, config: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """One invocation's message back: its payload, or the error it raised."""
    request_id = request["request_id"]
    try:
        result = handler(request["event"], LambdaContext(config, request_id, request["deadline"]))
    except Exception as error:
        traceback.print_exc()
        return {"error": error_payload(error, request_id=request_id)}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return {"payload": result}


if __name__ == "__main__":
    main()
