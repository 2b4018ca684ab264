"""Preview, then ask: `up`, `deploy`, `refresh` and `destroy` show what will change (replacements and
deletions of stateful or protected resources called out) and need a yes. `--yes` answers it; with
no terminal and no `--yes` the command refuses instead of changing anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bootstrap.deploy import retired
from bootstrap.deploy.workspace import DeployError
from bootstrap.progress import CHANGE_OPS, op_name, policy_violation, short_name, summary_text

# Resources that hold data: replacing or deleting one loses it.
STATEFUL_TYPES = frozenset({
    "aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:rds/snapshot:Snapshot", "aws:s3/bucket:Bucket",
    "aws:secretsmanager/secret:Secret", "aws:kms/key:Key", "aws:ecr/repository:Repository", "aws:cloudwatch/logGroup:LogGroup",
    "postgresql:index/database:Database", "postgresql:index/role:Role", "postgresql:index/schema:Schema",
})
# Resources whose delete is a REVOKE: the provider's Delete takes the privileges or membership away
# (a replacement revokes, then grants again: components/app_database.py replaces them delete-first).
ACCESS_TYPES = frozenset({"postgresql:index/grant:Grant", "postgresql:index/grantRole:GrantRole", "postgresql:index/defaultPrivileges:DefaultPrivileges"})
REPLACEMENT_OPS = ("create-replacement", "replace", "delete-replaced")  # the engine's steps of one replacement
DESTRUCTIVE_OPS = (*REPLACEMENT_OPS, "delete")
# Types whose physical name is unique in the account and region, and the input holding it. Pulumi
# replaces create-before-delete, so a replacement under the same name meets the old resource still
# holding it and AWS refuses the create (DBInstanceAlreadyExists, ResourceExistsException, ...).
FIXED_NAME_INPUT = {
    "aws:rds/instance:Instance": "identifier", "aws:rds/parameterGroup:ParameterGroup": "name", "aws:rds/subnetGroup:SubnetGroup": "name",
    "aws:secretsmanager/secret:Secret": "name", "aws:s3/bucket:Bucket": "bucket", "aws:ecr/repository:Repository": "name",
    "aws:cloudwatch/logGroup:LogGroup": "name", "aws:iam/role:Role": "name", "aws:lb/targetGroup:TargetGroup": "name",
    "aws:ec2/securityGroup:SecurityGroup": "name",
}


@dataclass
class Change:
    op: str
    type: str
    name: str
    protected: bool
    refresh: bool = False  # a refresh outcome: only the state changes (a delete drops the resource from it)
    keys: tuple[str, ...] = ()  # the inputs that force a replacement
    same_name: str = ""  # a replacement keeping this fixed physical name (FIXED_NAME_INPUT)
    retained: bool = False  # retainOnDelete in the state: a delete only forgets it (the provider is not called)
    urn: str = ""

    @property
    def retiring(self) -> bool:
        """A retired resource's delete: the command marks it retainOnDelete after the yes (deploy/retired.py)."""
        return self.op == "delete" and not self.refresh and not self.retained and retired.match(self.type, self.urn) is not None

    @property
    def forgets(self) -> bool:
        """A delete the engine does without the provider: the resource stays where it is."""
        return self.op == "delete" and (self.retained or self.retiring) and not self.protected

    @property
    def revokes(self) -> bool:
        """A delete the provider carries out as REVOKE: the role loses what the resource granted."""
        return self.op == "delete" and not self.refresh and self.type in ACCESS_TYPES and not self.forgets

    @property
    def dangerous(self) -> bool:
        return self.op in DESTRUCTIVE_OPS and (self.type in STATEFUL_TYPES or self.protected) and not self.forgets

    @property
    def collides(self) -> bool:
        """A replacement that cannot succeed: its new resource takes the old one's name."""
        return self.op in ("replace", "create-replacement") and bool(self.same_name)

    @property
    def collision_warning(self) -> str:
        return (f"WARNING: {self.name} ({self.type}) would be replaced under the same name {self.same_name}, which AWS refuses while the old one "
                "exists: up refuses this change")


def _fixed_name(md: Any) -> str:
    """The physical name a replacement keeps, or "" (not a fixed-name type, or the name changes)."""
    key = FIXED_NAME_INPUT.get(str(md.type))
    if key is None or md.old is None or md.new is None:
        return ""
    before = (getattr(md.old, "outputs", None) or {}).get(key) or (getattr(md.old, "inputs", None) or {}).get(key)
    after = (getattr(md.new, "inputs", None) or {}).get(key)
    return str(after) if isinstance(after, str) and after and after == before else ""


