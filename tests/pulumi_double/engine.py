"""The double's engine: run the project's program under our mocks, diff it against the stored state,
emit engine events in the shapes of sdk/go/common/apitype/events.go (events.py carries them over the
CLI's `--event-log` transports), and save the new state.

Test hooks (environment of the `pulumi` process):
  PULUMI_DOUBLE_FAIL_ON   a substring of a URN: that resource's create/update/delete fails
  PULUMI_DOUBLE_CLOUD     a JSON file {"<urn substring>": {"inputs": {...}} | null}: what the cloud
                          looks like now (console edits, deleted resources); only `refresh` and
                          `preview --refresh` read it, as the real CLI only sees drift when refreshing.

AWS names (tests/pulumi_double/aws_names.py): create-time values (generated names, RandomId bytes)
are fresh on each create and replacement, and a per-backend registry of names AWS still holds
(secrets pending deletion, final snapshots) fails creates and deletes with AWS's error texts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.pulumi_double.aws_names import Account
from tests.pulumi_double.backend import SECRET_MARK, SECRET_SIG, CliError, Secrets
from tests.pulumi_double.events import Events

# Inputs whose change forces a replacement (a small, explicit subset of the providers' ForceNew).
FORCE_NEW = {
    "aws:rds/instance:Instance": {"identifier", "engine", "storageEncrypted", "kmsKeyId", "dbSubnetGroupName", "username"},
    "aws:ec2/vpc:Vpc": {"cidrBlock"},
    "aws:ec2/subnet:Subnet": {"cidrBlock", "availabilityZone", "vpcId"},
    "aws:secretsmanager/secret:Secret": {"name", "namePrefix"},
    "aws:lb/targetGroup:TargetGroup": {"name", "namePrefix", "port", "protocol", "vpcId", "targetType"},
    "aws:ec2/securityGroup:SecurityGroup": {"name", "namePrefix", "description", "vpcId"},
    "aws:rds/parameterGroup:ParameterGroup": {"name", "namePrefix", "family", "description"},
    "aws:kms/key:Key": {"customerMasterKeySpec"},
    "aws:ecr/repository:Repository": {"name"},
    "postgresql:index/database:Database": {"name"},
    "postgresql:index/role:Role": {"name"},
}

# Types whose provider asks for delete-before-replace when the program does not say (pulumi-postgresql
# provider/resources.go: postgresql_grant, DeleteBeforeReplace: true).
PROVIDER_DELETE_FIRST = frozenset({"postgresql:index/grant:Grant"})
# The steps a replacement makes beside its logical `replace` step (pkg/resource/deploy/step.go).
PHYSICAL_REPLACEMENT_OPS = ("create-replacement", "delete-replaced")


# --------------------------------------------------------------------------------------------
# Secrets in state: {sig: mark, ciphertext} at rest, masked in events
# --------------------------------------------------------------------------------------------


def wrap(value: Any, secrets: Secrets) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_MARK, "ciphertext": secrets.encrypt(json.dumps(value))}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_MARK


def unwrap(value: Any, secrets: Secrets) -> Any:
    if is_secret(value):
        if "plaintext" in value:
            return json.loads(value["plaintext"])
        return json.loads(secrets.decrypt(value["ciphertext"]))
    if isinstance(value, dict):
        return {k: unwrap(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, secrets) for v in value]
    return value


def show(value: Any, secrets: Secrets, reveal: bool) -> Any:
    if is_secret(value):
        return {SECRET_SIG: SECRET_MARK, "plaintext": secrets.decrypt(value["ciphertext"])} if reveal and "ciphertext" in value else value
    if isinstance(value, dict):
        return {k: show(v, secrets, reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [show(v, secrets, reveal) for v in value]
    return value


def conceal(value: Any, secrets: Secrets) -> Any:
    """`stack import` of an export made with --show-secrets: the CLI encrypts each plaintext secret
    again with the stack's secrets manager (pkg/resource/stack/deployment.go, DeserializeDeploymentV3)."""
    if is_secret(value):
        return wrap(json.loads(value["plaintext"]), secrets) if "plaintext" in value else value
    if isinstance(value, dict):
        return {k: conceal(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [conceal(v, secrets) for v in value]
    return value


def mask(value: Any) -> Any:
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Program and config
# --------------------------------------------------------------------------------------------


def program_config(cwd: Path, settings: dict[str, Any], secrets: Secrets) -> tuple[dict[str, str], set[str]]:
    """Pulumi.yaml defaults + the stack settings' config, decrypted, as the strings a program gets."""
    project_doc = yaml.safe_load((cwd / "Pulumi.yaml").read_text())
    project = project_doc["name"]
    merged: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for key, spec in (project_doc.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            merged[key if ":" in key else f"{project}:{key}"] = spec["default"]
    for key, value in (settings.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and "secure" in value:
            merged[full] = secrets.decrypt(str(value["secure"]))
            secret_keys.add(full)
        else:
            merged[full] = value
    return {k: as_cli_string(v) for k, v in merged.items()}, secret_keys


def as_cli_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# How the engine stores an asset or archive (pulumi/runtime/rpc.py: _special_sig_key, *_sig).
ASSET_SIGS = {"FileAsset": "c44067f5952c0a294b673a41bacd8c17", "FileArchive": "0def7320c3a5731c473e5ecbe6d01bc7"}


class AssetError(CliError):
    """An asset or archive the engine could not hash when the program registered it."""


def _hash_path(kind: str, key: str, path: Path) -> str:
    """sha256 of the file (asset, or archive file), or of a directory's files in name order (the
    engine hashes a tar of it). Missing: the engine's text (sdk/go/common/resource/plugin/rpc.go
    `failed to compute ... hash for %q: %w`, the %w being Go's os error)."""
    digest = hashlib.sha256()
    try:
        if kind == "FileArchive" and path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
        else:
            digest.update(path.read_bytes())
    except FileNotFoundError:
        what = "archive" if kind == "FileArchive" else "asset"
        raise AssetError(f'unmarshal properties: failed to compute {what} hash for "{key}": open {path}: no such file or directory') from None
    except IsADirectoryError:
        raise AssetError(f'unmarshal properties: failed to compute asset hash for "{key}": read {path}: is a directory') from None
    return digest.hexdigest()


def _asset(value: Any, key: str = "", cwd: Path | None = None) -> Any:
    """A pulumi FileAsset/FileArchive input as the engine records it (signature, hash, path),
    hashed at registration as the engine does (MarshalOptions.ComputeAssetHashes)."""
    sig = ASSET_SIGS.get(type(value).__name__) if type(value).__module__ == "pulumi.asset" else None
    if not sig:
        return value
    path = Path(value.path)
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    return {SECRET_SIG: sig, "hash": _hash_path(type(value).__name__, key, path), "path": value.path}


def run_program(cwd: Path, stack: str, project: str, config: dict[str, str], secrets: Secrets,
                on_graph: Callable[[Any], None] | None = None) -> list[dict[str, Any]]:
    """The program's resources as state records (secret values wrapped), the stack resource first;
    `on_graph` sees the mock graph (policy packs run on it: policy.py)."""
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    from bootstrap.plan.mockgraph import run_program as run_under_mocks

    main = str(cwd / "__main__.py")
    graph = run_under_mocks(lambda: runpy.run_path(main, run_name="__main__"), stack=stack, config=config, project=project, preview=False)
    if on_graph is not None:
        on_graph(graph)
    stack_urn = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    outputs = {k: (wrap(v, secrets) if k in graph.secret_outputs else v) for k, v in graph.outputs.items()}
    records: list[dict[str, Any]] = [{"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack", "inputs": {}, "outputs": outputs}]
    for r in graph.resources:
        inputs = {k: (wrap(v, secrets) if r.is_secret(k) else _asset(v, k, cwd)) for k, v in r.inputs.items()}
        state = {k: (wrap(v, secrets) if (r.is_secret(k) or k in r.additional_secret_outputs or (r.type.startswith("random:") and k == "result"))
                     else inputs[k] if k in inputs and not r.is_secret(k) else _asset(v, k, cwd))
                 for k, v in r.state.items()}
        rec: dict[str, Any] = {"urn": r.urn, "custom": r.custom, "type": r.type, "inputs": inputs, "outputs": state, "parent": r.parent,
                               "dependencies": r.dependencies}
        if r.custom:
            rec["id"] = r.id
        if r.protect:
            rec["protect"] = True
        if r.retain_on_delete:
            rec["retainOnDelete"] = True
        if r.provider:
            rec["provider"] = r.provider
        records.append(rec)
    return records


# --------------------------------------------------------------------------------------------
# Diff and apply
# --------------------------------------------------------------------------------------------


def cloud_view(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources as the cloud reports them now (PULUMI_DOUBLE_CLOUD overlay)."""
    path = os.environ.get("PULUMI_DOUBLE_CLOUD")
    if not path or not Path(path).is_file():
        return copy.deepcopy(resources)
    overlay: dict[str, Any] = json.loads(Path(path).read_text())
    out = []
    for res in resources:
        hit = next((k for k in overlay if k in res["urn"]), None)
        if hit is None:
            out.append(copy.deepcopy(res))
        elif overlay[hit] is not None:
            changed = copy.deepcopy(res)
            for section in ("inputs", "outputs"):
                changed.setdefault(section, {}).update(overlay[hit].get("inputs", {}))
            out.append(changed)
    return out


def step_meta(op: str, old: dict[str, Any] | None, new: dict[str, Any] | None, keys: list[str]) -> dict[str, Any]:
    """StepEventMetadata with StepEventStateMetadata (sdk/go/common/apitype/events.go), `omitempty`
    fields left out when empty as Go's encoder does."""

    def state(r: dict[str, Any] | None) -> dict[str, Any] | None:
        if r is None:
            return None
        out: dict[str, Any] = {"type": r["type"], "urn": r["urn"]}
        if r.get("custom", True):
            out["custom"] = True
        out.update({"id": r.get("id", ""), "parent": r.get("parent", "")})
        if r.get("protect"):
            out["protect"] = True
        if r.get("retainOnDelete"):
            out["retainOnDelete"] = True
        out.update({"inputs": mask(r.get("inputs", {})), "outputs": mask(r.get("outputs", {})), "provider": r.get("provider", "")})
        return out

    base = new or old or {}
    meta: dict[str, Any] = {"op": op, "urn": base.get("urn", ""), "type": base.get("type", ""), "old": state(old), "new": state(new)}
    if keys:
        meta.update({"keys": keys, "diffs": keys})
    meta["detailedDiff"] = None
    if op not in PHYSICAL_REPLACEMENT_OPS:  # step.go: a create or delete made for a replacement is not Logical()
        meta["logical"] = True
    meta["provider"] = base.get("provider", "")
    return meta


def plan_steps(old: list[dict[str, Any]], new: list[dict[str, Any]], secrets: Secrets,
               delete_first: frozenset[str] = frozenset()) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]]:
    """The steps of an update, in the engine's order (pkg/resource/deploy/step_generator.go): each
    resource as the program registers it, a replacement as create-replacement then replace (its
    delete-replaced comes with the deletes, after every other step), or, for a URN in
    `delete_first`, delete-replaced, replace, create-replacement; then the deletes, newest first."""
    old_by = {r["urn"]: r for r in old}
    new_urns = {r["urn"] for r in new}
    steps: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]] = []
    replaced_later: set[str] = set()
    for r in new:
        prev = old_by.get(r["urn"])
        if prev is None:
            steps.append(("create", None, r, []))
            continue
        a, b = unwrap(prev.get("inputs", {}), secrets), unwrap(r.get("inputs", {}), secrets)
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if not keys:
            steps.append(("same", prev, {**r, "id": prev.get("id", r.get("id")), "outputs": prev.get("outputs", r.get("outputs"))} if r["type"] != "pulumi:pulumi:Stack" else r, []))
        elif set(keys) & FORCE_NEW.get(r["type"], set()):
            if r["urn"] in delete_first:
                steps += [("delete-replaced", prev, None, []), ("replace", prev, r, keys), ("create-replacement", prev, r, keys)]
            else:
                steps += [("create-replacement", prev, r, keys), ("replace", prev, r, keys)]
                replaced_later.add(r["urn"])
        else:
            steps.append(("update", prev, r, keys))
    for r in reversed(old):
        if r["urn"] not in new_urns:
            steps.append(("delete", r, None, []))
        elif r["urn"] in replaced_later:
            steps.append(("delete-replaced", r, None, []))
    return steps


def delete_first(graph: Any) -> frozenset[str]:
    """URNs replaced delete-first: the program's deleteBeforeReplace, else the provider's default."""
    return frozenset(r.urn for r in graph.resources if r.delete_before_replace or r.type in PROVIDER_DELETE_FIRST)


def apply(
    steps: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]],
    old: list[dict[str, Any]],
    events: Events,
    *,
    preview: bool,
    diag: Callable[[str, str], None],
    account: Account | None = None,
    scope: Any = None,
    on_step: Callable[[list[dict[str, Any]]], None] | None = None,
    on_register: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int], bool]:
    """Emit the step events; return (resources after the run, change counts, failed). With an
    `account`, creates (replacements create before they delete) and deletes meet AWS's names.
    With a cancellation `scope` (cancel.py), a cancelled run starts no new step; `on_step` sees the
    resources after each step (what the CLI's snapshot has saved so far); `on_register` is called
    with each resource's URN before its first step (the policy analysis comes there)."""
    fail_on = os.environ.get("PULUMI_DOUBLE_FAIL_ON", "")
    result = {r["urn"]: r for r in old}
    # The new snapshot lists resources in the order their steps completed, then what the run did not
    # reach (pkg/backend/snapshot.go); the program registers a resource after its dependencies, so
    # that order keeps each dependency before its dependents, as `stack import` verifies.
    done: list[str] = []
    counts: dict[str, int] = {}
    failed = False
    stack_step: tuple[str, dict[str, Any] | None] | None = None
    registered: set[str] = set()
    for op, prev, new, keys in steps:
        target = new or prev or {}
        urn = target["urn"]
        if failed and op != "same":
            continue
        if scope is not None and scope.cancelled:
            break
        if on_register is not None and urn not in registered:  # a delete-first replacement's delete comes after it too
            registered.add(urn)
            on_register(urn)  # the step generator analyzes a registration before making its step
        if op == "delete" and prev and prev.get("protect"):
            failed = True
            diag(urn, f"unable to delete resource \"{urn}\"\nas it is currently marked for protection. To unprotect the resource, "
                      "remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, or use the command:\n"
                      f"`pulumi state unprotect '{urn}'`")
            continue
        events.emit(resourcePreEvent={"metadata": step_meta(op, prev, new, keys), "planning": preview} if preview else
                    {"metadata": step_meta(op, prev, new, keys)})
        if scope is not None and not preview and op != "same":
            scope.in_flight()
        refused = None
        # A retained delete only drops the resource from the state: the provider is never called
        # (pkg/resource/deploy/step.go, DeleteStep.Apply), so neither AWS nor an injected failure sees it.
        forgets = op == "delete" and prev is not None and bool(prev.get("retainOnDelete"))
        # `replace` is the logical step between a replacement's create and delete: no provider call.
        calls = op not in ("same", "replace") and not forgets
        if not preview and account is not None and target["type"] != "pulumi:pulumi:Stack" and calls:
            if op in ("create", "create-replacement") and new is not None:
                # create-first: the old resource is still there, holding its names
                refused = account.create_error(new, [r for u, r in result.items() if u != urn or op == "create-replacement"])
            if op in ("delete", "delete-replaced") and prev is not None:
                refused = account.delete(prev)
        if not preview and calls and (refused or (fail_on and fail_on in urn)):
            failed = True
            events.emit(resOpFailedEvent={"metadata": step_meta(op, prev, new, keys), "status": 0, "steps": 0})
            diag(urn, refused or os.environ.get("PULUMI_DOUBLE_FAIL_MESSAGE") or f"{op} of {urn.rsplit('::', 1)[-1]} failed: the provider returned an error (injected)")
            continue
        if op not in PHYSICAL_REPLACEMENT_OPS:  # the summary counts logical steps (pkg/engine/update.go)
            counts[op] = counts.get(op, 0) + 1
        if not preview and target["type"] == "pulumi:pulumi:Stack" and op != "delete":
            stack_step = (urn, new)  # the engine registers the stack's outputs last
        elif not preview:
            if op == "delete" or (op == "delete-replaced" and result.get(urn) is prev):  # delete-first: the old one goes now
                result.pop(urn, None)
            elif op in ("create", "update", "same", "create-replacement"):
                done.append(urn)
                result[urn] = new  # type: ignore[assignment]
        events.emit(resOutputsEvent={"metadata": step_meta(op, prev, new, keys), "planning": preview} if preview else
                    {"metadata": step_meta(op, prev, new, keys)})
        if on_step is not None and not preview:
            on_step(_in_order(result, done, old, stack_step))
    if stack_step is not None:
        urn, new = stack_step
        if urn not in result:
            result[urn] = {**new, "outputs": {}}  # type: ignore[dict-item]
        if not failed:
            result[urn] = new  # type: ignore[assignment]
    return _in_order(result, done, old, stack_step), counts, failed


def _in_order(result: dict[str, dict[str, Any]], done: list[str], old: list[dict[str, Any]],
              stack_step: tuple[str, dict[str, Any] | None] | None) -> list[dict[str, Any]]:
    """The stack first, then completed steps in order, then old resources the run did not reach."""
    first = [stack_step[0]] if stack_step is not None else [r["urn"] for r in old if r["type"] == "pulumi:pulumi:Stack"]
    order = list(dict.fromkeys([*first, *done, *(r["urn"] for r in old)]))
    return [result[u] for u in order if u in result]
