"""`python -m local.run` (`make run`): the whole collector on loopback, no Docker, no AWS account.

Starts the Engagement API emulator (unless ENGAGEMENT_API_URL points elsewhere), moto server with the
template's tables/queues/secret, a warm worker per function, the schedules, the SQS poller and the REST API;
seeds a demo account and tracked Posts; runs a first collection and prints what landed; then keeps running
until Ctrl-C / SIGTERM. Every setting is an environment variable, documented in local/stack/README.md.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from local.stack.schedules import iso_utc
from local.stack.seed import SeedAccount, SeedPlan, seed_stack
from local.stack.stack import LocalStack, StackSettings
from local.stack.summary import CollectionSummary, format_summary, summarize

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_X_API_URL = "https://api.x.com"
SEED_FUNCTION = "ApiFunction"  # its environment has every table and the secret prefix
# Not fired by a collection: it exports closed days of what collections stored (its own cron, `make invoke`).
EXPORT_FUNCTION = "ExportFunction"


@dataclass
class RunSignals:
    """What a caller running `main` in a thread (tests, embedders) waits on instead of polling its output.

    `state_written` is called in main's thread right after the state file is written (it still exists then);
    `serving` is set once the first collection ran and the stack serves until stopped.
    """

    state_written: Callable[[Path], None] | None = None
    serving: threading.Event = field(default_factory=threading.Event)


class ConfigError(ValueError):
    """A LOCAL_*/port variable has a value the stack cannot use; the message names the variable."""


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {value}")
    return value


def _flag_env(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0 or 1, got {raw!r}")


def _choice_env(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class RunConfig:
    template: Path
    state_dir: Path
    api_port: int
    moto_port: int
    dynamodb_port: int
    dynamodb: str  # auto | dynalite | moto
    emulator_port: int
    engagement_api_url: str | None  # None: start the emulator
    x_api_url: str | None
    run_schedules: bool
    schedule_speed: float
    seed: bool
    run_once: bool
    first_collection_timeout: float
    parameter_overrides: dict[str, str]  # template parameters, as `sam deploy --parameter-overrides` takes them

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunConfig:
        try:
            speed = float(env.get("LOCAL_SCHEDULE_SPEED", "") or 1)
            timeout = float(env.get("LOCAL_FIRST_COLLECTION_TIMEOUT", "") or 180)
        except ValueError as error:
            raise ConfigError(
                f"LOCAL_SCHEDULE_SPEED / LOCAL_FIRST_COLLECTION_TIMEOUT must be numbers: {error}"
            ) from None
        if speed <= 0:
            raise ConfigError(f"LOCAL_SCHEDULE_SPEED must be positive, got {speed}")
        return cls(
            template=Path(env.get("LOCAL_TEMPLATE") or REPO_ROOT / "template.yaml"),
            state_dir=Path(env.get("LOCAL_STATE_DIR") or REPO_ROOT / ".local-state"),
            api_port=_int_env(env, "API_PORT", 3000),
            moto_port=_int_env(env, "MOTO_PORT", 5005),
            dynamodb_port=_int_env(env, "DYNAMODB_PORT", 8000),
            dynamodb=_choice_env(env, "LOCAL_DYNAMODB", ("auto", "dynalite", "moto"), "auto"),
            emulator_port=_int_env(env, "EMULATOR_PORT", 8088),
            engagement_api_url=env.get("ENGAGEMENT_API_URL") or None,
            x_api_url=env.get("X_API_URL") or None,
            run_schedules=_flag_env(env, "LOCAL_SCHEDULES", True),
            schedule_speed=speed,
            seed=_flag_env(env, "LOCAL_SEED", True),
            run_once=_flag_env(env, "LOCAL_RUN_ONCE", False),
            first_collection_timeout=timeout,
            parameter_overrides=parameter_overrides(env.get("LOCAL_PARAMETER_OVERRIDES", "")),
        )


def parameter_overrides(text: str) -> dict[str, str]:
    """`Key=Value Key2="a value"`: space-separated, shell quoting, as `sam deploy --parameter-overrides`."""
    overrides = {}
    for pair in shlex.split(text):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(f"LOCAL_PARAMETER_OVERRIDES: {pair!r} is not Key=Value")
        overrides[key] = value
    return overrides


def app_secret_value(env: Mapping[str, str], demo_app: Any | None) -> dict[str, str] | None:
    """Real app credentials from X_CONSUMER_KEY/X_CONSUMER_SECRET/X_BEARER_TOKEN, else the emulator's demo ones."""
    names = ("X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_BEARER_TOKEN")
    if all(env.get(name) for name in names):
        return {"consumer_key": env[names[0]], "consumer_secret": env[names[1]], "bearer_token": env[names[2]]}
    if demo_app is not None:
        return {
            "consumer_key": demo_app.consumer_key,
            "consumer_secret": demo_app.consumer_secret,
            "bearer_token": demo_app.bearer_token,
        }
    return None


