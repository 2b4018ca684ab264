"""The events of a `pulumi refresh` (and `refresh --preview-only`), as the engine sends them.

A refresh step's pre-event says only `op: "refresh"`; its outcome (`same`, `update`, `delete`) is
the op of the resource-outputs event that follows (pkg/engine/update.go: the refresh branch uses
RefreshStep.ResultOp; pkg/resource/deploy/step.go). The summary counts the outcomes. Recorded
example: pkg/engine/lifecycletest/testdata/output/TestRefreshBasics/3-0-0-preview/eventstream.json
in pulumi/pulumi (a pre-event `refresh` with old and new set, then `delete` with `new: null`).
"""

from __future__ import annotations

from typing import Any

from tests.pulumi_double.engine import Events, step_meta

Step = tuple[str, "dict[str, Any] | None", "dict[str, Any] | None", list[str]]


def emit_refresh(steps: list[Step], events: Events, *, preview: bool) -> dict[str, int]:
    """Emit each refresh step's two events; return the outcome counts (the summary's resourceChanges)."""
    counts: dict[str, int] = {}
    for outcome, old, new, keys in steps:
        before = old or new or {}
        planning = {"planning": True} if preview else {}  # the recorded non-preview streams omit it
        events.emit(resourcePreEvent={"metadata": step_meta("refresh", before, before, []), **planning})
        events.emit(resOutputsEvent={"metadata": step_meta(outcome, before, new if outcome != "delete" else None, keys), **planning})
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
