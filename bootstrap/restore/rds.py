"""Restore the stack's database into a new RDS instance, shaped like the source.

Steps (each a method of `Restorer`, driven by bootstrap/restore_run.py):

  1. `source()`     DescribeDBInstances of the stack's instance (output dbInstanceId): its subnet
                    group, parameter group, CA, IAM auth, log exports, monitoring and KMS key are
                    what the new instance gets, with the stack's security group (dbSecurityGroupId);
  2. `point()`      the restore point, refused in one sentence before anything is created: a time
                    outside the restorable window (DescribeDBInstanceAutomatedBackups RestoreWindow,
                    read first), or a snapshot of another engine, major or KMS key;
  3. `restore()`    RestoreDBInstanceToPointInTime / RestoreDBInstanceFromDBSnapshot;
  4. `wait_ready()` DescribeDBInstances until available (progress with elapsed time), then one
                    ModifyDBInstance for what no restore call takes (enhanced monitoring,
                    Performance Insights, the master password of the master secret's AWSCURRENT),
                    waited on until nothing is pending;
  5. `settings_checks()` the new instance as RDS reports it, compared with the source;
  6. `delete()`     DeleteDBInstance without a final snapshot, waited on (the drill, on every exit).

The RDS client is the seam (boto3, moto or a Stubber in tests); a second client may answer
DescribeDBInstanceAutomatedBackups (moto does not model RestoreWindow).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbcore.waiting import wait_until

READY_STATUSES = ("available",)
FAILED_STATUSES = ("failed", "incompatible-restore", "incompatible-parameters", "incompatible-network", "storage-full", "inaccessible-encryption-credentials")
MAX_IDENTIFIER = 63


class RestoreError(RuntimeError):
    """One sentence for the user (what is wrong, what to do); exit status 1."""


class RestoreInputError(RestoreError):
    """Bad input found before anything was created (a point outside the window, a foreign snapshot); exit 2."""


def aws_message(exc: BaseException) -> str:
    err = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    return f"{err.get('Code')}: {err.get('Message')}" if err else f"{type(exc).__name__}: {exc}"[:300]


def aws_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) if hasattr(exc, "response") else ""


def utc(text: str) -> dt.datetime:
    """--to-time: ISO 8601 with a zone (2026-12-04T15:30:00Z); a naive time is ambiguous."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise RestoreInputError(f"--to-time {text!r} is not a time: use ISO 8601 with a zone, e.g. 2026-12-04T15:30:00Z") from None
    if when.tzinfo is None:
        raise RestoreInputError(f"--to-time {text!r} has no time zone: add Z (UTC) or an offset, e.g. 2026-12-04T15:30:00Z")
    return when.astimezone(dt.UTC)