def demo_seed_plan(world: Any, now: str) -> SeedPlan:
    """The emulator's brand account with all its Posts (public, protected, deleted), plus another user's
    public Posts tracked with the app token only."""
    from local.emulator import BRAND_USER_ID, UNRELATED_USER_ID

    owner = world.users.get(BRAND_USER_ID) or next(iter(world.users.values()))
    plan = SeedPlan(
        now=now,
        accounts=[SeedAccount(owner.user_id, owner.screen_name, owner.access_token, owner.access_token_secret)],
    )
    plan.posts_by_account[owner.user_id] = [post.tweet_id for post in world.posts_of(owner.user_id)]
    public_only = [post.tweet_id for post in world.posts_of(UNRELATED_USER_ID) if post.state == "public"]
    plan.posts_by_account[""] = public_only
    return plan


def collect_once(
    stack: LocalStack, out: TextIO, *, timeout: float, scheduled_time: str | None = None
) -> CollectionSummary:
    """Fire every schedule once, wait until the collector has drained the queue, summarise what landed."""
    assert stack.schedules is not None
    scheduled = scheduled_time or iso_utc(datetime.now(UTC))
    ticks = []
    for target in stack.schedules.targets:
        if not target.enabled or target.function_id == EXPORT_FUNCTION:
            continue
        print(f"  firing {target.event_name} (scheduled_time {scheduled}) ...", file=out, flush=True)
        ticks.append(stack.schedules.fire(target, scheduled))
    deadline = time.monotonic() + timeout
    drained = False
    last_line = ""
    while time.monotonic() < deadline:
        depths = {poller.function_id: stack.queue_depth(poller.queue_url) for poller in stack.pollers}
        busy = any(poller.busy for poller in stack.pollers)
        stats = [poller.stats for poller in stack.pollers]
        line = (
            f"  queue {sum(depths.values())} waiting/in flight | collector {sum(s.batches for s in stats)} batches, "
            f"{sum(s.messages for s in stats)} messages, {sum(s.deleted for s in stats)} done"
        )
        if line != last_line:
            print(line, file=out, flush=True)
            last_line = line
        if not busy and sum(depths.values()) == 0:
            drained = True
            break
        time.sleep(0.5)
    if not drained:
        print(f"  the queue did not drain within {timeout:.0f} s (failed messages wait for redelivery)", file=out)
    summary = summarize(stack, ticks)
    summary.sqs["drained"] = int(drained)
    return summary


def endpoints_text(stack: LocalStack, emulator_url: str | None, state_file: Path) -> str:
    api = stack.api.url if stack.api else "(no API)"
    dynamodb_kind = "dynalite" if stack.dynalite else "moto"
    metrics_table = stack.ids.ref("MetricsTable") if "MetricsTable" in stack.ids.resources else "<table>"
    lines = [
        "",
        "== local stack ==",
        f"  moto server         {stack.endpoint_url}   (SQS, Secrets Manager; AWS_ENDPOINT_URL for aws CLI / boto3)",
        f"  DynamoDB            {stack.dynamodb_url}   ({dynamodb_kind}; AWS_ENDPOINT_URL_DYNAMODB)",
        f"  Engagement API      {emulator_url or 'external'}",
        f"  REST API            {api}",
        f"  dashboard           {api}/dashboard   (open it in a browser)",
        f"  state               {state_file}",
        f"  function logs       {state_file.parent / 'logs'}/<LogicalId>.log",
        "== try ==",
        f"  curl -s {api}/accounts",
        f"  curl -s '{api}/tweets?account_id=1000000001'",
        f"  curl -s '{api}/tweets/<tweet_id>/metrics?endpoint=totals'",
        f"  curl -s {api}/usage",
        "  make invoke FUNCTION=PlannerFunction EVENT=events/<schedule event>.json",
        "  make invoke FUNCTION=ExportFunction EVENT=events/export_backfill.json   (or make export-demo)",
        f"  AWS_ENDPOINT_URL={stack.dynamodb_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"aws dynamodb scan --table-name {metrics_table} --max-items 3",
    ]
    return "\n".join(lines)


def _start_emulator(config: RunConfig, out: TextIO) -> tuple[Any | None, str, str, Any | None]:
    """The emulator unless ENGAGEMENT_API_URL points elsewhere: (emulator, engagement URL, X URL, its demo app)."""
    if config.engagement_api_url is not None:
        return None, config.engagement_api_url, config.x_api_url or DEFAULT_X_API_URL, None
    from local.emulator import EmulatorServer

    emulator = EmulatorServer(port=config.emulator_port).start()
    print(f"emulator: {emulator.url}", file=out, flush=True)
    # The emulator plays both the Engagement API and X's OAuth endpoints.
    return emulator, emulator.url, emulator.url, emulator.world.app


