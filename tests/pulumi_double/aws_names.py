"""What AWS does with physical names, as far as destroy/recreate and replacement depend on it.

Two things the mocks cannot know, because the provider decides them at create time:

* **Create-time values.** `name_prefix` gets a fresh unique suffix, Pulumi autonaming a fresh
  random suffix, `random.RandomId` fresh bytes, on every *create* (and every replacement); an
  update keeps what the state holds. Under mocks they are deterministic tokens, so `realize`
  swaps each token for the state's value (the resource exists) or a fresh one (it is created or
  replaced), everywhere the program used it (e.g. the final snapshot identifier).
* **Names AWS still holds.** A per-backend registry (`<backend root>/.pulumi-double-aws.json`,
  the "account") of secrets scheduled for deletion (for their recovery window; the provider's
  default is 30 days, 0 deletes at once) and of snapshots left by deleting a DB instance. Creating
  a resource whose name is held, or live on another resource (create-before-delete keeps the old
  one alive during a replacement), fails with the AWS error text; so does deleting an instance
  whose final snapshot identifier already exists.

Error texts: Secrets Manager CreateSecret and RDS DeleteDBInstance as AWS returns them (AWS API
reference, and as quoted in terraform-provider-aws / terraform-aws-modules issues); the others
are the documented error codes with the message AWS gives.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets as pysecrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET = "aws:secretsmanager/secret:Secret"
RDS = "aws:rds/instance:Instance"
RANDOM_ID = "random:index/randomId:RandomId"
# Types whose physical name is unique in an account and region (a VPC for security groups), with
# the API call that creates them and the error AWS returns for a name in use.
UNIQUE: dict[str, tuple[str, Callable[[str, dict[str, Any]], str]]] = {
    SECRET: ("Secrets Manager: CreateSecret", lambda n, r: f"ResourceExistsException: The operation failed because the secret {n} already exists."),
    "aws:lb/targetGroup:TargetGroup": ("Elastic Load Balancing v2: CreateTargetGroup",
                                       lambda n, r: f"DuplicateTargetGroupName: A target group with the same name '{n}' exists, but with different settings"),
    "aws:ec2/securityGroup:SecurityGroup": ("EC2: CreateSecurityGroup",
                                            lambda n, r: f"InvalidGroup.Duplicate: The security group '{n}' already exists for VPC '{r.get('vpcId', '')}'"),
    "aws:rds/parameterGroup:ParameterGroup": ("RDS: CreateDBParameterGroup", lambda n, r: f"DBParameterGroupAlreadyExists: Parameter group {n} already exists"),
    "aws:rds/subnetGroup:SubnetGroup": ("RDS: CreateDBSubnetGroup", lambda n, r: f"DBSubnetGroupAlreadyExists: The DB subnet group '{n}' already exists."),
    "aws:iam/role:Role": ("IAM: CreateRole", lambda n, r: f"EntityAlreadyExists: Role with name {n} already exists."),
    "aws:cloudwatch/logGroup:LogGroup": ("CloudWatch Logs: CreateLogGroup", lambda n, r: "ResourceAlreadyExistsException: The specified log group already exists"),
    "aws:ecr/repository:Repository": ("ECR: CreateRepository",
                                      lambda n, r: f"RepositoryAlreadyExistsException: The repository with name '{n}' already exists in the registry"),
    RDS: ("RDS: CreateDBInstance", lambda n, r: "DBInstanceAlreadyExists: DB instance already exists"),
}
SCHEDULED = "InvalidRequestException: You can't create this secret because a secret with this name is already scheduled for deletion."
PROVIDER_DEFAULT_RECOVERY_DAYS = 30
Record = dict[str, Any]


def physical_name(rec: Record) -> str | None:
    out, inp = rec.get("outputs") or {}, rec.get("inputs") or {}
    for key in ("identifier", "name", "bucket"):
        for source in (out, inp):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


# --- create-time values ---------------------------------------------------------------------------


def _generated(rec: Record) -> bool:
    """The resource's name is made by the provider/engine (namePrefix or autonaming), not the program."""
    inp, out = rec.get("inputs") or {}, rec.get("outputs") or {}
    logical = rec["urn"].rsplit("::", 1)[-1]
    if not isinstance(out.get("name"), str) or "name" in inp or out["name"] == logical:
        return False
    return "namePrefix" in inp or not any(k in inp for k in ("identifier", "bucket"))


def _fresh_name(rec: Record) -> str:
    inp = rec.get("inputs") or {}
    if inp.get("namePrefix"):
        return f"{inp['namePrefix']}{int(pysecrets.token_hex(11), 16) % 10**26:026d}"  # the provider's 26-digit unique suffix
    logical = rec["urn"].rsplit("::", 1)[-1]
    return f"{logical[:24]}-{pysecrets.token_hex(4)[:7]}"  # Pulumi's autoname: <logical>-<7 hex>


