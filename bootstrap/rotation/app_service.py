"""The app's ECS service as the in-process rotation of the app login sees it (bootstrap/rotation/local.py).

Its tasks read the login's secret (username and password) only at start. So before an app
rotation the service's last deployment must have completed (dbcore/rollout.py: the same rule and
sentence as the rotation function's createSecret), and after it a new deployment is forced (as the
function's finishSecret does) and waited for, with progress, until every task runs on the new user.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbcore.rollout import check_service, force_new_deployment, wait_for_rollout
from dbcore.secret import RotationError, aws_error_code

# What ECS answers for a service that is not there: no task can hold the login.
NO_SERVICE = ("ServiceNotFoundException", "ClusterNotFoundException", "ServiceNotActiveException")


@dataclass(frozen=True)
class AppService:
    ecs: Any  # boto3 ECS client
    cluster: str  # config/naming.py: cluster(prefix), ecs_service(prefix), as components/service.py names them
    service: str
    timeout_s: float = 1800.0
    interval_s: float = 15.0
    clock: Callable[[], float] = time.monotonic  # seams: tests wait without sleeping
    sleep: Callable[[float], None] = time.sleep

    def _failed(self, exc: Exception) -> str:
        return aws_error_code(exc) or type(exc).__name__

    def check_rollout(self, since: dt.datetime | None = None) -> None:
        """RotationError (one sentence) while the service's last deployment is unfinished, or
        started before `since` (the login's current version: its redeploy never happened)."""
        try:
            problem = check_service(self.ecs, self.cluster, self.service, since)
        except Exception as exc:  # noqa: BLE001 - botocore: one sentence with the AWS error code
            if aws_error_code(exc) in NO_SERVICE:
                return
            raise RotationError(f"cannot read service {self.service} in cluster {self.cluster} ({self._failed(exc)}); the app login is "
                                "rotated only once the service's last rollout is known to be complete") from None
        if problem:
            raise RotationError(f"not rotating app: {problem}")

    def force_redeploy(self, out: Callable[[str], None]) -> str | None:
        """Force a new deployment; its id, or None when no such service runs (nothing to replace)."""
        try:
            deployment = force_new_deployment(self.ecs, self.cluster, self.service)
        except Exception as exc:  # noqa: BLE001 - botocore: one sentence with the AWS error code
            if aws_error_code(exc) in NO_SERVICE:
                out(f"  service {self.service} does not run in cluster {self.cluster}: no task holds the app login, nothing to redeploy")
                return None
            raise RotationError(f"the app login is rotated, but forcing a new deployment of service {self.service} in cluster {self.cluster} "
                                f"failed ({self._failed(exc)}); running tasks keep the previous user until the next rotation: re-run this "
                                "rotation to redeploy") from None
        out(f"  service {self.service}: new deployment {deployment or '?'} forced, so every task reads the new login at start")
        return deployment

    def await_redeploy(self, deployment: str, out: Callable[[str], None]) -> None:
        """Wait until the forced deployment (or a newer one) runs every task, the older ones gone."""
        try:
            took = wait_for_rollout(self.ecs, self.cluster, self.service, deployment, timeout_s=self.timeout_s, interval_s=self.interval_s,
                                    out=out, clock=self.clock, sleep=self.sleep)
        except Exception as exc:  # noqa: BLE001 - RotationError or botocore: one sentence either way
            why = str(exc).rstrip(".") if isinstance(exc, RotationError) else f"reading service {self.service} failed ({self._failed(exc)})"
            raise RotationError(f"the app login is rotated, but {why}; tasks still on the previous user keep working, and the next rotation "
                                f"refuses until a rollout completes (aws ecs describe-services --cluster {self.cluster} --services {self.service})") from None
        out(f"  service {self.service}: deployment {deployment} completed ({took:.0f}s): every task holds the new login")
