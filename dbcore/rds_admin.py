"""How the RDS master password is set through the RDS API (ModifyDBInstance, then waited on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from dbcore.secret import RotationError
from dbcore.waiting import wait_until


class DatabaseAdmin(Protocol):
    def set_master_password(self, instance_id: str, password: str) -> None:
        """Make the instance's master user accept `password`; return once it is applied."""


class RdsAdmin:
    """The real one: ModifyDBInstance, then poll until the change is no longer pending (bounded),
    saying every `heartbeat_s` that it is still waiting (RDS takes minutes)."""

    def __init__(self, rds_client: Any, *, timeout_s: float = 900.0, interval_s: float = 10.0,
                 out: Callable[[str], None] = print, heartbeat_s: float = 30.0):
        self.rds = rds_client
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.out = out
        self.heartbeat_s = heartbeat_s

    def set_master_password(self, instance_id: str, password: str) -> None:
        status, last_beat = "", 0.0

        def applied() -> bool | None:
            nonlocal status
            inst = self.rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
            status = str(inst.get("DBInstanceStatus"))
            return True if status == "available" and "MasterUserPassword" not in (inst.get("PendingModifiedValues") or {}) else None

        def waiting(elapsed: float) -> None:
            nonlocal last_beat
            if elapsed - last_beat >= self.heartbeat_s:
                last_beat = elapsed
                self.out(f"  still waiting for RDS instance {instance_id} to apply the new master password (status {status}, {int(elapsed)}s elapsed)")

        try:
            self.rds.modify_db_instance(DBInstanceIdentifier=instance_id, MasterUserPassword=password, ApplyImmediately=True)
            wait_until(applied, timeout_s=self.timeout_s, interval_s=self.interval_s, waiting=waiting, timed_out=lambda elapsed: RotationError(
                f"RDS instance {instance_id} did not apply the new master password within {int(self.timeout_s)}s; re-run the rotation to resume"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                raise RotationError(f"RDS instance {instance_id} does not exist in this account/region; check --stack, AWS_PROFILE and the region") from None
            raise RotationError(f"RDS refused to change the master password of {instance_id} ({code}: {exc.response.get('Error', {}).get('Message', '')})") from None
        except BotoCoreError as exc:
            raise RotationError(f"cannot reach RDS to change the master password of {instance_id} ({type(exc).__name__}: {exc})") from None
