"""Retired resources: ones a release removed from the program whose deletion would do harm.

Removing a resource from the program makes the next `up` delete it, and for some resources the
provider's Delete is itself the damage: the old `…-appdb-password-admin` GrantRole (issue 23) is
deleted by `REVOKE rds_password FROM <master>`, after which the master can no longer set passwords
and every rotation fails. Such a resource must be forgotten, not deleted.

`pulumi state delete <urn>` cannot do it: the old program chained its grants, so later resources
depend on it and the CLI refuses (pkg/resource/edit/operations.go, ResourceHasDependenciesError).
What works, and what `up`, `deploy`, `release` (rollback too) and `destroy` do when their preview
deletes such a resource, is to mark it `retainOnDelete` in the state after the yes (`stack export` → edit →
`stack import`): the engine then drops it from the state without calling the provider
(pkg/resource/deploy/step.go, DeleteStep.Apply), and rewrites the dependencies of the resources
that pointed at it. The preview's plan treats the delete as a forget (bootstrap/deploy/confirm.py);
`preview` and `drift` only say so. A stack without one costs nothing: no export, no import.

`RETIRED` is plain data: add a row when a release retires such a resource.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bootstrap.deploy.workspace import DeployError, explain


@dataclass(frozen=True)
class Retired:
    type: str  # the resource type token
    name_suffix: str  # the end of its logical name (the prefix is the stack's)
    harm: str  # what deleting it would do, for the sentence the commands print
    since: str  # the change that retired it


RETIRED: tuple[Retired, ...] = (
    Retired("postgresql:index/grantRole:GrantRole", "-appdb-password-admin",
            "REVOKE rds_password from the master, after which it cannot set passwords and every rotation fails",
            "issue 23: rds_password is granted by the deploy, guarded (docs/first-deploy.md)"),
)


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def match(type_: str, urn_or_name: str, table: tuple[Retired, ...] = RETIRED) -> Retired | None:
    """The retired row a resource (type, URN or logical name) falls under, or None."""
    return next((row for row in table if type_ == row.type and _name(urn_or_name).endswith(row.name_suffix)), None)


def mark_retained(deployment: dict[str, Any], urns: set[str]) -> dict[str, Any]:
    """A copy of a `stack export` document whose resources `urns` are marked retainOnDelete."""
    marked = copy.deepcopy(deployment)
    for res in marked.get("deployment", {}).get("resources") or []:
        if res.get("urn") in urns:
            res["retainOnDelete"] = True
    return marked


def announce(plan: Any, action: str, out: Callable[[str], None], *, updates: bool) -> None:
    """After the preview (`plan`: its confirm.ChangePlan): one sentence per retired resource it
    deletes. `updates`: the command goes on to update and marks them after the yes (`mark`); else
    (preview, drift) it only says what the updating commands will do."""
    for c in plan.changes:
        row = match(c.type, c.urn) if c.retiring else None
        if row is None:
            continue
        said = f"{c.name} ({row.type}) is retired ({row.since}); deleting it would {row.harm}"
        if updates:
            out(f"state: {said}: after the yes, {action} marks it retainOnDelete, so the update only forgets it (the provider is not called)")
        else:
            out(f"note: {said}; the commands that update (up, deploy, release, destroy) mark it retainOnDelete first, so they only forget it")


def mark(stack: Any, plan: Any, action: str) -> None:
    """After the yes, before the update: mark what the plan retires (`stack export` → `stack import`)."""
    from pulumi import automation as auto

    urns = {c.urn for c in plan.changes if c.retiring}
    if not urns:
        return
    where = getattr(stack, "name", "")
    try:
        exported = stack.export_stack()
        doc: dict[str, Any] = {"version": exported.version, "deployment": exported.deployment or {}}
        marked = mark_retained(doc, urns)
        stack.import_stack(auto.Deployment(version=marked["version"], deployment=marked["deployment"]))
    except Exception as exc:
        raise DeployError(f"marking the retired resources retainOnDelete before {action} failed: {explain(exc, where)}; nothing was changed") from None
