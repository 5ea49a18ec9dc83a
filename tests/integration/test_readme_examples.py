"""The README's "Use the API" examples work as shown, against `make run`'s stack (emulator, seed, first collection).

The examples are run as the README has them, in one bash session (curl, python3), with only the API's address
changed to the test stack's. Each command followed by a `# <status> <body>` line must answer that status, and its
body must carry every JSON key the README shows (values such as ids and times differ from run to run); a non-JSON
body (CSV) must start with the text shown.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.helpers import make_run_in_background

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
README_API = "http://127.0.0.1:3000"
_EXPECTATION = re.compile(r"^# (?P<status>[1-5][0-9]{2}) (?P<body>.*)$")
_STEP_MARK = "@@STEP "
_STATUS_MARK = "@@STATUS "


@dataclass
class Example:
    command: str
    status: int | None = None  # None: a setup step (a variable), not an example
    shown: str = ""


def readme_examples(text: str) -> list[Example]:
    """Commands of the bash blocks between the examples markers, each with the expectation written under it."""
    section = text.split("<!-- examples:start -->", 1)[1].split("<!-- examples:end -->", 1)[0]
    lines = [line for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL) for line in block.splitlines()]
    examples: list[Example] = []
    pending = ""
    for line in lines:
        expectation = _EXPECTATION.match(line)
        if expectation and examples and not pending:
            examples[-1].status = int(expectation["status"])
            examples[-1].shown = expectation["body"]
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n" if line.endswith("\\") else line
        if not line.endswith("\\"):
            examples.append(Example(command=pending))
            pending = ""
    return examples


def session_script(examples: list[Example], api_url: str) -> str:
    """One bash script: setup steps as written, each example in a subshell whose curl reports its status."""
    parts = ["set -euo pipefail"]
    for number, example in enumerate(examples):
        command = example.command.replace(f"API={README_API}", f"API={api_url}")
        if example.status is None:
            parts.append(command)
            continue
        parts.append(
            f"echo '{_STEP_MARK}{number}'\n"
            f"( curl() {{ command curl -w '\\n{_STATUS_MARK}%{{http_code}}\\n' \"$@\"; }}\n{command}\n)"
        )
    return "\n".join(parts) + "\n"


def shown_keys(shown: str) -> set[str]:
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)":', shown))


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run` (schedules off after the first collection) on ephemeral ports; yields the API's URL."""
    try:
        with make_run_in_background(tmp_path_factory.mktemp("readme-state")) as api_url:
            yield api_url
    except RuntimeError as failed:
        pytest.fail(str(failed))


def test_the_readme_parser_finds_every_documented_route() -> None:
    # Given the README's examples
    examples = readme_examples(README.read_text(encoding="utf-8"))
    # Then there are setup steps and examples, and together the examples call every route family
    checked = [example for example in examples if example.status is not None]
    assert len(checked) >= 15 and any(example.status is None for example in examples)
    text = " ".join(example.command for example in checked)
    for route in ("/accounts", "/oauth/", "/tweets", "/metrics", "/top", "/engagement/", "/statuses/", "/usage"):
        assert route in text, route
    for method in ("PUT", "POST", "DELETE"):
        assert f"-X {method}" in text, method


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_readme_examples_answer_as_shown(running_stack: str) -> None:
    # Given the README's examples and make run's stack
    examples = readme_examples(README.read_text(encoding="utf-8"))

    # When they are run in one bash session, as a reader would paste them
    completed = subprocess.run(
        ["bash", "-c", session_script(examples, running_stack)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then the session completes, and each example answers the status and carries the keys the README shows
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    answers: dict[int, tuple[int, str]] = {}
    for chunk in completed.stdout.split(_STEP_MARK)[1:]:
        number, _, rest = chunk.partition("\n")
        body, _, status = rest.rpartition(_STATUS_MARK)
        answers[int(number)] = (int(status.strip()), body.strip())
    for number, example in enumerate(examples):
        if example.status is None:
            continue
        status, body = answers[number]
        assert status == example.status, f"{example.command}\n-> {status} {body[:500]}"
        if example.shown.startswith("{"):
            missing = shown_keys(example.shown) - shown_keys(body)
            assert not missing, f"{example.command}\n-> {body[:500]}\nmissing keys {missing}"
        else:
            assert body.startswith(example.shown), f"{example.command}\n-> {body[:500]}"
