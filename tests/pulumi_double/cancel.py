"""Ctrl-C in the double, as pkg/backend/cancellation_scope.go and pkg/resource/deploy/
deployment_executor.go (pulumi/pulumi) handle it:

- the first SIGINT (or SIGTERM) cancels: a stdout event says so, the steps in flight finish, no new
  step starts, the state so far is saved, the engine reports the error `update canceled` (or
  `preview canceled`) and the command fails with a bail (no further error text);
- the second one terminates: a stdout event says so and the operation stops where it is.

Test hook: PULUMI_DOUBLE_STEP_SECONDS keeps each changing step in flight that long, so a test can
interrupt a run half-way.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from tests.pulumi_double.events import RESET, Events

BRIGHT_RED = "<{%fg 9%}>"


class TerminatedError(BaseException):  # not an Exception: nothing on the way may swallow it
    """The second interrupt: stop now."""


def plain(text: str) -> str:
    """Markup stripped, as the CLI's display prints it to a non-terminal."""
    import re

    return re.sub(r"<\{%[^%]*%\}>", "", text)


class CancellationScope:
    def __init__(self, events: Events, preview: bool):
        self.events, self.preview = events, preview
        self.cancelled = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> CancellationScope:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _say(self, message: str) -> None:
        self.events.emit(stdoutEvent={"message": message, "color": "always"})
        sys.stdout.write(plain(message))
        sys.stdout.flush()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        term = signum == signal.SIGTERM
        if not self.cancelled:
            self.cancelled = True
            message = ("SIGTERM received; cancelling. If you would like to terminate immediately, send SIGTERM again.\n" if term else
                       "^C received; cancelling. If you would like to terminate immediately, press ^C again.\n")
            if not self.preview:
                message += f"{BRIGHT_RED}Note that terminating immediately may lead to orphaned resources and other inconsistencies.\n{RESET}"
            self._say(message)
            return
        self._say(f"{BRIGHT_RED}{'SIGTERM' if term else '^C'} received; terminating{RESET}")
        raise TerminatedError()

    def in_flight(self) -> None:
        """Where a step waits on its provider (the test hook's delay)."""
        delay = float(os.environ.get("PULUMI_DOUBLE_STEP_SECONDS") or 0)
        if delay > 0:
            end = time.monotonic() + delay
            while time.monotonic() < end:  # a signal interrupts sleep(); the step still runs its course
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
