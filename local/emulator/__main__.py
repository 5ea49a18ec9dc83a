"""`python -m local.emulator`: run the emulator alone until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .faults import FaultConfig
from .server import EmulatorServer
from .world import World, default_world


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.emulator", description="X Engagement API emulator")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "8088")), help="port (env EMULATOR_PORT)"
    )
    parser.add_argument("--per-minute-limit", type=int, default=None, help="calls per endpoint per window")
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=os.environ.get("EMULATOR_WINDOW_SECONDS", "60"),  # argparse converts a string default with `type`
        help='length of the rate-limit "minute" in seconds (env EMULATOR_WINDOW_SECONDS, default 60)',
    )
    parser.add_argument("--rate-429", type=float, default=0.0, help="share of calls answered 429")
    parser.add_argument("--rate-5xx", type=float, default=0.0, help="share of calls answered 500/502/503")
    parser.add_argument("--latency-ms", type=int, default=0, help="latency added to every data call")
    parser.add_argument("--timeout-share", type=float, default=0.0, help="share of calls that hang first")
    parser.add_argument("--hang-seconds", type=float, default=5.0, help="how long a hanging call hangs")
    parser.add_argument("--reset-share", type=float, default=0.0, help="share of calls whose connection is reset")
    parser.add_argument("--malformed-share", type=float, default=0.0, help="share of calls with truncated JSON")
    parser.add_argument("--bare-number-share", type=float, default=0.0, help="share of values sent as bare numbers")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault RNG")
    parser.add_argument(
        "--added-metrics",
        default="",
        help="comma-separated engagement types X added since the catalog (served on every endpoint)",
    )
    return parser


def faults_of(args: argparse.Namespace) -> FaultConfig:
    """The command line's fault shares (FaultConfig refuses shares that add up past 1)."""
    return FaultConfig(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        latency_ms=args.latency_ms,
        timeout_share=args.timeout_share,
        hang_seconds=args.hang_seconds,
        reset_share=args.reset_share,
        malformed_share=args.malformed_share,
        bare_number_share=args.bare_number_share,
        seed=args.seed,
        added_metrics=tuple(name.strip() for name in args.added_metrics.split(",") if name.strip()),
    )


def print_banner(emulator: EmulatorServer, world: World, args: argparse.Namespace) -> None:
    """Where the emulator listens and the demo credentials to call it with."""
    print(f"Engagement API emulator on {emulator.url}  (data-api and api.x.com paths)", flush=True)
    print(f"  consumer key / secret: {world.app.consumer_key} / {world.app.consumer_secret}")
    print(f"  bearer token:          {world.app.bearer_token}")
    for user in world.users.values():
        tokens = f"{user.access_token} / {user.access_token_secret}"
        print(f"  user {user.user_id} @{user.screen_name}: {tokens}  ({len(world.posts_of(user.user_id))} Posts)")
    budget = "unlimited" if args.per_minute_limit is None else f"{args.per_minute_limit} calls per endpoint"
    print(f"  rate limit:            {budget} (window {args.window_seconds:g} s)")
    print(
        "  admin: GET /_emulator/{world,credentials,limit,health}, GET|DELETE /_emulator/log,"
        " POST /_emulator/{faults,script,limit,clock,credentials}"
    )
    print("Ctrl-C to stop.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    world = default_world()
    try:
        emulator = EmulatorServer(
            world,
            host=args.host,
            port=args.port,
            per_minute_limit=args.per_minute_limit,
            window_seconds=args.window_seconds,
            faults=faults_of(args),
        )
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with emulator:
        print_banner(emulator, world, args)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
