"""The events of a `pulumi refresh` (and `refresh --preview-only`), as the engine sends them.

A refresh step's pre-event says only `op: "refresh"`; its outcome (`same`, `update`, `delete`) is
the op of the resource-outputs event that follows (pkg/engine/update.go: the refresh branch uses
RefreshStep.ResultOp; pkg/resource/deploy/step.go). The summary counts the outcomes. Recorded
example: pkg/engine/lifecycletest/testdata/output/TestRefreshBasics/3-0-0-preview/eventstream.json
in pulumi/pulumi (a pre-event `refresh` with old and new set, then `delete` with `new: null`;
`planning: true` only in previews).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.pulumi_double.engine import step_meta
from tests.pulumi_double.events import Events

Step = tuple[str, "dict[str, Any] | None", "dict[str, Any] | None", list[str]]


def emit_refresh(steps: list[Step], old: list[dict[str, Any]], events: Events, *, preview: bool, scope: Any = None,
                 on_step: Callable[[list[dict[str, Any]]], None] | None = None) -> dict[str, int]:
    """Emit each refresh step's two events; return the outcome counts (the summary's resourceChanges).
    With a cancellation `scope` (cancel.py) a cancelled refresh starts no new step; `on_step` sees
    the state after each step (what the CLI's snapshot has saved so far)."""
    counts: dict[str, int] = {}
    state = {r["urn"]: r for r in old}
    for outcome, before, after, keys in steps:
        if scope is not None and scope.cancelled:
            break
        current = before or after or {}
        planning = {"planning": True} if preview else {}
        events.emit(resourcePreEvent={"metadata": step_meta("refresh", current, current, []), **planning})
        if scope is not None and not preview:
            scope.in_flight()
        events.emit(resOutputsEvent={"metadata": step_meta(outcome, current, after if outcome != "delete" else None, keys), **planning})
        counts[outcome] = counts.get(outcome, 0) + 1
        if not preview:
            if outcome == "delete":
                state.pop(current["urn"], None)
            elif after is not None:
                state[current["urn"]] = after
            if on_step is not None:
                on_step(list(state.values()))
    return counts
