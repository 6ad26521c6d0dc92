"""Where a rule's time goes: start-up, reading, compute, MLflow / Optuna bookkeeping, writing.

Standard library only, so that importing it costs nothing. A job's code marks its parts with
:func:`phase` (``with phase("read"): ...``); phases nest, and a phase's time excludes the time
of the phases inside it, so the figures add up. :func:`drg_workflow.jobs.logged_rule` writes
one line per job to the rule's log when the job ends::

    INFO <rule>: profile {"startup": 4.1, "read": 0.8, "mlflow": 1.2, "compute": 3.0, ...}

``startup`` is the time from the start of the job's process to the start of the script's body:
the interpreter, Snakemake's script preamble and the script's imports (0 for the chain's steps,
which run in Snakemake's own process). ``compute`` is whatever
the body spent outside the named phases. ``python scripts/benchmark.py --modelling-profile``
reads these lines from the logs of a build (:func:`parse_profile_line`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

#: The phases the workflow marks; anything else in a job is ``compute``.
PHASES: tuple[str, ...] = ("import", "read", "mlflow", "optuna", "write")
#: The prefix of the profile line in a rule's log.
PROFILE_PREFIX = "profile "


class _JobState(threading.local):
    """Per thread: the chain's steps run as threads of Snakemake's own process (run:), so two
    of them at once must not count into each other's phases."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        #: Open phases: [name, start, seconds spent in phases nested inside it].
        self.stack: list[list[Any]] = []


_state = _JobState()

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time of the block toward ``name`` (minus the phases nested inside it)."""
    entry = [name, time.perf_counter(), 0.0]
    stack, totals = _state.stack, _state.totals
    stack.append(entry)
    try:
        yield
    finally:
        stack.pop()
        elapsed = time.perf_counter() - entry[1]
        totals[name] = totals.get(name, 0.0) + elapsed - entry[2]
        if stack:
            stack[-1][2] += elapsed


def timed(name: str) -> Callable[[F], F]:
    """Decorator: every call of the function counts toward phase ``name``."""

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with phase(name):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def reset() -> None:
    """Forget the phases counted so far in this thread (a new job in the same process, tests)."""
    _state.totals.clear()
    _state.stack.clear()


def totals() -> dict[str, float]:
    """Seconds per phase counted so far in this thread."""
    return dict(_state.totals)


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or ``None`` where unknown."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    # Field 22 of /proc/<pid>/stat (the 20th after the command name): start time in ticks.
    return max(0.0, uptime - int(fields[19]) / ticks)


def job_profile(startup: float | None, body_seconds: float) -> dict[str, float]:
    """The profile of a job whose body took ``body_seconds``: ``startup`` (``None`` where the
    process age is unknown), every phase counted, and ``compute`` (the rest of the body)."""
    counted = totals()
    profile = {"startup": round(startup, 3)} if startup is not None else {}
    profile.update({name: round(seconds, 3) for name, seconds in sorted(counted.items())})
    profile["compute"] = round(max(0.0, body_seconds - sum(counted.values())), 3)
    profile["body"] = round(body_seconds, 3)
    return profile


def profile_line(profile: dict[str, float]) -> str:
    """The log line of a job's profile."""
    return PROFILE_PREFIX + json.dumps(profile, sort_keys=True)


def parse_profile_line(line: str) -> dict[str, float] | None:
    """The profile in a log line written by :func:`profile_line`, or ``None``."""
    _, found, rest = line.partition(": " + PROFILE_PREFIX)
    if not found:
        return None
    try:
        return {k: float(v) for k, v in json.loads(rest).items()}
    except (ValueError, AttributeError):
        return None
