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

from typing import Any


def _stack_of(urn: str) -> str:
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]  # urn:pulumi:<stack>::<project>::...


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
        parent = res.get("parent") or ""
        if parent and parent not in seen:
            if parent in later:
                return f"child resource {urn}'s parent {parent} comes after it"
            return f"child resource {urn} refers to missing parent {parent}"
        for dep in res.get("dependencies") or []:
            if dep not in seen:
                return f"resource {urn}'s dependency {dep} {'comes after it' if dep in later else 'refers to missing resource'}"
        for key, deps in (res.get("propertyDependencies") or {}).items():
            for dep in deps:
                if dep not in seen:
                    where = "comes after it" if dep in later else "refers to missing resource"
                    return f"resource {urn}'s property dependency {dep} (from property {key}) {where}"
        deleted_with = res.get("deletedWith") or ""
        if deleted_with and deleted_with not in seen:
            if deleted_with in later:
                return f"resource {urn} is specified as being deleted with {deleted_with}, which comes after it"
            return f"resource {urn} is specified as being deleted with {deleted_with}, which is missing"
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
