"""Preview, then ask: `up`, `deploy`, `refresh` and `destroy` show what will change (replacements and
deletions of stateful or protected resources called out) and need a yes. `--yes` answers it; with
no terminal and no `--yes` the command refuses instead of changing anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bootstrap.deploy.workspace import DeployError
from bootstrap.progress import CHANGE_OPS, op_name, short_name, summary_text

# Resources that hold data: replacing or deleting one loses it.
STATEFUL_TYPES = frozenset({
    "aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:rds/snapshot:Snapshot", "aws:s3/bucket:Bucket",
    "aws:secretsmanager/secret:Secret", "aws:kms/key:Key", "aws:ecr/repository:Repository", "aws:cloudwatch/logGroup:LogGroup",
    "postgresql:index/database:Database", "postgresql:index/role:Role", "postgresql:index/schema:Schema",
})
DESTRUCTIVE_OPS = ("replace", "delete", "delete-replaced", "create-replacement")


@dataclass
class Change:
    op: str
    type: str
    name: str
    protected: bool

    @property
    def dangerous(self) -> bool:
        return self.op in DESTRUCTIVE_OPS and (self.type in STATEFUL_TYPES or self.protected)


@dataclass
class ChangePlan:
    changes: list[Change] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def on_event(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None and op_name(pre.metadata) in CHANGE_OPS:
            md = pre.metadata
            old = md.old
            protected = bool(getattr(old, "protect", False)) if old is not None else False
            self.changes.append(Change(op_name(md), md.type, short_name(md.urn), protected))
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.counts = dict(summary.resource_changes or {})

    @property
    def empty(self) -> bool:
        return not self.changes

    def render(self) -> str:
        lines = [f"  {c.op:<8} {c.type} {c.name}" for c in self.changes if c.op != "delete-replaced"]
        lines.append(f"  summary: {summary_text(self.counts)}")
        danger = [c for c in self.changes if c.dangerous]
        for c in danger:
            what = "protected" if c.protected else "stateful"
            lines.append(f"  WARNING: {c.op} of {what} resource {c.name} ({c.type}): its data is lost")
        return "\n".join(lines)


def confirm(plan: ChangePlan, action: str, *, assume_yes: bool, out: Callable[[str], None],
            ask: Callable[[str], str] | None = None, isatty: Callable[[], bool] | None = None) -> None:
    """Show the plan and get a yes, or raise DeployError (nothing has been changed)."""
    out(f"{action}: planned changes")
    out(plan.render())
    if plan.empty or assume_yes:
        return
    if not (isatty or sys.stdin.isatty)():
        raise DeployError(f"refusing to {action} without confirmation: no terminal to ask on; re-run with --yes after reviewing the changes above")
    answer = (ask or input)(f"Do you want to {action}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise DeployError(f"{action} cancelled; nothing was changed")
