"""The X Engagement API emulator: the project's stand-in for X in tests, the local stack and benchmarks.

with EmulatorServer(world=default_world(), port=0) as emu:
    requests.post(f"{emu.url}/insights/engagement/totals", ...)
"""

from .clock import Clock
from .faults import Fault, FaultConfig
from .server import EmulatorServer
from .service import RequestLogEntry
from .world import (
    BRAND_USER_ID,
    CLIENT_USER_ID,
    DEMO_APP,
    UNRELATED_USER_ID,
    CredentialState,
    Post,
    PostState,
    User,
    World,
    created_at_of,
    default_world,
    snowflake_for,
)

__all__ = [
    "BRAND_USER_ID",
    "CLIENT_USER_ID",
    "DEMO_APP",
    "UNRELATED_USER_ID",
    "Clock",
    "CredentialState",
    "EmulatorServer",
    "Fault",
    "FaultConfig",
    "Post",
    "PostState",
    "RequestLogEntry",
    "User",
    "World",
    "created_at_of",
    "default_world",
    "snowflake_for",
]
