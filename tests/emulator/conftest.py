"""Fixtures for the emulator tests: a running emulator on an ephemeral loopback port, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.emulator import EmulatorServer, default_world
from tests.emulator.support import NOW, Api


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(default_world(NOW), port=0, now=NOW) as emu:
        yield emu


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(emulator, session)