@dataclass
class ChangePlan:
    changes: list[Change] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    refreshing: set[str] = field(default_factory=set)  # URNs whose pre-event said `refresh`
    violations: list[str] = field(default_factory=list)  # mandatory policy violations: the preview fails

    def on_event(self, event: Any) -> None:
        """Changes come from pre-events, except for a refresh: the engine's pre-event says only
        `refresh`, and the outcome (same, update, delete) is the op of the resource-outputs event
        (pkg/engine/update.go: RefreshStep.ResultOp)."""
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            if op_name(pre.metadata) == "refresh":
                self.refreshing.add(str(pre.metadata.urn))
            elif op_name(pre.metadata) in CHANGE_OPS:
                self._add(pre.metadata, refresh=False)
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None and str(done.metadata.urn) in self.refreshing:
            self.refreshing.discard(str(done.metadata.urn))
            if op_name(done.metadata) in CHANGE_OPS:
                self._add(done.metadata, refresh=True)
        violation = policy_violation(event)
        if violation is not None and violation[0] == "mandatory":
            self.violations.append(violation[1])
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.counts = dict(summary.resource_changes or {})

    def _add(self, md: Any, *, refresh: bool) -> None:
        old = md.old
        protected = bool(getattr(old, "protect", False)) if old is not None else False
        retained = bool(getattr(old, "retain_on_delete", False)) if old is not None else False
        self.changes.append(Change(op_name(md), md.type, short_name(md.urn), protected, refresh, keys=tuple(getattr(md, "keys", None) or ()),
                                   same_name=_fixed_name(md), retained=retained, urn=str(md.urn)))

    @property
    def empty(self) -> bool:
        return not self.changes

    def _shown(self) -> list[tuple[str, Change, str]]:
        """(op, change, note) per line. The engine sends a replacement as three steps
        (create-replacement, replace, delete-replaced; delete-replaced first when the resource is
        replaced delete-first: pkg/resource/deploy/step_generator.go), shown as one `replace`."""
        shown: list[tuple[str, Change, str]] = []
        replaced: dict[str, list[str]] = {}
        for c in self.changes:
            if c.op not in REPLACEMENT_OPS or c.refresh:
                shown.append((c.op, c, " (retained: forgotten, not deleted)" if c.forgets else ""))
                continue
            key = c.urn or c.name
            if key not in replaced:
                replaced[key] = []
                shown.append(("replace", c, ""))
            replaced[key].append(c.op)
        for i, (op, c, _) in enumerate(shown):
            steps = replaced.get(c.urn or c.name, []) if op == "replace" else []
            if "delete-replaced" in steps and "create-replacement" in steps and steps.index("delete-replaced") < steps.index("create-replacement"):
                shown[i] = (op, c, " (deleted before its replacement is created)")
        return shown

    def render(self) -> str:
        shown = self._shown()
        lines = [f"  {op:<8} {c.type} {c.name}{note}" for op, c, note in shown]
        lines.append(f"  summary: {summary_text(self.counts)}")
        for op, c, _ in shown:
            if c.refresh and c.op == "delete":
                lines.append(f"  WARNING: {c.name} ({c.type}) no longer exists in AWS: refresh drops it from the state")
            elif c.dangerous:
                what = "protected" if c.protected else "stateful"
                lines.append(f"  WARNING: {op} of {what} resource {c.name} ({c.type}): its data is lost")
            if c.collides and op == "replace":
                lines.append(f"  {c.collision_warning}")
        revoked = [c.name for c in self.changes if c.revokes]
        if revoked:
            lines.append(f"  WARNING: {len(revoked)} grant(s) or membership(s) deleted, which the provider does by REVOKE: {', '.join(revoked)}; "
                         "sessions relying on them lose that access (docs/data-loss.md, Access a change revokes)")
        return "\n".join(lines)


def ask_yes(question: str, action: str, *, assume_yes: bool, ask: Callable[[str], str] | None = None,
            isatty: Callable[[], bool] | None = None) -> None:
    """Get a yes for `action`, or raise DeployError before anything is changed. `--yes` answers it;
    with no terminal to ask on, refuse (as `pulumi` does in non-interactive mode); Ctrl-D is a no."""
    if assume_yes:
        return
    if not (isatty or sys.stdin.isatty)():
        raise DeployError(f"refusing to {action} without confirmation: no terminal to ask on; re-run with --yes after reviewing the changes above")
    try:
        answer = (ask or input)(f"{question} [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise DeployError(f"{action} cancelled; nothing was changed")


def confirm(plan: ChangePlan, action: str, *, assume_yes: bool, out: Callable[[str], None],
            ask: Callable[[str], str] | None = None, isatty: Callable[[], bool] | None = None) -> None:
    """Show the plan and get a yes, or raise DeployError (nothing has been changed)."""
    out(f"{action}: planned changes")
    out(plan.render())
    if not plan.empty:
        ask_yes(f"Do you want to {action}?", action, assume_yes=assume_yes, ask=ask, isatty=isatty)
