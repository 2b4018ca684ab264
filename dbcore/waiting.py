"""The one bounded polling loop every wait on AWS uses (the CLI's and the rotation function's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float,
    timed_out: Callable[[float], BaseException],
    waiting: Callable[[float], None] = lambda elapsed: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Ask `check` every `interval_s` until it returns something other than None (it raises to fail
    early); between asks, `waiting(elapsed)` reports progress; once `timeout_s` have passed, raise
    `timed_out(elapsed)`. The clock and sleep are seams, so tests wait without sleeping."""
    started = clock()
    while True:
        result = check()
        if result is not None:
            return result
        elapsed = clock() - started
        if elapsed >= timeout_s:
            raise timed_out(elapsed)
        waiting(elapsed)
        sleep(interval_s)
