"""`rollback --stack S [--to TAG]`: back to the previous (or named) released image through the
same verified path as `release` (image check, stack update, exact steady state, a ledger record),
never migrating.

The ledger (bootstrap/deploy/ledger.py) says what was released when, and which releases ran a
migration. Rolling back past a migration puts old code on a newer schema; that is refused unless
`--allow-newer-schema` says the migrations in between are backward compatible.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bootstrap.deploy.ledger import ReleaseRecord


class RollbackError(RuntimeError):
    """One sentence; nothing was changed."""


@dataclass(frozen=True)
class RollbackPlan:
    current: ReleaseRecord | None
    target: ReleaseRecord
    newer_migrations: tuple[ReleaseRecord, ...]  # records after the target that ran a migration, newest first

    def render(self, stack: str) -> str:
        cur = f"{self.current.tag} ({self.current.digest[:19]}…, released {self.current.at})" if self.current else "unknown (no succeeded release recorded)"
        lines = [f"rollback {stack}: planned change",
                 f"  image     {cur}",
                 f"         -> {self.target.tag} ({self.target.digest[:19]}…, {self.target.kind} of {self.target.at} by {self.target.by})",
                 "  migration none (a rollback never migrates)"]
        for r in self.newer_migrations:
            m = r.migration
            assert m is not None
            lines.append(f"  WARNING: the schema is newer than {self.target.tag}: {r.kind} {r.tag} ran a migration at {r.at} "
                         f"(exit {m.exit_code if m.exit_code is not None else 'none'}, task {m.task_arn.rsplit('/', 1)[-1]})")
        return "\n".join(lines)


def plan_rollback(history: Sequence[ReleaseRecord], to: str = "", *, allow_newer_schema: bool = False) -> RollbackPlan:
    """Pick the target from the ledger (newest first) and check the schema rule."""
    done = [r for r in history if r.outcome == "succeeded"]
    current = done[0] if done else None
    if to:
        target = next((r for r in done if r.tag == to), None)
        if target is None:
            known = ", ".join(dict.fromkeys(r.tag for r in done)) or "none"
            raise RollbackError(f"--to {to}: no succeeded release of that tag is recorded; recorded tags: {known}")
        if current is not None and target.at == current.at:
            raise RollbackError(f"--to {to}: that is the image running now; nothing to roll back")
    else:
        if current is None:
            raise RollbackError("no succeeded release is recorded for this stack; name the image with --to TAG or use release")
        left = abandoned(done)
        target = next((r for r in done if r.tag != current.tag and r.tag not in left and r.at < current.at), None)
        if target is None:
            raise RollbackError(f"no earlier release than {current.tag} is recorded; nothing to roll back to")
    newer = tuple(r for r in history if r.at > target.at and r.migrated)
    if newer and not allow_newer_schema:
        ran = "; ".join(f"{r.kind} {r.tag} at {r.at[:19]} (exit {r.migration.exit_code if r.migration and r.migration.exit_code is not None else 'none'})"
                        for r in newer)
        raise RollbackError(f"refusing to roll back to {target.tag}: migrations ran after it was released ({ran}), so its code would "
                            "run on a newer schema; if those migrations are backward compatible, re-run with --allow-newer-schema, "
                            "else release a fix forward")
    return RollbackPlan(current, target, newer)


def abandoned(done: Sequence[ReleaseRecord]) -> set[str]:
    """Tags a rollback moved away from: a second `rollback` must not go "back" to the broken image."""
    left: set[str] = set()
    running = ""
    for r in reversed(done):  # oldest first
        if r.kind == "rollback" and running:
            left.add(running)
        running = r.tag
    return left - {running}


def confirm_rollback(plan: RollbackPlan, stack: str, *, assume_yes: bool, out: Callable[[str], None] = print,
                     ask: Callable[[str], str] | None = None, isatty: Callable[[], bool] | None = None) -> None:
    """Show the plan and get a yes (as `release` and `up` do), or raise: nothing changed."""
    out(plan.render(stack))
    if assume_yes:
        return
    if not (isatty or sys.stdin.isatty)():
        raise RollbackError("refusing to roll back without confirmation: no terminal to ask on; re-run with --yes after reviewing the plan above")
    if (ask or input)(f"Roll {stack} back to {plan.target.tag}? [y/N] ").strip().lower() not in ("y", "yes"):
        raise RollbackError("rollback cancelled; nothing was changed")
