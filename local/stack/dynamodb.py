"""The local stack's DynamoDB: dynalite (npm, `local/dynamodb/`), with moto's DynamoDB as the fallback.

moto answers every Query by reading, sorting and sizing every item of the table, so a query costs time in
proportion to the whole table: after `make run` backfills a year of /historical hours (~47,000 items) each API
read takes about a second. dynalite keeps items in key order like DynamoDB, so a Query reads only the keys it
asks for (a 500-point page in ~40 ms whatever the table holds). It runs as a child process (`serve.js`) and exits
when the stack stops or its parent dies. Where Node.js or `make node-deps` is missing the stack uses moto instead.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DYNAMODB_DIR: Final = Path(__file__).resolve().parents[1] / "dynamodb"
SERVE_SCRIPT: Final = DYNAMODB_DIR / "serve.js"
DYNALITE_PACKAGE: Final = DYNAMODB_DIR / "node_modules" / "dynalite" / "package.json"
START_TIMEOUT_SECONDS: Final = 15.0


class DynaliteUnavailable(RuntimeError):
    """dynalite cannot run here; the message says what is missing and how to get it."""


def dynalite_missing() -> str | None:
    """Why dynalite cannot start here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js (node) is not on PATH"
    if not DYNALITE_PACKAGE.exists():
        return f"dynalite is not installed in {DYNAMODB_DIR} (run `make node-deps`)"
    return None


@dataclass
class DynaliteServer:
    """A running dynalite on 127.0.0.1."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_dynalite(port: int = 0) -> DynaliteServer:
    """Start dynalite in memory (`port=0`: any free port) and wait until it listens."""
    missing = dynalite_missing()
    if missing:
        raise DynaliteUnavailable(missing)
    # stdin stays open and unused: serve.js exits when it closes, i.e. when this process is gone.
    process = subprocess.Popen(
        ["node", str(SERVE_SCRIPT), str(port)],
        cwd=DYNAMODB_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = _first_line(process, START_TIMEOUT_SECONDS)
        bound = int(json.loads(line)["port"])
    except (ValueError, KeyError, TimeoutError) as exc:
        process.kill()
        process.wait()
        raise DynaliteUnavailable(f"dynalite did not start on port {port}: {exc}") from exc
    return DynaliteServer(process=process, port=bound)


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of `process`, or TimeoutError (it exited, or said nothing in time)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no answer within {timeout:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise TimeoutError(f"it exited with status {process.wait()}")
    return line
