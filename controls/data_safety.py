"""Rules: what a prod stack must never lose or weaken (issue 28): protected databases, retained keys
and long-lived log groups, verified TLS from the postgresql provider.

These read Pulumi resource options (`protect`, `retainOnDelete`) and the stack's tier (the AWS
provider's `Environment` default tag), so they are stack-context controls. They apply to prod
only: dev databases are disposable on purpose, and the config refuses the prod downgrades before
any graph exists (components/sections.py); these controls are the second lock, in the plan and
in the policy pack, for a program edited around the config.
"""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import DATABASE, MUST_HOLD, control
from controls.inventory import Inventory, Res
from controls.readers import environment

RDS = "aws:rds/instance:Instance"
APP_DB = "postgresql:index/database:Database"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECRET = "aws:secretsmanager/secret:Secret"
PG_PROVIDER = "pulumi:providers:postgresql"
LONG_RETENTION_DAYS = 365
PROD_ONLY = "prod stacks only (the AWS provider's Environment tag is prod)"


def _prod(r: Res, inv: Inventory) -> bool:
    return environment(inv) == "prod"


@control("DATA.1", "Prod databases are protected from deletion by Pulumi (protect on the DB instance and the app database)", MUST_HOLD,
         (RDS, APP_DB), component=DATABASE, applies=_prod, context=True, condition=PROD_ONLY)
def _data1(r: Res, inv: Inventory) -> Iterator[str]:
    if not r.option("protect"):
        yield "protect is off: `pulumi destroy` or a replacing update would delete it (set dbProtect: true)"


def _long_lived_log_group(r: Res) -> bool:
    days = r.get("retentionInDays")
    return isinstance(days, int) and (days == 0 or days >= LONG_RETENTION_DAYS)


def _keeps_data(key: Res, inv: Inventory) -> bool:
    """A key encrypting the database (storage, snapshots, Performance Insights), a secret, or a
    long-lived log group: deleting it makes a final snapshot or retained logs unreadable."""
    return bool(
        inv.referring(key, "kmsKeyId", RDS, SECRET)
        or inv.referring(key, "performanceInsightsKmsKeyId", RDS)
        or [g for g in inv.referring(key, "kmsKeyId", LOG_GROUP) if _long_lived_log_group(g)]
    )


def _retained_in_prod(r: Res, inv: Inventory) -> bool:
    if not _prod(r, inv):
        return False
    return _long_lived_log_group(r) if r.type == LOG_GROUP else _keeps_data(r, inv)


@control("DATA.2", "Prod keys that encrypt data and log groups kept a year or more outlive the stack (protect and retainOnDelete)", MUST_HOLD,
         (KEY, LOG_GROUP), component=DATABASE, applies=_retained_in_prod, context=True, condition=PROD_ONLY)
def _data2(r: Res, inv: Inventory) -> Iterator[str]:
    what = "the final snapshot, retained backups and secrets" if r.type == KEY else "a year of logs"
    if not r.option("protect"):
        yield f"protect is off: `pulumi destroy` would delete it and with it {what}"
        return  # the policy SDK cannot see retainOnDelete: report what is known before asking for it
    if not r.option("retain_on_delete"):
        yield f"retainOnDelete is off: deleting the stack would delete it and with it {what}"


@control("TLS.1", "Prod connections of the postgresql provider verify the server (sslmode verify-full with a CA bundle)", MUST_HOLD,
         PG_PROVIDER, applies=_prod, context=True, condition=PROD_ONLY + " with appDbEnabled (the provider exists only then)")
def _tls1(r: Res, inv: Inventory) -> Iterator[str]:
    mode = r.get("sslmode")
    if mode != "verify-full":
        yield f"sslmode is {mode!r}: the master password could reach any server holding a certificate (set appDbSslMode: verify-full)"
    elif not r.get("sslrootcert"):
        yield "sslrootcert is not set: verify-full needs the RDS CA bundle (appDbSslRootCert)"
