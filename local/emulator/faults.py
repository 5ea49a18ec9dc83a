"""Injected failures: random shares from a seeded RNG, a script of answers for the next calls, retired metrics."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from xengage.api_client.catalog import METRIC_NAME_PATTERN, METRICS_BY_ENDPOINT


class Fault(StrEnum):
    RATE_LIMITED = "429"
    INTERNAL_ERROR = "500"
    PROXY_ERROR = "502"
    UNAVAILABLE = "503"
    TIMEOUT = "timeout"  # hang `hang_seconds`, then answer normally
    RESET = "reset"  # close the connection without any response
    MALFORMED = "malformed"  # 200 with the JSON cut in half


SERVER_ERRORS = (Fault.INTERNAL_ERROR, Fault.PROXY_ERROR, Fault.UNAVAILABLE)
KNOWN_METRICS = frozenset(metric for metrics in METRICS_BY_ENDPOINT.values() for metric in metrics)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Shares are probabilities per data call (they add up; their sum must stay <= 1).

    `retired_metrics` are engagement types the API no longer accepts (X retiring a metric): a request
    naming one gets the same 400 as an unknown name, on every endpoint. `added_metrics` are engagement types X
    added since the catalog was written (lowercase names unknown to it): served on every endpoint, to users' tokens.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    latency_ms: int = 0  # added to every data call
    timeout_share: float = 0.0
    hang_seconds: float = 5.0
    reset_share: float = 0.0
    malformed_share: float = 0.0
    bare_number_share: float = 0.0  # metric values sent as bare JSON numbers instead of strings (trap 3)
    seed: int = 1
    retired_metrics: tuple[str, ...] = ()
    added_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "retired_metrics", _metric_names(self.retired_metrics))
        object.__setattr__(self, "added_metrics", _new_metric_names(self.added_metrics))
        shares = {
            "rate_429": self.rate_429,
            "rate_5xx": self.rate_5xx,
            "timeout_share": self.timeout_share,
            "reset_share": self.reset_share,
            "malformed_share": self.malformed_share,
            "bare_number_share": self.bare_number_share,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {share}")
        if self.rate_429 + self.rate_5xx + self.timeout_share + self.reset_share + self.malformed_share > 1.0:
            raise ValueError("fault shares add up to more than 1")
        if self.latency_ms < 0 or self.hang_seconds < 0:
            raise ValueError("latency_ms and hang_seconds must not be negative")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (admin route, CLI); unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        names = {"retired_metrics": list(self.retired_metrics), "added_metrics": list(self.added_metrics)}
        return {**asdict(self), **names}


def _metric_names(value: Any) -> tuple[str, ...]:
    """Known metric names as a tuple (JSON gives a list; a bare string is refused); typos are an error."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"retired_metrics must be a list of engagement types, got {value!r}")
    if not all(isinstance(name, str) for name in value):
        raise ValueError(f"retired_metrics must hold strings, got {value!r}")
    unknown = [name for name in value if name not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"unknown engagement type(s) in retired_metrics: {', '.join(unknown)}")
    return tuple(dict.fromkeys(value))


def _new_metric_names(value: Any) -> tuple[str, ...]:
    """Names X could add: well-formed and not in the catalog already."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"added_metrics must be a list of engagement types, got {value!r}")
    bad = [name for name in value if name in KNOWN_METRICS or not re.match(METRIC_NAME_PATTERN, name)]
    if bad:
        raise ValueError(f"added_metrics must be new, well-formed names: {', '.join(map(repr, bad))}")
    return tuple(dict.fromkeys(value))


class FaultInjector:
    """Decides the fault (if any) for each data call. Scripted faults come first, in order."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._script: deque[Fault | None] = deque()  # None: let one call through
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)

    def script(self, faults: Iterable[str | Fault]) -> None:
        """The next data calls answer these, one each; "ok" (or "none") lets one call through untouched."""
        parsed = [None if str(f) in ("ok", "none") else Fault(str(f)) for f in faults]
        with self._lock:
            self._script.extend(parsed)

    def clear_script(self) -> None:
        """Forget scripted answers not yet used (a test's leftovers must not reach the next one)."""
        with self._lock:
            self._script.clear()

    def pending_script(self) -> list[str]:
        with self._lock:
            return [str(f) if f is not None else "ok" for f in self._script]

    def next_fault(self) -> Fault | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            config = self._config
            draw = self._rng.random()
            for share, fault in (
                (config.rate_429, Fault.RATE_LIMITED),
                (config.rate_5xx, None),
                (config.timeout_share, Fault.TIMEOUT),
                (config.reset_share, Fault.RESET),
                (config.malformed_share, Fault.MALFORMED),
            ):
                if draw < share:
                    return fault if fault is not None else self._rng.choice(SERVER_ERRORS)
                draw -= share
            return None
