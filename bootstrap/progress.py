"""What the user sees while the CLI works: each resource operation as it completes, with elapsed
time; warnings and errors; the change summary at the end; a heartbeat during long silent waits;
the one bounded polling loop every wait uses is dbcore/waiting.py (`wait_until`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# Operations the engine reports for steps that change something.
CHANGE_OPS = ("create", "update", "replace", "create-replacement", "delete", "delete-replaced", "import", "discard")
SUMMARY_ORDER = ("create", "update", "replace", "delete", "same")


def op_name(md: Any) -> str:
    return str(getattr(md.op, "value", md.op))


def short_name(urn: str) -> str:
    return str(urn).rsplit("::", 1)[-1]


class Progress:
    """Engine-event sink: prints operations as they finish, keeps the summary event."""

    def __init__(self, out: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.out, self.clock = out, clock
        self.started = clock()
        self.summary: dict[str, int] = {}
        self.errors: list[str] = []

    def elapsed(self) -> str:
        secs = int(self.clock() - self.started)
        return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"

    def say(self, text: str) -> None:
        self.out(f"[{self.elapsed():>6}] {text}")

    def on_event(self, event: Any) -> None:
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None and op_name(done.metadata) in CHANGE_OPS:
            md = done.metadata
            self.say(f"{op_name(md):<8} {md.type} {short_name(md.urn)}")
        failed = getattr(event, "res_op_failed_event", None)
        if failed is not None and failed.metadata is not None:
            self.say(f"FAILED   {failed.metadata.type} {short_name(failed.metadata.urn)}")
        diag = getattr(event, "diagnostic_event", None)
        if diag is not None and getattr(diag, "severity", "") in ("error", "warning"):
            message = str(diag.message).strip().splitlines()[0] if str(diag.message).strip() else ""
            self.say(f"{diag.severity}: {message}")
            if diag.severity == "error":
                self.errors.append(message)
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.summary = dict(summary.resource_changes or {})

    def kwargs(self) -> dict[str, Any]:
        """on_event for the engine events; Pulumi's own text output is replaced by these lines."""
        return {"on_event": self.on_event, "on_output": lambda line: None}

    def finish(self, what: str) -> None:
        self.say(f"{what}: {summary_text(self.summary)}")


def summary_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[k]} {k}d" if k != "same" else f"{counts[k]} unchanged" for k in SUMMARY_ORDER if counts.get(k)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in SUMMARY_ORDER and v]
    return ", ".join(parts) if parts else "no changes"


@contextlib.contextmanager
def heartbeat(out: Callable[[str], None], what: str, every_s: float = 30.0) -> Iterator[None]:
    """Print `still waiting: <what> (<elapsed>)` every `every_s` seconds until the block ends."""
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(every_s):
            out(f"  still waiting: {what} ({int(time.monotonic() - started)}s elapsed)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
