"""Retired resources: ones a release removed from the program whose deletion would do harm.

Removing a resource from the program makes the next `up` delete it, and for some resources the
provider's Delete is itself the damage: the old `…-appdb-password-admin` GrantRole (issue 23) is
deleted by `REVOKE rds_password FROM <master>`, after which the master can no longer set passwords
and every rotation fails. Such a resource must be forgotten, not deleted.

`pulumi state delete <urn>` cannot do it: the old program chained its grants, so later resources
depend on it and the CLI refuses (pkg/resource/edit/operations.go, ResourceHasDependenciesError).
What works, and what `up`, `deploy` and `release` (rollback too) do, is to mark it `retainOnDelete`
in the state (`stack export` → edit → `stack import`): the engine then drops it from the state without
calling the provider (pkg/resource/deploy/step.go, DeleteStep.Apply), and rewrites the dependencies
of the resources that pointed at it. `preview` only says so; it never changes the state.

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


def unretained(resources: list[dict[str, Any]], table: tuple[Retired, ...] = RETIRED) -> list[tuple[dict[str, Any], Retired]]:
    """The state's resources that match a retired row and are not yet marked retainOnDelete."""
    found = []
    for res in resources:
        for row in table:
            if res.get("type") == row.type and _name(str(res.get("urn", ""))).endswith(row.name_suffix) and not res.get("retainOnDelete"):
                found.append((res, row))
                break
    return found


def mark_retained(deployment: dict[str, Any], urns: set[str]) -> dict[str, Any]:
    """A copy of a `stack export` document whose resources `urns` are marked retainOnDelete."""
    marked = copy.deepcopy(deployment)
    for res in marked.get("deployment", {}).get("resources") or []:
        if res.get("urn") in urns:
            res["retainOnDelete"] = True
    return marked


def sentence(res: dict[str, Any], row: Retired) -> str:
    return f"{_name(res['urn'])} ({row.type}) is retired ({row.since}); deleting it would {row.harm}"


@dataclass
class Retiring:
    """What one command found: the export it read and the URNs it will mark."""

    stack: Any
    action: str
    doc: dict[str, Any]
    urns: frozenset[str]

    def mark(self) -> None:
        """After the yes, before the update: write the marks (`stack import`)."""
        from pulumi import automation as auto

        if not self.urns:
            return
        marked = mark_retained(self.doc, set(self.urns))
        try:
            self.stack.import_stack(auto.Deployment(version=marked["version"], deployment=marked["deployment"]))
        except Exception as exc:
            raise DeployError(f"pulumi stack import failed while marking retired resources before {self.action}: "
                              f"{explain(exc, getattr(self.stack, 'name', ''))}; nothing was changed") from None


def find_retired(stack: Any, action: str, out: Callable[[str], None], *, updates: bool) -> Retiring:
    """Before `action`'s preview: read the state and name its retired resources. `updates`: the
    command goes on to an update, which marks them after the yes (`Retiring.mark`); else (preview,
    drift) only say what up and deploy will do. A new stack has none."""
    try:
        exported = stack.export_stack()
    except Exception as exc:
        raise DeployError(f"pulumi stack export failed before {action}: {explain(exc, getattr(stack, 'name', ''))}") from None
    doc: dict[str, Any] = {"version": getattr(exported, "version", 3), "deployment": getattr(exported, "deployment", None) or {}}
    found = unretained(doc["deployment"].get("resources") or [])
    for res, row in found:
        if updates:
            out(f"state: {sentence(res, row)}: after the yes, {action} marks it retainOnDelete, so the update only forgets it "
                "(the provider is not called)")
        else:
            out(f"note: {sentence(res, row)}; `up`, `deploy` and `release` mark it retainOnDelete before they update, so they only forget it")
    return Retiring(stack, action, doc, frozenset(str(res["urn"]) for res, _ in found))
