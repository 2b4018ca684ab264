"""The data-loss guard: a preview that replaces or deletes a resource holding data (DB instance, app
database, roles, secrets, keys, buckets, repositories, log groups; see bootstrap/deploy/confirm.py STATEFUL_TYPES) is
refused unless the command was given `--allow-data-loss`, on top of `--yes` or a typed yes.

`--yes` answers "go ahead with what the preview shows"; it must not also answer "and lose the
database", which a CI job passing --yes on every run would otherwise do silently. A refresh only
rewrites the state (its delete drops a resource that is already gone), so it is never guarded.
The map of what each command can delete: docs/data-loss.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bootstrap.deploy.workspace import DeployError

FLAG = "--allow-data-loss"


def _one_per_resource(plan: Any, kept: Callable[[Any], bool]) -> list[Any]:
    """The plan's changes (not a refresh's) that `kept` selects, the first of each resource."""
    seen: dict[str, Any] = {}
    for c in plan.changes:
        if kept(c) and not getattr(c, "refresh", False):
            seen.setdefault(c.name, c)
    return list(seen.values())


def losses(plan: Any) -> list[Any]:
    """The plan's destructive changes of stateful or protected resources, one per resource."""
    return _one_per_resource(plan, lambda c: c.dangerous)


def describe(changes: list[Any]) -> str:
    """'shop-prod-database-db (aws:rds/instance:Instance, delete), ...'"""
    return ", ".join(f"{c.name} ({c.type}, {'replace' if c.op in ('create-replacement', 'delete-replaced') else c.op})" for c in changes)


def collisions(plan: Any) -> list[Any]:
    """Replacements that cannot succeed: the new resource keeps the old one's fixed name."""
    return _one_per_resource(plan, lambda c: c.collides)


def check(plan: Any, action: str, *, allowed: bool, out: Callable[[str], None]) -> None:
    """Raise DeployError for a replacement that cannot work (even with the flag: the update would
    fail half-way), or naming what would be lost unless `allowed`; then say what will be lost."""
    stuck = collisions(plan)
    if stuck:
        c = stuck[0]
        forced = f" ({', '.join(c.keys)} changed)" if c.keys else ""
        hint = ("; to move the data to a new instance, restore into one and switch over (python -m bootstrap restore, docs/restore.md)"
                if c.type == "aws:rds/instance:Instance" else "")
        raise DeployError(f"refusing to {action}: {c.name} ({c.type}) would be replaced{forced} by a new resource under the same name "
                          f"{c.same_name}, which AWS refuses while the old one still exists (the replacement is created before the old one "
                          f"is deleted); nothing was changed; revert that change, or give the resource a new name{hint}")
    lost = losses(plan)
    if not lost:
        return
    if not allowed:
        raise DeployError(f"refusing to {action}: it would delete or replace {len(lost)} resource(s) holding data: {describe(lost)}; "
                          f"nothing was changed; if that loss is intended, re-run with {FLAG} (see docs/data-loss.md)")
    out(f"{FLAG}: {action} will delete or replace {len(lost)} resource(s) holding data: {describe(lost)}")