def _tokens(rec: Record, old: Record | None, fresh: bool) -> dict[str, str]:
    """{mock token: real value} for one record's create-time values."""
    out = rec.get("outputs") or {}
    if rec["type"] == RANDOM_ID and isinstance(out.get("hex"), str):
        hex_ = (old or {}).get("outputs", {}).get("hex") if old and not fresh else None
        hex_ = hex_ or pysecrets.token_hex(len(out["hex"]) // 2)
        return {out["hex"]: hex_, str(out.get("dec")): str(int(hex_, 16))}
    if _generated(rec):
        name = (old or {}).get("outputs", {}).get("name") if old and not fresh else None
        return {out["name"]: name or _fresh_name(rec)}
    return {}


def _substitute(value: Any, tokens: dict[str, str]) -> Any:
    if isinstance(value, str):
        if value in tokens:
            return tokens[value]
        for token, real in tokens.items():
            if len(token) >= 8 and token in value:
                value = value.replace(token, real)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, tokens) for v in value]
    return value


def realize(program: list[Record], old: list[Record], replaced: set[str] | None = None) -> list[Record]:
    """The program's records with create-time values: the state's for resources that stay, fresh
    ones for resources created now or replaced (`replaced`: URNs the plan replaces)."""
    old_by = {r["urn"]: r for r in old}
    tokens: dict[str, str] = {}
    for rec in program:
        prev = old_by.get(rec["urn"])
        fresh = prev is None or prev.get("type") != rec["type"] or rec["urn"] in (replaced or set())
        tokens.update(_tokens(rec, prev, fresh))
    tokens = {k: v for k, v in tokens.items() if k and k != v}
    if not tokens:
        return program
    return [{**r, **{k: _substitute(r[k], tokens) for k in ("inputs", "outputs", "id") if k in r}} for r in program]


def plan(program: list[Record], old: list[Record], plan_steps: Callable[[list[Record], list[Record]], list[Any]]) -> list[Any]:
    """Plan with realized values; a replaced resource with a generated name gets a new one (and its
    dependents see the change), as the provider creates the replacement under a fresh name."""
    steps = plan_steps(old, realize(program, old))
    replaced = {s[2]["urn"] for s in steps if s[0] == "replace" and s[2] is not None and _generated(s[2])}
    if replaced:
        steps = plan_steps(old, realize(program, old, replaced))
    return steps


# --- names AWS holds -------------------------------------------------------------------------------


class Account:
    """The names this backend's "AWS account" holds, kept beside the state."""

    def __init__(self, root: Path):
        self.path = root / ".pulumi-double-aws.json"
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.pending: dict[str, str] = dict(data.get("secretsPendingDeletion") or {})  # name -> deletion date (ISO)
        self.snapshots: list[str] = list(data.get("dbSnapshots") or [])

    def save(self) -> None:
        self.path.write_text(json.dumps({"secretsPendingDeletion": self.pending, "dbSnapshots": self.snapshots}, indent=2))

    def _held(self, name: str) -> bool:
        until = self.pending.get(name)
        return until is not None and dt.datetime.fromisoformat(until) > dt.datetime.now(dt.UTC)

    def create_error(self, new: Record, live: list[Record]) -> str | None:
        """Why AWS refuses to create `new` while `live` exist (None: it is created)."""
        spec = UNIQUE.get(new["type"])
        name = physical_name(new)
        if spec is None or not name:
            return None
        call, message = spec
        inputs = new.get("inputs") or {}
        if new["type"] == SECRET and self._held(name):
            return f"creating Secrets Manager Secret ({name}): operation error {call}, https response error StatusCode: 400, {SCHEDULED}"
        for other in live:
            if other["type"] != new["type"] or physical_name(other) != name:
                continue
            if new["type"] == "aws:ec2/securityGroup:SecurityGroup" and (other.get("inputs") or {}).get("vpcId") != inputs.get("vpcId"):
                continue
            return f"creating {new['type'].rsplit(':', 1)[-1]} ({name}): operation error {call}, https response error StatusCode: 400, {message(name, inputs)}"
        return None

    def delete(self, rec: Record) -> str | None:
        """Apply the deletion's name effects; an error text when AWS refuses the deletion."""
        inputs = rec.get("inputs") or {}
        name = physical_name(rec)
        if rec["type"] == SECRET and name:
            days = inputs.get("recoveryWindowInDays", PROVIDER_DEFAULT_RECOVERY_DAYS)
            if days:
                self.pending[name] = (dt.datetime.now(dt.UTC) + dt.timedelta(days=int(days))).isoformat()
            else:
                self.pending.pop(name, None)  # ForceDeleteWithoutRecovery: the name is free at once
        if rec["type"] == RDS:
            if inputs.get("deletionProtection"):
                return (f"deleting RDS DB Instance ({name}): operation error RDS: DeleteDBInstance, https response error StatusCode: 400, "
                        "InvalidParameterCombination: Cannot delete protected DB Instance, please disable deletion protection and try again.")
            if not inputs.get("skipFinalSnapshot"):
                snap = str(inputs.get("finalSnapshotIdentifier") or "")
                if not snap:
                    return f"deleting RDS DB Instance ({name}): final_snapshot_identifier is required when skip_final_snapshot is false"
                if snap in self.snapshots:
                    return (f"deleting RDS DB Instance ({name}): operation error RDS: DeleteDBInstance, https response error StatusCode: 400, "
                            f"DBSnapshotAlreadyExists: Cannot create the snapshot because a snapshot with the identifier {snap} already exists.")
                self.snapshots.append(snap)
        return None