def show_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h{s % 3600 // 60:02d}m"
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def major(version: str) -> int:
    return int(str(version).split(".")[0])


def target_identifier(source_id: str, kind: str, now: dt.datetime) -> str:
    """<source>-<drill|restore>-<UTC yyyymmddhhmm>, within RDS's 63 characters."""
    suffix = f"-{kind}-{now.astimezone(dt.UTC):%Y%m%d%H%M}"
    head = source_id[: MAX_IDENTIFIER - len(suffix)].rstrip("-")
    return re.sub(r"-{2,}", "-", head + suffix)


@dataclass(frozen=True)
class Point:
    """Where to restore from: a time (None with latest), or a snapshot; `at` is the data's time."""

    kind: str  # "time" | "latest" | "snapshot"
    at: dt.datetime
    snapshot: str = ""
    time: dt.datetime | None = None

    def describe(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot {self.snapshot} (taken {show_time(self.at)})"
        return f"{'the latest restorable time' if self.kind == 'latest' else 'point in time'} {show_time(self.at)}"


@dataclass(frozen=True)
class Source:
    """The stack's instance, as DescribeDBInstances returns it (plus the stack's security group)."""

    raw: Mapping[str, Any]
    security_group_id: str

    @property
    def identifier(self) -> str:
        return str(self.raw["DBInstanceIdentifier"])

    @property
    def engine_major(self) -> int:
        return major(str(self.raw.get("EngineVersion", "0")))

    def expected(self) -> dict[str, Any]:
        """What the restored instance must report (settings_checks compares field by field)."""
        r = self.raw
        return {
            "DB subnet group": (r.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            "security group": [self.security_group_id],
            "parameter group": [g.get("DBParameterGroupName") for g in r.get("DBParameterGroups") or []],
            "KMS key": r.get("KmsKeyId"),
            "storage encrypted": True,
            "IAM database auth": bool(r.get("IAMDatabaseAuthenticationEnabled")),
            "CA certificate": r.get("CACertificateIdentifier"),
            "publicly accessible": False,
            "log exports": sorted(r.get("EnabledCloudwatchLogsExports") or []),
            "enhanced monitoring interval": int(r.get("MonitoringInterval") or 0),
            "Performance Insights": bool(r.get("PerformanceInsightsEnabled")),
        }


def reported(inst: Mapping[str, Any]) -> dict[str, Any]:
    """The same fields as `Source.expected`, read from a DescribeDBInstances entry."""
    return {
        "DB subnet group": (inst.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        "security group": sorted(g.get("VpcSecurityGroupId") for g in inst.get("VpcSecurityGroups") or []),
        "parameter group": [g.get("DBParameterGroupName") for g in inst.get("DBParameterGroups") or []],
        "KMS key": inst.get("KmsKeyId"),
        "storage encrypted": bool(inst.get("StorageEncrypted")),
        "IAM database auth": bool(inst.get("IAMDatabaseAuthenticationEnabled")),
        "CA certificate": inst.get("CACertificateIdentifier"),
        "publicly accessible": bool(inst.get("PubliclyAccessible")),
        "log exports": sorted(inst.get("EnabledCloudwatchLogsExports") or []),
        "enhanced monitoring interval": int(inst.get("MonitoringInterval") or 0),
        "Performance Insights": bool(inst.get("PerformanceInsightsEnabled")),
    }


@dataclass
class Restorer:
    rds: Any
    backups: Any = None  # answers DescribeDBInstanceAutomatedBackups; default: rds
    out: Callable[[str], None] = print
    timeout_s: float = 5400.0  # RDS restores take 10-60 minutes; a large database longer
    interval_s: float = 20.0
    heartbeat_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    created: list[str] = field(default_factory=list)  # identifiers this run asked RDS to create

    # --- 1. the source ------------------------------------------------------------------------

    def source(self, outputs: Mapping[str, Any], stack: str) -> Source:
        values = {k: getattr(v, "value", v) for k, v in outputs.items()}
        missing = [k for k in ("dbInstanceId", "dbSecurityGroupId") if not values.get(k)]
        if missing:
            raise RestoreError(f"stack {stack} has no database outputs ({', '.join(missing)} missing): deploy it first")
        instance_id = str(values["dbInstanceId"])
        inst = self._describe(instance_id)
        if inst is None:
            raise RestoreError(f"RDS instance {instance_id} (stack {stack}'s dbInstanceId) does not exist in this account/region; check AWS_PROFILE and the region")
        if str(inst.get("Engine", "")) != "postgres":
            raise RestoreError(f"RDS instance {instance_id} runs {inst.get('Engine')}, not postgres")
        return Source(inst, str(values["dbSecurityGroupId"]))

    # --- 2. the restore point -----------------------------------------------------------------

    def window(self, source: Source) -> tuple[dt.datetime, dt.datetime]:
        """(earliest, latest) restorable time, from the instance's automated backups."""
        client = self.backups or self.rds
        try:
            backups = client.describe_db_instance_automated_backups(DBInstanceIdentifier=source.identifier).get("DBInstanceAutomatedBackups") or []
        except Exception as exc:
            raise RestoreError(f"cannot read the restorable window of {source.identifier} (DescribeDBInstanceAutomatedBackups: {aws_message(exc)})") from None
        resource = source.raw.get("DbiResourceId")
        mine = [b for b in backups if b.get("RestoreWindow") and (not resource or b.get("DbiResourceId") == resource)]
        if not mine:
            raise RestoreInputError(f"RDS instance {source.identifier} has no restorable window (automated backups are off or not taken yet): use --snapshot")
        window = mine[0]["RestoreWindow"]
        return window["EarliestTime"].astimezone(dt.UTC), window["LatestTime"].astimezone(dt.UTC)

    def point(self, source: Source, *, to_time: str = "", latest: bool = False, snapshot: str = "") -> Point:
        if snapshot:
            return self._snapshot_point(source, snapshot)
        wanted = utc(to_time) if to_time else None
        earliest, last = self.window(source)
        self.out(f"restorable window of {source.identifier}: {show_time(earliest)} to {show_time(last)}")
        if latest:
            return Point("latest", last)
        assert wanted is not None
        if not earliest <= wanted <= last:
            raise RestoreInputError(f"--to-time {show_time(wanted)} is outside the restorable window of {source.identifier} "
                                 f"({show_time(earliest)} to {show_time(last)}): pick a time inside it, or use --latest or --snapshot")
        return Point("time", wanted, time=wanted)

    def _snapshot_point(self, source: Source, snapshot: str) -> Point:
        try:
            # An automated snapshot (rds:...) is only found with its type, a shared one (an ARN) with IncludeShared.
            extra: dict[str, Any] = {"SnapshotType": "automated"} if snapshot.startswith("rds:") else {"IncludeShared": True} if snapshot.startswith("arn:") else {}
            found = self.rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot, **extra).get("DBSnapshots") or []
        except Exception as exc:
            if aws_code(exc) in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
                raise RestoreInputError(f"snapshot {snapshot} does not exist in this account/region: list them with `aws rds describe-db-snapshots --db-instance-identifier {source.identifier}`") from None
            raise RestoreError(f"cannot read snapshot {snapshot} ({aws_message(exc)})") from None
        if not found:
            raise RestoreInputError(f"snapshot {snapshot} does not exist in this account/region")
        snap = found[0]
        engine, version = str(snap.get("Engine", "")), str(snap.get("EngineVersion", "0"))
        if engine != "postgres":
            raise RestoreInputError(f"snapshot {snapshot} is of engine {engine}, not postgres: pick a snapshot of {source.identifier}")
        if major(version) != source.engine_major:
            raise RestoreInputError(f"snapshot {snapshot} is PostgreSQL {major(version)} but {source.identifier} runs {source.engine_major}: "
                                 f"pick a snapshot taken on {source.engine_major} (or restore it by hand and upgrade it first)")
        if snap.get("Status") != "available":
            raise RestoreInputError(f"snapshot {snapshot} is {snap.get('Status')}, not available: wait for it or pick another")
        if snap.get("KmsKeyId") != source.raw.get("KmsKeyId"):
            raise RestoreInputError(f"snapshot {snapshot} is encrypted with {snap.get('KmsKeyId') or 'no key'}, not the stack's key {source.raw.get('KmsKeyId')}: "
                                 "copy it with `aws rds copy-db-snapshot --kms-key-id <the stack's key>` and restore the copy")
        taken = snap.get("SnapshotDatabaseTime") or snap.get("OriginalSnapshotCreateTime") or snap.get("SnapshotCreateTime")
        if taken is None:
            raise RestoreError(f"snapshot {snapshot} reports no creation time; RDS answered an unexpected shape")
        return Point("snapshot", taken.astimezone(dt.UTC), snapshot=snapshot)

    # --- 3. the restore call --------------------------------------------------------------------

    def request(self, source: Source, point: Point, target: str, *, drill: bool, tags: Mapping[str, str]) -> dict[str, Any]:
        """The parameters both restore calls share, from the source; a drill is single-AZ, keeps
        no backups (no initial backup to wait for) and has no deletion protection."""
        r = source.raw
        params: dict[str, Any] = {
            "DBInstanceClass": r["DBInstanceClass"],
            "DBSubnetGroupName": (r.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            "VpcSecurityGroupIds": [source.security_group_id],
            "DBParameterGroupName": next((g.get("DBParameterGroupName") for g in r.get("DBParameterGroups") or []), None),
            "CACertificateIdentifier": r.get("CACertificateIdentifier"),
            "EnableIAMDatabaseAuthentication": bool(r.get("IAMDatabaseAuthenticationEnabled")),
            "EnableCloudwatchLogsExports": list(r.get("EnabledCloudwatchLogsExports") or []),
            "Port": int((r.get("Endpoint") or {}).get("Port") or r.get("DbInstancePort") or 5432),
            "PubliclyAccessible": False,
            "MultiAZ": False if drill else bool(r.get("MultiAZ")),
            "StorageType": r.get("StorageType", "gp3"),
            "AutoMinorVersionUpgrade": bool(r.get("AutoMinorVersionUpgrade", True)),
            "CopyTagsToSnapshot": True,
            "DeletionProtection": False if drill else bool(r.get("DeletionProtection")),
            "BackupRetentionPeriod": 0 if drill else int(r.get("BackupRetentionPeriod") or 7),
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if r.get("PreferredBackupWindow") and not drill:
            params["PreferredBackupWindow"] = r["PreferredBackupWindow"]
        if point.kind == "snapshot":
            return {k: v for k, v in {"DBInstanceIdentifier": target, "DBSnapshotIdentifier": point.snapshot, **params}.items() if v is not None}
        params["MaxAllocatedStorage"] = r.get("MaxAllocatedStorage") if r.get("MaxAllocatedStorage") else None
        when = {"UseLatestRestorableTime": True} if point.kind == "latest" else {"RestoreTime": point.time}
        return {k: v for k, v in {"SourceDBInstanceIdentifier": source.identifier, "TargetDBInstanceIdentifier": target, **when, **params}.items() if v is not None}

    def restore(self, source: Source, point: Point, request: Mapping[str, Any]) -> str:
        target = str(request.get("TargetDBInstanceIdentifier") or request.get("DBInstanceIdentifier"))
        self.created.append(target)  # before the call: a timeout may still have created it
        try:
            if point.kind == "snapshot":
                self.rds.restore_db_instance_from_db_snapshot(**request)
            else:
                self.rds.restore_db_instance_to_point_in_time(**request)
        except Exception as exc:
            if aws_code(exc) in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
                self.created.remove(target)  # not ours: never delete it
                raise RestoreError(f"an RDS instance named {target} already exists (an earlier run?): delete it or wait a minute and retry") from None
            raise RestoreError(f"RDS refused the restore of {source.identifier} into {target} ({aws_message(exc)})") from None
        self.out(f"restore started: {target} from {point.describe()}")
        return target

    # --- 4. wait, then what the restore calls cannot set ---------------------------------------

    def _describe(self, identifier: str) -> dict[str, Any] | None:
        try:
            found = self.rds.describe_db_instances(DBInstanceIdentifier=identifier).get("DBInstances") or []
        except Exception as exc:
            if aws_code(exc) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                return None
            raise RestoreError(f"cannot describe RDS instance {identifier} ({aws_message(exc)})") from None
        return dict(found[0]) if found else None

    def wait_available(self, identifier: str, what: str, *, settled: Callable[[Mapping[str, Any]], bool] = lambda i: True) -> dict[str, Any]:
        status, shown, last_beat = "", "", 0.0

        def ready() -> dict[str, Any] | None:
            nonlocal status, shown
            inst = self._describe(identifier)
            if inst is None:
                raise RestoreError(f"RDS instance {identifier} vanished while {what}")
            status = str(inst.get("DBInstanceStatus"))
            if status in FAILED_STATUSES:
                raise RestoreError(f"RDS instance {identifier} is {status} while {what}: see `aws rds describe-events --source-identifier {identifier} --source-type db-instance`")
            if status != shown:
                self.out(f"  {identifier}: {status} ({duration(self.clock() - started)})")
                shown = status
            return inst if status in READY_STATUSES and settled(inst) else None

        def waiting(elapsed: float) -> None:
            nonlocal last_beat
            if elapsed - last_beat >= self.heartbeat_s:
                last_beat = elapsed
                self.out(f"  still waiting: {what}, {identifier} is {status} ({duration(elapsed)} elapsed)")

        started = self.clock()
        return wait_until(ready, timeout_s=self.timeout_s, interval_s=self.interval_s, waiting=waiting, clock=self.clock, sleep=self.sleep,
                          timed_out=lambda elapsed: RestoreError(f"RDS instance {identifier} was not ready after {duration(elapsed)} ({what}, last status {status})"))

    def finish(self, source: Source, identifier: str, master_password: str) -> dict[str, Any]:
        """Enhanced monitoring and Performance Insights as on the source, and the master secret's
        current password (the restored instance has the one valid at the restore point)."""
        r = source.raw
        changes: dict[str, Any] = {"MasterUserPassword": master_password, "ApplyImmediately": True}
        if int(r.get("MonitoringInterval") or 0):
            changes.update(MonitoringInterval=int(r["MonitoringInterval"]), MonitoringRoleArn=r.get("MonitoringRoleArn"))
        if r.get("PerformanceInsightsEnabled"):
            changes.update(EnablePerformanceInsights=True, PerformanceInsightsKMSKeyId=r.get("PerformanceInsightsKMSKeyId"),
                           PerformanceInsightsRetentionPeriod=int(r.get("PerformanceInsightsRetentionPeriod") or 7))
        try:
            self.rds.modify_db_instance(DBInstanceIdentifier=identifier, **{k: v for k, v in changes.items() if v is not None})
        except Exception as exc:
            raise RestoreError(f"RDS refused to set monitoring and the master password on {identifier} ({aws_message(exc)})") from None
        self.out(f"  {identifier}: monitoring, Performance Insights and the master password applied; waiting for RDS")
        return self.wait_available(identifier, "applying monitoring and the master password",
                                   settled=lambda i: not (i.get("PendingModifiedValues") or {}))

    # --- 5. what RDS reports ----------------------------------------------------------------------

    @staticmethod
    def settings_checks(source: Source, restored: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
        want, got = source.expected(), reported(restored)
        return [(f"RDS {key}", want[key] == got[key], f"{got[key]}" if want[key] == got[key] else f"{got[key]} (the source has {want[key]})") for key in want]

    # --- 6. the drill's cleanup -----------------------------------------------------------------

    def delete(self, identifier: str, *, timeout_s: float | None = None) -> None:
        """DeleteDBInstance without a final snapshot, retried while RDS says the instance is busy,
        then waited on until it is gone. Raises RestoreError with the command to finish by hand."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        manual = f"aws rds delete-db-instance --db-instance-identifier {identifier} --skip-final-snapshot --delete-automated-backups"

        def deleted() -> bool | None:
            try:
                self.rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
                return True
            except Exception as exc:
                code = aws_code(exc)
                if code in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                    return True
                if code in ("InvalidDBInstanceState", "InvalidDBInstanceStateFault"):
                    return None  # still creating or modifying: ask again
                raise RestoreError(f"could not delete {identifier} ({aws_message(exc)}); delete it with `{manual}`") from None

        def gone() -> bool | None:
            inst = self._describe(identifier)
            return True if inst is None else None

        timed_out = lambda elapsed: RestoreError(f"{identifier} was not deleted after {duration(elapsed)}; finish with `{manual}`")  # noqa: E731
        self.out(f"drill: deleting {identifier} (no final snapshot)")
        wait_until(deleted, timeout_s=limit, interval_s=self.interval_s, clock=self.clock, sleep=self.sleep, timed_out=timed_out)
        wait_until(gone, timeout_s=limit, interval_s=self.interval_s, clock=self.clock, sleep=self.sleep, timed_out=timed_out)
        self.out(f"drill: {identifier} deleted")
