"""What `pulumi stack import` checks before it saves a deployment, with the CLI's own texts.

- pkg/cmd/pulumi/stack/io.go `SaveSnapshot`: every resource's URN names this stack; the snapshot
  passes `VerifyIntegrity`; on any error, one more ("importing this file could be dangerous; rerun
  with --force to proceed anyway"), and nothing is saved.
- pkg/resource/deploy/snapshot.go `VerifyIntegrity`: each resource's provider reference, parent,
  dependencies and property dependencies name a resource listed before it (a deleted-with target
  likewise); duplicate URNs only where all but one are pending deletion.
- The errors are joined as hashicorp/go-multierror's ListFormatFunc joins them.
The double checks the same things; it has no --force (nothing here passes it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _stack_of(urn: str) -> str:
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]  # urn:pulumi:<stack>::<project>::...


def _references(res: dict[str, Any], urn: str) -> Iterator[tuple[str, str, str]]:
    """Each URN the resource refers to, with VerifyIntegrity's texts for a reference that comes
    after it and for one that is missing, in that function's order."""
    parent = res.get("parent") or ""
    if parent:
        yield parent, f"child resource {urn}'s parent {parent} comes after it", f"child resource {urn} refers to missing parent {parent}"
    for dep in res.get("dependencies") or []:
        yield dep, f"resource {urn}'s dependency {dep} comes after it", f"resource {urn}'s dependency {dep} refers to missing resource"
    for key, deps in (res.get("propertyDependencies") or {}).items():
        for dep in deps:
            head = f"resource {urn}'s property dependency {dep} (from property {key})"
            yield dep, f"{head} comes after it", f"{head} refers to missing resource"
    deleted_with = res.get("deletedWith") or ""
    if deleted_with:
        head = f"resource {urn} is specified as being deleted with {deleted_with}"
        yield deleted_with, f"{head}, which comes after it", f"{head}, which is missing"


def verify_integrity(resources: list[dict[str, Any]]) -> str | None:
    """The first integrity error of `resources` (a deployment's list), or None."""
    seen: set[str] = set()
    providers: set[str] = set()
    for i, res in enumerate(resources):
        urn = res.get("urn") or ""
        if not urn:
            return f"resource at index {i} missing required 'urn' field"
        if not res.get("type"):
            return f"resource '{urn}' missing required 'type' field"
        later = {str(o.get("urn")) for o in resources[i + 1:]}
        provider = res.get("provider") or ""
        if provider and provider not in providers:
            return f"resource {urn} refers to unknown provider {provider}"
        for ref, late, missing in _references(res, urn):
            if ref not in seen:
                return late if ref in later else missing
        if urn in seen and not res.get("delete"):
            return f"duplicate resource {urn} (not marked for deletion)"
        seen.add(urn)
        if str(res.get("type", "")).startswith("pulumi:providers:"):
            providers.add(f"{urn}::{res.get('id', '')}")
    return None


def import_errors(resources: list[dict[str, Any]], stack: str) -> list[str]:
    errors = [f"resource '{r['urn']}' is from a different stack ({_stack_of(r['urn'])} != {stack})"
              for r in resources if r.get("urn") and _stack_of(r["urn"]) != stack]
    problem = verify_integrity(resources)
    if problem:
        errors.append(f"state file contains errors: {problem}")
    if errors:
        errors.append("importing this file could be dangerous; rerun with --force to proceed anyway")
    return errors


def multierror(errors: list[str]) -> str:
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    return f"{len(errors)} errors occurred:\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"
