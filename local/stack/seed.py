"""Seed demo accounts and tracked Posts through `xengage.dal`, inside a function's environment.

`seed_stack` runs this file as a subprocess with the ApiFunction's environment (tables, secret prefix, moto
endpoint, fake credentials) and the layer on `PYTHONPATH`, so the DAL writes exactly what the API would write,
without touching the caller's `os.environ`. The plan (accounts with tokens, Posts) arrives as JSON on stdin and
never appears on a command line or in a log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this file also runs as a script where only the layer is importable
    from local.stack.functions import FunctionSpec


@dataclass
class SeedAccount:
    user_id: str
    screen_name: str
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)


@dataclass
class SeedPlan:
    """Accounts to register (secret + registry item) and Posts to track, by account ("" = app bearer only)."""

    now: str
    accounts: list[SeedAccount] = field(default_factory=list)
    posts_by_account: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "accounts": [vars(account) for account in self.accounts],
            "posts_by_account": self.posts_by_account,
        }


class SeedFailed(RuntimeError):
    """The seeding subprocess failed; the message carries its stderr."""


def seed_stack(spec: FunctionSpec, plan: SeedPlan, *, timeout: float = 60.0) -> dict[str, int]:
    """Write `plan` with the DAL, in a subprocess running with `spec`'s environment; return counts."""
    environment = {**spec.environment, "PYTHONPATH": ":".join(spec.layer_dirs)}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        input=json.dumps(plan.to_json()).encode(),
        env=environment,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise SeedFailed(f"seeding failed: {completed.stderr.decode(errors='replace')[-2000:]}")
    counts: dict[str, int] = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return counts


def _write(plan: dict[str, Any]) -> dict[str, int]:
    # Imported here: this runs in the subprocess, where the layer is on sys.path.
    from xengage.api_client.credentials import UserTokens
    from xengage.deps import Deps
    from xengage.settings import SharedSettings, from_env

    deps = Deps(from_env(SharedSettings))
    registry = deps.registry
    for account in plan["accounts"]:
        deps.secrets.save_tokens(
            UserTokens(
                access_token=account["access_token"],
                access_token_secret=account["access_token_secret"],
                user_id=account["user_id"],
                screen_name=account["screen_name"],
            ),
        )
        registry.put_account(account["user_id"], account["screen_name"], now=plan["now"])
    posts = 0
    for account_id, tweet_ids in plan["posts_by_account"].items():
        posts += len(registry.track_posts(tweet_ids, account_id or None, now=plan["now"]))
    return {"accounts": len(plan["accounts"]), "posts": posts}


if __name__ == "__main__":
    sys.path.remove(str(Path(__file__).resolve().parent))  # keep this folder's modules out of the layer's way
    print(json.dumps(_write(json.load(sys.stdin))))
