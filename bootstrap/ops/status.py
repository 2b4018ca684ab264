"""`status --stack S [--json]`: the one screen a person on call reads in ten seconds.

Every part is gathered on its own; a part whose API cannot be reached (no permission, throttled,
the resource gone) becomes one line saying so and the others still show. Names come from the stack
file's settings (config/naming.py), so status needs AWS read access only: no Pulumi CLI, no
passphrase.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from config import naming

PARTS = ("service", "targets", "database", "rotations", "releases", "alarms")


def _error(exc: BaseException) -> str:
    err = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    if err:
        return f"{err.get('Code', '')}: {err.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


def gather(settings: Any, aws: Any, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> dict[str, Any]:
    """Each part as a dict, or {"error": "..."} when its API did not answer."""
    p = settings.prefix
    report: dict[str, Any] = {"stack": settings.stack, "prefix": p, "region": settings.region, "at": now().isoformat(timespec="seconds")}
    ecs = aws.client("ecs")
    found: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {
        "service": lambda: _service(ecs, naming.cluster(p), naming.ecs_service(p), found),
        "targets": lambda: _targets(aws.client("elbv2"), found),
        "database": lambda: _database(aws.client("rds"), aws.client("cloudwatch"), naming.db_identifier(p), now()),
        "rotations": lambda: _rotations(aws.client("secretsmanager"), p, settings.app_database.password_logins()),
        "releases": lambda: _releases(aws.client("dynamodb"), p),
        "alarms": lambda: _alarms(aws.client("cloudwatch"), p),
    }
    for part, step in steps.items():
        try:
            report[part] = step()
        except Exception as exc:  # any API failure: this part degrades to one line, the rest still shows
            report[part] = {"error": _error(exc)}
    return report


def _service(ecs: Any, cluster: str, name: str, found: dict[str, Any]) -> dict[str, Any]:
    services = ecs.describe_services(cluster=cluster, services=[name]).get("services") or []
    if not services:
        raise LookupError(f"service {name} not found in cluster {cluster}")
    svc = services[0]
    found["target_groups"] = [lb["targetGroupArn"] for lb in svc.get("loadBalancers") or [] if lb.get("targetGroupArn")]
    deployments = [{"id": d.get("id"), "status": d.get("status"), "rollout": d.get("rolloutState", ""), "reason": d.get("rolloutStateReason", ""),
                    "task_definition": str(d.get("taskDefinition", "")).rsplit("/", 1)[-1], "running": d.get("runningCount", 0),
                    "desired": d.get("desiredCount", 0), "failed_tasks": d.get("failedTasks", 0)} for d in svc.get("deployments") or []]
    out = {"desired": svc.get("desiredCount", 0), "running": svc.get("runningCount", 0), "pending": svc.get("pendingCount", 0),
           "task_definition": str(svc.get("taskDefinition", "")).rsplit("/", 1)[-1], "deployments": deployments, "image": "", "digest": ""}
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="RUNNING").get("taskArns") or []
    if arns:
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[:100]).get("tasks") or []
        app = [c for t in tasks for c in t.get("containers") or [] if c.get("name") == "app"]
        out["image"] = app[0].get("image", "") if app else ""
        out["digest"] = ", ".join(sorted({str(c.get("imageDigest", "?")) for c in app}))
    return out


def _targets(elbv2: Any, found: dict[str, Any]) -> dict[str, Any]:
    groups = found.get("target_groups")
    if groups is None:
        raise LookupError("the service's target groups are unknown (service part failed)")
    states: dict[str, int] = {}
    reasons: list[str] = []
    for arn in groups:
        for d in elbv2.describe_target_health(TargetGroupArn=arn).get("TargetHealthDescriptions") or []:
            h = d.get("TargetHealth", {})
            states[h.get("State", "?")] = states.get(h.get("State", "?"), 0) + 1
            if h.get("State") not in ("healthy", None) and h.get("Description"):
                reasons.append(f"{d.get('Target', {}).get('Id', '?')}: {h.get('Reason', '')} {h['Description']}".strip())
    return {"states": states, "reasons": reasons[:5]}


def _database(rds: Any, cloudwatch: Any, ident: str, now: datetime) -> dict[str, Any]:
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    try:
        pending = rds.describe_pending_maintenance_actions(ResourceIdentifier=db["DBInstanceArn"]).get("PendingMaintenanceActions") or []
        actions = [f"{a.get('Action')} ({a.get('Description', '')}){' after ' + str(a['AutoAppliedAfterDate']) if a.get('AutoAppliedAfterDate') else ''}"
                   for p in pending for a in p.get("PendingMaintenanceActionDetails") or []]
    except Exception as exc:  # the instance's status matters more than this one call
        actions = [f"unknown ({_error(exc)})"]
    points = cloudwatch.get_metric_statistics(Namespace="AWS/RDS", MetricName="FreeStorageSpace", Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
                                              StartTime=now - timedelta(minutes=15), EndTime=now, Period=300, Statistics=["Minimum"]).get("Datapoints") or []
    free = min(p["Minimum"] for p in points) if points else None
    cert = db.get("CertificateDetails") or {}
    return {"status": db.get("DBInstanceStatus"), "class": db.get("DBInstanceClass"), "engine": f"{db.get('Engine')} {db.get('EngineVersion')}",
            "allocated_gb": db.get("AllocatedStorage"), "free_gb": round(free / 2**30, 1) if free is not None else None, "multi_az": db.get("MultiAZ"),
            "pending_maintenance": actions, "ca": db.get("CACertificateIdentifier", ""), "ca_valid_till": str(cert.get("ValidTill", "")),
            "backup_window": db.get("PreferredBackupWindow", ""), "latest_restorable": str(db.get("LatestRestorableTime", ""))}


def _rotations(sm: Any, prefix: str, logins: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("master", *logins):
        name = naming.master_secret(prefix) if role == "master" else naming.db_secret(prefix, role)
        try:
            s = sm.describe_secret(SecretId=name)
        except Exception as exc:  # one secret unreadable: say so on its line, show the others
            out[role] = {"error": _error(exc)}
            continue
        stages = [st for v in (s.get("VersionIdsToStages") or {}).values() for st in v]
        out[role] = {"enabled": bool(s.get("RotationEnabled")), "last": str(s.get("LastRotatedDate", "") or ""),
                     "next": str(s.get("NextRotationDate", "") or ""), "pending": "AWSPENDING" in stages}
    return out


def _releases(dynamodb: Any, prefix: str) -> list[dict[str, Any]]:
    from bootstrap.deploy.ledger import Ledger

    ledger = Ledger(dynamodb, prefix)
    held = ledger.lock_holder()
    rows: list[dict[str, Any]] = [{"at": r.at, "kind": r.kind, "tag": r.tag, "digest": r.digest, "outcome": r.outcome, "by": r.by,
             "migration": None if r.migration is None else {"exit": r.migration.exit_code, "seconds": round(r.migration.duration_seconds)}}
            for r in ledger.history(5)]
    if held:
        rows.insert(0, {"lock": held})
    return rows


def _alarms(cloudwatch: Any, prefix: str) -> list[dict[str, str]]:
    from bootstrap.deploy.alarms import firing_alarms  # the one DescribeAlarms reading (components/monitoring.py names them '<prefix>-...')

    return [{"name": a.name, "since": str(a.since or ""), "reason": a.reason[:160], "runbook": a.runbook} for a in firing_alarms(cloudwatch, f"{prefix}-")]


# --------------------------------------------------------------------------------------------
# One screen
# --------------------------------------------------------------------------------------------


def render(r: dict[str, Any]) -> str:
    lines = [f"{r['stack']} ({r['prefix']}, {r['region']}) at {r['at']}"]
    for part in PARTS:
        value = r.get(part)
        if isinstance(value, dict) and "error" in value and len(value) == 1:
            lines.append(f"{part:<10} unreachable: {value['error']}")
            continue
        lines.extend(RENDER[part](value))
    return "\n".join(lines)


def _r_service(s: dict[str, Any]) -> list[str]:
    out = [f"service    {s['running']}/{s['desired']} running, {s['pending']} pending, {s['task_definition']}, image {s['image'] or '-'} {s['digest'][:19]}"]
    for d in s["deployments"]:
        out.append(f"  deploy   {d['status']:<8} {d['rollout'] or '-':<11} {d['task_definition']} {d['running']}/{d['desired']}"
                   f"{', failed tasks ' + str(d['failed_tasks']) if d['failed_tasks'] else ''}{' (' + d['reason'] + ')' if d['reason'] and d['rollout'] == 'FAILED' else ''}")
    return out


def _r_targets(t: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{n} {s}" for s, n in sorted(t["states"].items())) or "no targets registered"
    return [f"targets    {states}", *(f"  {why}" for why in t["reasons"])]


def _r_database(d: dict[str, Any]) -> list[str]:
    free = f"{d['free_gb']} GB free of {d['allocated_gb']} GB" if d["free_gb"] is not None else f"{d['allocated_gb']} GB (free: no datapoint)"
    out = [f"database   {d['status']}, {d['class']}, {d['engine']}, {free}{', multi-AZ' if d['multi_az'] else ''}",
           f"  backups  window {d['backup_window']}, restorable to {d['latest_restorable']}; CA {d['ca']} until {d['ca_valid_till'] or '?'}"]
    out += [f"  pending  {a}" for a in d["pending_maintenance"]] or ["  pending  no maintenance"]
    return out


def _r_rotations(rot: dict[str, Any]) -> list[str]:
    out = []
    for role, s in rot.items():
        if "error" in s:
            out.append(f"rotation   {role:<9} unreachable: {s['error']}")
        else:
            out.append(f"rotation   {role:<9} {'on' if s['enabled'] else 'OFF'}, last {s['last'] or 'never'}, next {s['next'] or '-'}"
                       f"{', ROTATION PENDING (AWSPENDING)' if s['pending'] else ''}")
    return out


def _r_releases(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        if "lock" in row:
            lk = row["lock"]
            out.append(f"release    LOCKED by {lk['holder']} since {lk['since']} (lease ends {lk['expires_at']})")
            continue
        mig = row["migration"]
        m = f", migrated (exit {mig['exit']}, {mig['seconds']}s)" if mig else ""
        out.append(f"release    {row['at'][:19]} {row['kind']:<8} {row['tag']} {row['outcome']}{m} by {row['by'].split(' pid')[0]}")
    return out or ["release    none recorded"]


def _r_alarms(alarms: list[dict[str, str]]) -> list[str]:
    return [f"ALARM      {a['name']} since {a['since'][:19]}: {a['reason']}{' (what to do: ' + a['runbook'] + ')' if a.get('runbook') else ''}"
            for a in alarms] or ["alarms     none in ALARM"]


RENDER: dict[str, Callable[[Any], list[str]]] = {"service": _r_service, "targets": _r_targets, "database": _r_database,
                                                 "rotations": _r_rotations, "releases": _r_releases, "alarms": _r_alarms}