def _stack_settings(
    config: RunConfig, env: Mapping[str, str], engagement_url: str, x_url: str, demo_app: Any | None, out: TextIO
) -> StackSettings:
    secret = app_secret_value(env, demo_app)
    if secret is None:
        print(
            "warning: no X_CONSUMER_KEY/X_CONSUMER_SECRET/X_BEARER_TOKEN; the app secret keeps its placeholder",
            file=out,
        )
    return StackSettings(
        template_path=config.template,
        moto_port=config.moto_port,
        dynamodb=config.dynamodb,
        dynamodb_port=config.dynamodb_port,
        api_port=config.api_port,
        schedule_speed=config.schedule_speed,
        environment_overrides={"ENGAGEMENT_API_URL": engagement_url, "X_API_URL": x_url},
        parameter_overrides=dict(config.parameter_overrides),
        app_secret_value=secret,
        log_dir=config.state_dir / "logs",
    )


def _run_after_first_collection(
    config: RunConfig, stack: LocalStack, landed: bool, stopping: threading.Event, out: TextIO, serving: threading.Event
) -> int:
    """Exit at once (LOCAL_RUN_ONCE), or start the schedules (unless off) and wait for Ctrl-C / `stopping`."""
    if config.run_once:
        print(f"\nfirst collection {'landed' if landed else 'did NOT land'}", file=out, flush=True)
        return 0 if landed else 1
    if config.run_schedules:
        assert stack.schedules is not None
        stack.schedules.start()
        print(f"\nschedules running (speed x{config.schedule_speed:g}); Ctrl-C to stop", file=out, flush=True)
    else:
        print("\nschedules off (LOCAL_SCHEDULES=0); Ctrl-C to stop", file=out, flush=True)
    serving.set()
    while not stopping.wait(0.5):  # a timeout, so that the main thread still takes Ctrl-C
        pass
    print("\nstopping ...", file=out, flush=True)
    return 0


def main(
    env: Mapping[str, str] | None = None,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
    signals: RunSignals | None = None,
) -> int:
    """Run until Ctrl-C / SIGTERM, or until `stop` is set (how tests and embedders end a running stack)."""
    env = dict(os.environ if env is None else env)
    try:
        config = RunConfig.from_env(env)
    except ConfigError as error:
        print(f"local.run: {error}", file=sys.stderr)
        return 2
    stopping = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signal_number, lambda *_: stopping.set())
    try:
        return _run(config, env, out, stopping, signals or RunSignals())
    except OSError as error:
        print(f"local.run: {error} (is a port in use? set API_PORT/MOTO_PORT/EMULATOR_PORT)", file=sys.stderr)
        return 2


def _run(config: RunConfig, env: Mapping[str, str], out: TextIO, stopping: threading.Event, signals: RunSignals) -> int:
    """Start everything, seed, run the first collection, then serve; stop everything and remove the state file."""
    emulator = None
    stack: LocalStack | None = None
    state_file = config.state_dir / "stack.json"
    try:
        emulator, engagement_url, x_url, demo_app = _start_emulator(config, out)
        stack = LocalStack(_stack_settings(config, env, engagement_url, x_url, demo_app, out))
        print("starting moto server, DynamoDB, resources and function workers ...", file=out, flush=True)
        stack.start()
        if config.seed and emulator is not None:
            _seed(stack, emulator, out)
        emulator_url = emulator.url if emulator else None
        stack.write_state(
            state_file, {"pid": os.getpid(), "emulator_url": emulator_url, "engagement_api_url": engagement_url}
        )
        if signals.state_written is not None:
            signals.state_written(state_file)
        print(endpoints_text(stack, emulator_url, state_file), file=out, flush=True)
        print("\nfirst collection:", file=out, flush=True)
        summary = collect_once(stack, out, timeout=config.first_collection_timeout)
        print(format_summary(summary), file=out, flush=True)
        return _run_after_first_collection(config, stack, summary.landed, stopping, out, signals.serving)
    finally:
        if stack is not None:
            stack.stop()
        if emulator is not None:
            emulator.stop()
        state_file.unlink(missing_ok=True)


def _seed(stack: LocalStack, emulator: Any, out: TextIO) -> None:
    now = iso_utc(datetime.now(UTC).replace(second=0))
    counts = seed_stack(stack.specs[SEED_FUNCTION], demo_seed_plan(emulator.world, now))
    print(f"seeded {counts['accounts']} account(s) and {counts['posts']} tracked Posts", file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
