"""The database's pricing rule: the RDS instance (class, storage, Multi-AZ), its backups beyond the
free share, Performance Insights' paid retention and enhanced monitoring's log volume."""

from __future__ import annotations

from bootstrap.cost.model import Context, Line, Res, Unpriced
from bootstrap.cost.tables import HOURS


def rds_instance(r: Res, c: Context) -> list[Line | Unpriced]:
    cls = str(r.get("instanceClass", ""))
    multi = bool(r.get("multiAz", False))
    copies = c.prices.p("rds_multi_az_factor") if multi else 1.0
    out: list[Line | Unpriced] = []
    hour, why = c.prices.rds_instance_hour(cls)
    if hour is None:
        out.append(Unpriced("database instance hours", why))
    else:
        out.append(
            Line(
                "database instance hours",
                hour * copies * HOURS,
                0.0,
                f"{cls} ${hour:.4f}/h" + (f" x {copies:g} (Multi-AZ)" if multi else "") + f" x {HOURS} h",
                ("dbInstanceClass", "dbMultiAz"),
                f"dbInstanceClass={cls}, dbMultiAz={str(multi).lower()} (Multi-AZ doubles it)",
            )
        )
    storage_type = str(r.get("storageType", "gp3"))
    gb = float(r.get("allocatedStorage", 20) or 20)
    if storage_type == "gp3":
        price = c.prices.p("rds_gp3_gb_month")
        out.append(
            Line(
                "database storage",
                gb * price * copies,
                0.0,
                f"{gb:g} GB gp3 x ${price}/GB-month" + (f" x {copies:g} (Multi-AZ)" if multi else ""),
                ("dbAllocatedStorageGb", "dbMultiAz"),
                f"dbAllocatedStorageGb={gb:g} (autoscaling up to dbMaxAllocatedStorageGb={c.cfg('dbMaxAllocatedStorageGb')} raises it)",
            )
        )
    else:
        out.append(Unpriced("database storage", f"storageType {storage_type} has no price (only gp3)"))
    backup, why_not = c.prices.sourced("rds_backup_gb_month")
    if backup is None:
        out.append(Unpriced("database backup storage", why_not))
    else:
        out.append(
            Line(
                "database backup storage",
                0.0,
                c.u("db_backup_gb_beyond_free") * backup,
                f"db_backup_gb_beyond_free {c.u('db_backup_gb_beyond_free'):g} GB x ${backup}/GB-month (free up to {gb:g} GB)",
                ("dbBackupRetentionDays",),
            )
        )
    out.extend(_performance_insights(r, c, cls, copies))
    out.extend(_enhanced_monitoring(r, c))
    return out


def _performance_insights(r: Res, c: Context, cls: str, copies: float) -> list[Line | Unpriced]:
    if not r.get("performanceInsightsEnabled", False):
        return []
    days = int(r.get("performanceInsightsRetentionPeriod", 7) or 7)
    if days <= 7:
        return []  # the 7-day tier is free
    vcpus = c.prices.rds_vcpus(cls)
    if vcpus is None:
        return [Unpriced("Performance Insights retention", f"vCPU count of {cls} unknown")]
    months = 24 if days == 731 else days // 31
    (first, why_first), (extra, why_extra) = c.prices.sourced("pi_vcpu_month_first"), c.prices.sourced("pi_vcpu_month_additional")
    if first is None or extra is None:
        return [Unpriced("Performance Insights retention", why_first or why_extra)]
    per_vcpu = first + (months - 1) * extra
    count = vcpus * copies
    return [
        Line(
            "Performance Insights retention",
            per_vcpu * count,
            0.0,
            f"{count:g} vCPU x (${first} + {months - 1} x ${extra}) for {days} days",
            ("dbPerformanceInsightsRetentionDays",),
            f"dbPerformanceInsightsRetentionDays={days} (7 is free)",
        )
    ]


def _enhanced_monitoring(r: Res, c: Context) -> list[Line | Unpriced]:
    interval = int(r.get("monitoringInterval", 0) or 0)
    if interval <= 0:
        return []
    samples = HOURS * 3600 / interval
    gb = samples * c.u("em_kb_per_sample") / 1_000_000
    ingest, store = c.prices.p("logs_ingest_gb"), c.prices.p("logs_storage_gb_month")
    stored = gb * c.u("log_stored_fraction")  # RDSOSMetrics keeps 30 days by default: one month's worth
    return [
        Line(
            "enhanced monitoring (CloudWatch Logs)",
            gb * ingest + stored * store,
            0.0,
            f"{samples:,.0f} samples x em_kb_per_sample {c.u('em_kb_per_sample'):g} KB = {gb:.2f} GB x ${ingest}/GB + storage",
            ("dbMonitoringIntervalSeconds",),
            f"dbMonitoringIntervalSeconds={interval} (halving it doubles this line)",
        )
    ]
