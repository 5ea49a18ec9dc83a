"""Print or write openapi.json from the API's routes (`python -m local.openapi [--write | --check]`).

The document is exactly what `GET /openapi.json` serves: Powertools' `get_openapi_json_schema()` of the app.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xengage.http_api.app import app, openapi_json

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.json"


def render() -> str:
    return openapi_json(app) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {OPENAPI_PATH.name} at the repo root")
    action.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    args = parser.parse_args(argv)
    document = render()
    if args.write:
        OPENAPI_PATH.write_text(document, encoding="utf-8")
        print(f"wrote {OPENAPI_PATH}")
        return 0
    if args.check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
        if current != document:
            print(f"{OPENAPI_PATH.name} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
