"""template.yaml: what it does, not what it says.

The template's design rules (no Scan, secrets scoped to the stack, queues outlast their consumers, schedules keep
their failures, tables that are backed up are kept, no route open by omission) are cfn-lint rules in
tools/cfn_rules/ (tests/template/test_cfn_rules.py shows each one catching a broken template), next to
cfn-lint-serverless's best-practice rules. The fast tests here tie the template to the code: the samples in events/
are what its triggers deliver and parse into the models; the secret it creates reads as placeholders; the layer
bundles the tested versions. The `template` tests run cfn-lint with those rules, `sam validate --lint` and
`sam build`, and import the built artifacts the way Lambda would (handler dir, then /opt/python = the built layer,
then the runtime's boto3).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from local.stack.template import parse_template_text
from xengage.pipeline.events import ConsoleCollect, ScheduleTick
from xengage.pipeline.export_job import job_from_event
from xengage.pipeline.records import CollectRecord

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "events"
SAM_CLI = REPO / ".venv-sam" / "bin" / "sam"
# Persistent (gitignored) SAM build caches: a rebuild with unchanged sources copies artifacts instead of pip.
SAM_CACHE = REPO / ".aws-sam" / "test-cache"

FUNCTIONS = {
    "PlannerFunction": "planner",
    "CollectorFunction": "collector",
    "ApiFunction": "api",
    "ExportFunction": "exporter",
}
# What tests/api/test_iam_grants.py compares the AWS calls it records with (the grant as the template writes it).
SECRET_ARN_PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/"
ACCOUNT_SECRETS = SECRET_ARN_PREFIX + "accounts/*"
PENDING_SECRETS = SECRET_ARN_PREFIX + "oauth-pending/*"
# What the python3.13 runtime ships and the layer therefore leaves out (see layers/common/requirements.txt).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six")
# The cfn-lint of `make cfn-lint`, with the same rules.
CFN_LINT_RULES = ("--append-rules", "cfn_lint_serverless.rules", "--append-rules", "tools/cfn_rules")
SCHEDULER_PLACEHOLDER = re.compile(r"<aws\.scheduler\.[a-z-]+>")


# --- helpers (the grant readers are tests/api/test_iam_grants.py's: a function's grants as (action, resource)) --


def resource_name(value: Any) -> str:
    """A readable, comparable form of a policy Resource: Ref X -> X, GetAtt X.Arn -> X.Arn, Sub s -> s."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref":
            return str(inner)
        if key == "Fn::GetAtt":
            return ".".join(inner) if isinstance(inner, list) else str(inner)
        if key == "Fn::Sub" and isinstance(inner, str):
            return inner
    raise AssertionError(f"unexpected policy resource shape: {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def inline_grants(function: dict[str, Any]) -> set[tuple[str, str]]:
    grants: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    grants.add((action, resource_name(resource)))
    return grants


def policy_templates(function: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, str):
            found.add((policy, ""))  # a managed policy name or ARN
        elif "Statement" not in policy:
            ((name, args),) = policy.items()
            found |= {(name, resource_name(arg)) for arg in args.values()} if args else {(name, "")}
    return found


def load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return parse_template_text(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


# --- the template and the code --------------------------------------------------------------------------------


def test_the_app_secret_the_stack_creates_pauses_the_app_until_it_is_replaced(
    aws: Any, resources: dict[str, Any]
) -> None:
    import boto3

    from xengage.dal.secrets import AppSecretPlaceholder, SecretStore

    # Given the app secret holding exactly what the stack puts in it
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn, SecretString=resources["AppSecret"]["Properties"]["SecretString"]
    )
    # When the functions read the app's credentials
    # Then every field reads as the template's placeholder (planning and live queries pause and say so)
    with pytest.raises(AppSecretPlaceholder, match="consumer_key, consumer_secret, bearer_token"):
        SecretStore(aws.secret_prefix, aws.app_secret_arn).load_app(fresh=True)


def test_layer_pins_equal_the_tested_versions() -> None:
    # Given the layer's requirements and the pinned development environment the tests run in
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
            if match:
                found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
        return found

    layer = pins(REPO / "layers" / "common" / "requirements.txt")
    tested = pins(REPO / "requirements" / "dev.txt")
    # Then every bundled package has exactly the tested version, and nothing the runtime ships is bundled
    assert {"aws-lambda-powertools", "pydantic", "requests-oauthlib", "oauthlib", "requests"} <= set(layer)
    assert {name: version for name, version in layer.items() if tested.get(name) != version} == {}
    assert not set(layer) & {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"}
    # And the export function's own packages (pyarrow, not in the layer: no other function loads it) too
    export = pins(REPO / "functions" / "exporter" / "requirements.txt")
    assert set(export) == {"pyarrow"} and not set(export) & set(layer)
    assert {name: version for name, version in export.items() if tested.get(name) != version} == {}


# --- events/ samples ------------------------------------------------------------------------------------------


def schedules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function/Event -> Properties of every ScheduleV2 event of the template."""
    return {
        f"{logical_id}/{name}": event["Properties"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] == "ScheduleV2"
    }


def with_defaults(value: Any, parameters: dict[str, Any]) -> Any:
    """A literal, !Ref or !Sub of parameters, as CloudFormation resolves it with the parameters' defaults."""
    if isinstance(value, dict) and "Ref" in value:
        return parameters[value["Ref"]]["Default"]
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{(\w+)\}", lambda match: str(parameters[match.group(1)]["Default"]), value["Fn::Sub"])
    return value


SCHEDULES = schedules(parse_template_text(TEMPLATE.read_text())["Resources"])


@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
def test_every_schedule_delivers_what_a_sample_in_events_shows(template: dict[str, Any], schedule_name: str) -> None:
    # Given a schedule's Input as CloudFormation deploys it (the parameters' defaults), and the samples in events/
    schedule = SCHEDULES[schedule_name]
    delivered = json.loads(with_defaults(schedule["Input"], template["Parameters"]))
    samples = {path.name: load_event(path.name) for path in sorted(EVENTS.glob("*.json"))}
    # When the samples are compared with it, Scheduler's placeholders matching any value
    matching = {
        name: sample
        for name, sample in samples.items()
        if isinstance(sample, dict)
        and set(sample) == set(delivered)
        and all(SCHEDULER_PLACEHOLDER.fullmatch(str(value)) or sample[key] == value for key, value in delivered.items())
    }
    # Then one sample is what Scheduler delivers (tests/integration/test_invoke.py runs each through its function),
    # with real values where Scheduler fills them in
    assert len(matching) == 1, (schedule_name, delivered)
    ((name, sample),) = matching.items()
    assert not SCHEDULER_PLACEHOLDER.search(json.dumps(sample)), name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sample["scheduled_time"]), name
    # And the planner's (or the export's) event model reads it
    assert ScheduleTick.model_validate(sample) if "endpoint" in sample else job_from_event(sample)
    # And a schedule that tells its function its expression (which bounds a tick's work) tells its own
    if "schedule_expression" in delivered:
        expression = with_defaults(schedule["ScheduleExpression"], template["Parameters"])
        assert delivered["schedule_expression"] == expression == sample["schedule_expression"], name


def test_sqs_sample_records_are_valid_collect_messages() -> None:
    # Given the SQS sample
    records = load_event("sqs_collect_batch.json")["Records"]
    # When each record is parsed as the collector's batch processing parses it (the record model, its body a message)
    messages = [CollectRecord.model_validate(record).body for record in records]
    # Then there are two valid messages, one app-token /totals batch and one owner-token time series batch
    assert len(messages) == 2
    assert [message.endpoint.value for message in messages] == ["totals", "28hr"]
    assert messages[0].account_id is None and messages[1].account_id


@pytest.mark.parametrize(
    ("sample_file", "endpoint", "needs_account", "has_window"),
    [
        ("collector_console_totals.json", "totals", False, False),
        ("collector_console_28hr.json", "28hr", True, False),
        ("collector_console_historical.json", "historical", True, True),
    ],
)
def test_collector_console_samples_are_valid_payloads(
    sample_file: str, endpoint: str, needs_account: bool, has_window: bool
) -> None:
    # Given a console sample
    payload = load_event(sample_file)
    # When it is parsed as the collector's handler parses it, and split into messages (at the tick it runs)
    (message,) = ConsoleCollect.model_validate(payload).messages(datetime(2026, 11, 25, 18, 15, tzinfo=UTC))
    # Then it is valid for its endpoint
    assert message.endpoint.value == endpoint
    assert bool(message.account_id) == needs_account
    assert (message.start is not None and message.end is not None) == has_window


@pytest.mark.parametrize(
    ("sample_file", "method", "path"),
    [
        ("api_get_tweet_metrics.json", "GET", re.compile(r"/tweets/\d+/metrics")),
        ("api_post_tweets.json", "POST", re.compile(r"/tweets")),
    ],
)
def test_api_samples_are_rest_proxy_events_for_the_proxy_route(
    resources: dict[str, Any], sample_file: str, method: str, path: re.Pattern[str]
) -> None:
    # Given an API Gateway sample and the function's proxy route
    event = load_event(sample_file)
    route = resources["ApiFunction"]["Properties"]["Events"]["ProxyApi"]["Properties"]["Path"]
    # Then it is a REST proxy event on that route, as the v1 stage delivers it, without credentials
    assert event["resource"] == route == event["requestContext"]["resourcePath"]
    assert event["httpMethod"] == method == event["requestContext"]["httpMethod"]
    assert path.fullmatch(event["path"])
    assert event["pathParameters"] == {"proxy": event["path"].lstrip("/")}
    assert event["requestContext"]["stage"] == "v1"
    assert event["requestContext"]["path"] == "/v1" + event["path"]
    assert not {"Authorization", "authorization", "x-api-key"} & set(event["headers"])
    if event["body"] is not None:
        assert isinstance(json.loads(event["body"]), dict)


def test_export_samples_are_jobs_of_the_closed_days_and_a_backfill() -> None:
    # Given the export's two samples: the daily tick (its schedule's Input, above) and a backfill
    daily, backfill = load_event("export_daily.json"), load_event("export_backfill.json")
    # When the function reads them as jobs
    daily_job, backfill_job = job_from_event(daily), job_from_event(backfill)
    # Then the daily job is the closed days before the tick, and the backfill's its inclusive range
    assert (daily_job.last_day - daily_job.day).days == daily["days"] - 1
    assert daily_job.last_day.isoformat() < daily["scheduled_time"][:10]
    assert (backfill_job.day.isoformat(), backfill_job.last_day.isoformat()) == (backfill["from"], backfill["to"])


def test_samples_hold_no_secret_material() -> None:
    # Given every sample event
    texts = {path.name: path.read_text() for path in sorted(EVENTS.glob("*.json"))}
    # Then none carries a token, key or signature field (samples are committed and shown in docs)
    assert len(texts) == 11
    forbidden = re.compile(
        r"access_token|token_secret|consumer_secret|consumer_key|bearer_token|oauth_signature|AKIA[0-9A-Z]{16}", re.I
    )
    assert {name: forbidden.findall(text) for name, text in texts.items() if forbidden.search(text)} == {}


# --- tools: cfn-lint (with the project's rules), sam validate, sam build ------------------------------------------
# Each tool is slow to start (seconds), so the first test that needs one starts all of them at once and every test
# then waits for its own: the suite takes about as long as the slowest tool, not their sum.


def tool_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", **extra}
    # The layer Makefile runs `python3 -m pip`: make that the project venv's interpreter, which surely has pip.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def host_platform() -> str:
    machine = sysconfig.get_platform().rsplit("-", 1)[-1]
    return f"manylinux2014_{machine}"


@dataclass
class ToolRun:
    """A started tool whose combined output goes to a file (large outputs would fill a pipe and stall it)."""

    process: subprocess.Popen[str]
    log: Path

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return returncode, self.log.read_text()


@dataclass
class Tools:
    runs: dict[str, ToolRun]
    lambda_build: Path  # `sam build` output: what Lambda gets (arm64, cp313 wheels)
    host_layer: Path  # the layer Makefile's output with wheels for this machine, importable here

    def result(self, name: str) -> tuple[int, str]:
        if name not in self.runs:
            pytest.skip(f"{name} needs the SAM CLI venv ({SAM_CLI}; run `make sam-venv`) and make")
        return self.runs[name].finish()


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    root = tmp_path_factory.mktemp("template-tools")
    have_sam = SAM_CLI.exists()
    have_make = shutil.which("make") is not None
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "cfn-lint": ([str(Path(sys.executable).parent / "cfn-lint"), *CFN_LINT_RULES, "--", str(TEMPLATE)], {}),
    }
    if have_sam:
        commands["sam-validate"] = (
            [str(SAM_CLI), "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
            {},
        )
    if have_sam and have_make:
        # --cached with a persistent cache: unchanged sources are copied instead of rebuilt with pip.
        commands["sam-build"] = (
            [
                *(str(SAM_CLI), "build", "--template", str(TEMPLATE), "--build-dir", str(root / "lambda")),
                *("--cached", "--cache-dir", str(SAM_CACHE), "--parallel"),
            ],
            {},
        )
    if have_make:
        commands["host-layer"] = (
            [
                *("make", "--no-print-directory", "-C", str(REPO / "layers" / "common"), "build-CommonLayer"),
                f"ARTIFACTS_DIR={root / 'host-layer'}",
                f"LAYER_PLATFORM={host_platform()}",
                "LAYER_PYTHON_VERSION={}.{}".format(*sys.version_info),
            ],
            {},
        )
    runs: dict[str, ToolRun] = {}
    try:
        for name, (argv, extra_env) in commands.items():
            log = root / f"{name}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=tool_env(**extra_env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            runs[name] = ToolRun(process, log)
        yield Tools(runs=runs, lambda_build=root / "lambda", host_layer=root / "host-layer" / "python")
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.mark.template
def test_cfn_lint_passes(tools: Tools) -> None:
    # When cfn-lint (the project venv's) checks the template with cfn-lint-serverless's rules and the project's
    returncode, output = tools.result("cfn-lint")
    # Then it reports nothing at all (errors, warnings or informational; ignores are in the template, with reasons)
    assert (returncode, output) == (0, "")


@pytest.mark.template
def test_sam_validate_lint_passes(tools: Tools) -> None:
    # When the SAM CLI validates the template offline, with its own lint
    returncode, output = tools.result("sam-validate")
    # Then it is valid
    assert returncode == 0, output
    assert "is a valid SAM Template" in output


@pytest.mark.template
def test_sam_build_produces_an_arm64_layer_without_runtime_packages(tools: Tools) -> None:
    # When `sam build` runs the Makefiles (BuildMethod makefile: no local python3.13, no Docker)
    returncode, output = tools.result("sam-build")
    assert returncode == 0, output
    layer = tools.lambda_build / "CommonLayer" / "python"
    # Then the layer holds the library and cp313 aarch64 binaries, and leaves boto3 & co. to the runtime; each
    # function artifact holds its handler
    assert (layer / "xengage" / "__init__.py").is_file()
    # And its bytecode is python3.13's only: compiled where the build found a python3.13, else said to be missing
    bytecode = list(layer.rglob("*.pyc"))
    assert all(".cpython-313." in path.name for path in bytecode), bytecode[:3]
    assert bool(bytecode) != ("the layer ships without bytecode" in output), output[-500:]
    binaries = [path.name for path in layer.rglob("*.so")]
    assert binaries and all("cpython-313-aarch64-linux-gnu" in name for name in binaries), binaries
    assert not [name for name in RUNTIME_PROVIDED if (layer / name).exists()]
    for logical_id, module in FUNCTIONS.items():
        assert (tools.lambda_build / logical_id / f"{module}.py").is_file()
    # And only the export function bundles pyarrow (aarch64, cp313), within Lambda's 250 MB unzipped with the layer
    export = tools.lambda_build / "ExportFunction"
    assert (export / "pyarrow" / "parquet" / "__init__.py").is_file()
    assert [path.name for path in (export / "pyarrow").glob("lib.cpython-313-aarch64-linux-gnu.so")]
    assert not [
        name for name in FUNCTIONS if name != "ExportFunction" and (tools.lambda_build / name / "pyarrow").exists()
    ]
    assert not (layer / "pyarrow").exists()
    unzipped = sum(path.stat().st_size for root in (export, layer.parent) for path in root.rglob("*") if path.is_file())
    assert unzipped < 250 * 1024 * 1024, unzipped
    assert "CodeUri: PlannerFunction" in (tools.lambda_build / "template.yaml").read_text()


IMPORT_SCRIPT = """
import importlib, json, pkgutil, sys
function_dir, layer_dir, runtime_dir, module = sys.argv[1:5]
sys.path[:0] = [function_dir, layer_dir, runtime_dir]  # /var/task, /opt/python, the runtime's boto3
handler = importlib.import_module(module).lambda_handler
import xengage
library = [info.name for info in pkgutil.walk_packages(xengage.__path__, "xengage.")]
for name in library:
    importlib.import_module(name)
bundled = {"pydantic", "requests_oauthlib", "aws_lambda_powertools"}
third_party = sorted({name.split(".")[0] for name in sys.modules} & bundled)
print(json.dumps({
    "handler": callable(handler),
    "xengage": xengage.__file__,
    "modules": len(library),
    "third_party": {name: sys.modules[name].__file__ for name in third_party},
}))
"""


@pytest.fixture(scope="module")
def runtime_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in for the runtime's own site-packages: only boto3 and what boto3 needs, linked from this venv."""
    runtime = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PROVIDED:
        spec = find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


@pytest.mark.template
@pytest.mark.parametrize("logical_id", list(FUNCTIONS))
def test_built_artifacts_import_like_lambda(tools: Tools, runtime_packages: Path, logical_id: str) -> None:
    # Given the built function artifact, the layer from the same Makefile with wheels for this machine, and only
    # boto3 & co. besides them
    for name in ("sam-build", "host-layer"):
        returncode, output = tools.result(name)
        assert returncode == 0, output
    function_dir = tools.lambda_build / logical_id
    # And the layer Makefile compiled every module of the library for this interpreter, unchecked (flags 0b01: hash
    # based, source not checked), so the read-only /opt/python never compiles at a cold start
    for source in (tools.host_layer / "xengage").rglob("*.py"):
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 1, source
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": FUNCTIONS[logical_id],
    }
    argv = [str(function_dir), str(tools.host_layer), str(runtime_packages), FUNCTIONS[logical_id]]
    # When a fresh interpreter without site-packages imports the handler and every xengage module
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", IMPORT_SCRIPT, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=function_dir,
        check=False,
    )
    # Then everything imports from the artifacts alone: the library and its dependencies come from the layer
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["handler"] is True
    assert report["xengage"].startswith(str(tools.host_layer))
    assert report["modules"] >= 10
    assert report["third_party"], "the handler should pull in Powertools at least"
    assert all(path.startswith(str(tools.host_layer)) for path in report["third_party"].values()), report


def test_samconfig_overrides_name_template_parameters_and_reserve_nothing(template: dict[str, Any]) -> None:
    # Given every parameter_overrides of samconfig.toml
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    overrides = [
        dict(pair.split("=", 1) for pair in section["parameters"]["parameter_overrides"].split())
        for section in (env.get("deploy") for env in config.values() if isinstance(env, dict))
        if section and "parameter_overrides" in section.get("parameters", {})
    ]
    # Then each names a template parameter, and none reserves collector concurrency (accounts limited to 10 refuse it)
    assert overrides
    for values in overrides:
        assert set(values) <= set(template["Parameters"]), values
        assert values.get("CollectorReservedConcurrency", "0") == "0"
