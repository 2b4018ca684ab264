"""What the user sees while the CLI works: each resource operation when it starts and when it
completes, with elapsed time; warnings and errors (the engine's colour markup stripped); the change
summary at the end; a heartbeat naming what is in flight during long silent waits;
the one bounded polling loop every wait uses is dbcore/waiting.py (`wait_until`)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# Operations the engine reports for steps that change something.
CHANGE_OPS = ("create", "update", "replace", "create-replacement", "delete", "delete-replaced", "import", "discard")
SUMMARY_ORDER = ("create", "update", "replace", "delete", "same")
STARTING = {"create": "creating", "update": "updating", "replace": "replacing", "create-replacement": "creating", "delete": "deleting",
            "delete-replaced": "deleting", "import": "importing", "discard": "discarding"}


def op_name(md: Any) -> str:
    return str(getattr(md.op, "value", md.op))


def short_name(urn: str) -> str:
    return str(urn).rsplit("::", 1)[-1]


# Pulumi's colour markup in `color: "raw"` diagnostics (sdk/go/common/diag/colors: `<{%reset%}>`, `<{%fg 1%}>`).
MARKUP = re.compile(r"<\{%[^%]*%\}>")
HEARTBEAT_S = 10.0  # no wait longer than this without a line


def plain(text: str) -> str:
    """A diagnostic's text without the engine's colour markup."""
    return MARKUP.sub("", str(text))


def duration(secs: float) -> str:
    secs = int(secs)
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


class Progress:
    """Engine-event sink: each operation when it starts and when it ends (with its own elapsed
    time), warnings and errors without the engine's markup, the summary; and, inside `watch()`, a
    heartbeat naming what is in flight whenever nothing was printed for `every_s` seconds."""

    def __init__(self, out: Callable[[str], None], clock: Callable[[], float] = time.monotonic, every_s: float = HEARTBEAT_S):
        self.out, self.clock, self.every_s = out, clock, every_s
        self.started = self.last_line = clock()
        self.summary: dict[str, int] = {}
        self.errors: list[str] = []
        self.violations: list[str] = []  # mandatory policy violations (the CLI then fails with only "preview failed")
        self.in_flight: dict[str, tuple[str, str, float]] = {}  # urn -> (op, type, started)
        self._lock = threading.Lock()

    def elapsed(self) -> str:
        return duration(self.clock() - self.started)

    def say(self, text: str) -> None:
        with self._lock:
            self.last_line = self.clock()
            self.out(f"[{self.elapsed():>6}] {text}")

    def on_event(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None and op_name(pre.metadata) in (*CHANGE_OPS, "refresh"):
            md = pre.metadata
            self.in_flight[str(md.urn)] = (op_name(md), str(md.type), self.clock())
            if op_name(md) != "refresh":  # a refresh reads every resource: only its outcomes are news
                self.say(f"{STARTING.get(op_name(md), op_name(md)):<8} {md.type} {short_name(md.urn)} ...")
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None:
            md = done.metadata
            started = self.in_flight.pop(str(md.urn), None)
            if op_name(md) in CHANGE_OPS:
                took = f" ({duration(self.clock() - started[2])})" if started else ""
                self.say(f"{op_name(md):<8} {md.type} {short_name(md.urn)}{took}")
        failed = getattr(event, "res_op_failed_event", None)
        if failed is not None and failed.metadata is not None:
            self.in_flight.pop(str(failed.metadata.urn), None)
            self.say(f"FAILED   {failed.metadata.type} {short_name(failed.metadata.urn)}")
        diag = getattr(event, "diagnostic_event", None)
        if diag is not None and getattr(diag, "severity", "") in ("error", "warning"):
            text = plain(diag.message).strip()
            message = text.splitlines()[0] if text else ""
            where = f" ({short_name(diag.urn)})" if getattr(diag, "urn", None) else ""
            self.say(f"{diag.severity}{where}: {message}")
            if diag.severity == "error":
                self.errors.append(message)
        violation = policy_violation(event)
        if violation is not None:  # a policy pack's finding: mandatory ones fail the operation
            level, text = violation
            self.say(f"policy {level} {text}")
            if level == "mandatory":
                self.violations.append(text)
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.summary = dict(summary.resource_changes or {})

    def beat(self) -> None:
        """One heartbeat check: after `every_s` seconds without a line, say what is in flight."""
        now = self.clock()
        if now - self.last_line < self.every_s:
            return
        busy = sorted(self.in_flight.items(), key=lambda kv: kv[1][2])
        if busy:
            shown = ", ".join(f"{op} {short_name(urn)} ({duration(now - t)})" for urn, (op, _type, t) in busy[:4])
            more = f" and {len(busy) - 4} more" if len(busy) > 4 else ""
            self.say(f"still working: {shown}{more}")
        else:
            self.say("still working: the engine is running the program and planning")

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Around the CLI call: a heartbeat thread for the silent stretches (an RDS create is ~10 min)."""
        with _ticking(self.beat, min(1.0, self.every_s)):
            yield

    def kwargs(self) -> dict[str, Any]:
        """on_event for the engine events; Pulumi's own text output is replaced by these lines."""
        return {"on_event": self.on_event, "on_output": lambda line: None}

    def finish(self, what: str) -> None:
        self.say(f"{what}: {summary_text(self.summary)}")


def policy_violation(event: Any) -> tuple[str, str] | None:
    """(enforcement level, "pack/policy (resource): message") of a policyEvent, else None."""
    policy = getattr(event, "policy_event", None)
    if policy is None:
        return None
    where = f" ({short_name(policy.resource_urn)})" if getattr(policy, "resource_urn", None) else ""
    return str(policy.enforcement_level), f"{policy.policy_pack_name}/{policy.policy_name}{where}: {' '.join(plain(policy.message).split())}"


def violated(violations: list[str]) -> str:
    """What to add to a failed operation's sentence when mandatory policies refused it."""
    return f"; mandatory policies violated: {'; '.join(violations)}" if violations else ""


def summary_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[k]} {k}d" if k != "same" else f"{counts[k]} unchanged" for k in SUMMARY_ORDER if counts.get(k)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in SUMMARY_ORDER and v]
    return ", ".join(parts) if parts else "no changes"


@contextlib.contextmanager
def heartbeat(out: Callable[[str], None], what: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Print `still waiting: <what> (<elapsed>)` every `every_s` seconds until the block ends."""
    started = time.monotonic()
    with _ticking(lambda: out(f"  still waiting: {what} ({int(time.monotonic() - started)}s elapsed)"), every_s):
        yield


@contextlib.contextmanager
def _ticking(tick: Callable[[], None], every_s: float) -> Iterator[None]:
    """Call `tick` every `every_s` seconds on a daemon thread while the block runs."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            tick()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
