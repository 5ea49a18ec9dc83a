"""A local stack of the fixture template, shared by the tests of a module (servers on ephemeral ports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack.stack import LocalStack, StackSettings

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"


@pytest.fixture(scope="module")
def fixture_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings(
        template_path=FIXTURE_TEMPLATE,
        schedule_retry_delay_seconds=0,
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    with LocalStack(settings) as stack:
        yield stack
