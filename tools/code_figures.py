"""Print the codebase's size figures: lines of Python per folder and the longest functions.

Run `python -m tools.code_figures [--top N]` at the repository's root. Code lines exclude blank lines, comments and
docstrings' own lines are counted (they are read too). Used for the figures in closing notes (before/after a refactor).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import Counter
from pathlib import Path

FOLDERS = (
    "functions",
    "layers/common/xengage/api_client",
    "layers/common/xengage/dal",
    "layers/common/xengage/http_api",
    "layers/common/xengage/pipeline",
    "layers/common/xengage",
    "local/emulator",
    "local/stack",
    "local",
    "tests",
    "bench",
    "tools",
)


def tracked_python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, check=True).stdout
    return [Path(line) for line in listed.splitlines() if line]


def folder_of(path: Path) -> str:
    text = path.as_posix()
    return next((folder for folder in FOLDERS if text.startswith(folder + "/")), "(root)")


def code_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))


def functions_of(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            found.append((length, f"{path.as_posix()}:{node.lineno} {node.name}"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=15, help="how many of the longest functions to list")
    args = parser.parse_args()
    lines: Counter[str] = Counter()
    files: Counter[str] = Counter()
    longest: list[tuple[int, str]] = []
    for path in tracked_python_files():
        source = path.read_text(encoding="utf-8")
        lines[folder_of(path)] += code_lines(source)
        files[folder_of(path)] += 1
        longest.extend(functions_of(path, ast.parse(source)))
    print(f"{'folder':40} {'files':>6} {'code lines':>11}")
    for folder in sorted(lines):
        print(f"{folder:40} {files[folder]:6} {lines[folder]:11,}")
    print(f"{'total':40} {sum(files.values()):6} {sum(lines.values()):11,}")
    print(f"\nlongest functions (lines, outside tests/ and bench/), top {args.top}:")
    product = [entry for entry in longest if not entry[1].startswith(("tests/", "bench/"))]
    for length, where in sorted(product, reverse=True)[: args.top]:
        print(f"{length:5}  {where}")


if __name__ == "__main__":
    main()
