"""Rotate through Secrets Manager: the runner needs only AWS API access, never a path to the database.

`rotate_secret` calls RotateSecret (the rotation function and schedule come from the stack's
`SecretRotation`), then polls DescribeSecret until the new version is AWSCURRENT and no version
is left staged AWSPENDING, printing what it waits for and the elapsed time. `rotate_stack` does
that for the master first (the login rotations connect as the master), then the login secrets,
and after a login rotation forces a new ECS deployment of the service and waits until it is
stable, so every task holds the newest credentials before the next rotation.

`python -m bootstrap rotate --local` keeps the in-process path (bootstrap/rotation.py) for stacks
where the runner reaches the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bootstrap.rotation import RotationError

LOGIN_ROLES = ("app", "migrator")


@dataclass(frozen=True)
class Clock:
    """Time seams, so tests run the polling loop without sleeping."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def _stages(sm: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {})


def _aws_error(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return code or type(exc).__name__


def rotate_secret(
    sm: Any,
    secret_id: str,
    *,
    function_log_group: str = "",
    timeout_s: float = 900.0,
    interval_s: float = 5.0,
    out: Callable[[str], None] = print,
    clock: Clock = Clock(),
    join_pending: bool = False,
) -> str:
    """Start one rotation and wait for it to finish; returns the new AWSCURRENT version id.
    `join_pending`: a rotation already in progress (the immediate one a new SecretRotation starts)
    is waited for instead of refused."""
    stages = _stages(sm, secret_id)
    pending = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
    token = ""
    if pending and join_pending:
        token = pending[0]
        out(f"  {secret_id}: a rotation is in progress (version {token}): waiting for it")
    elif pending:
        # Secrets Manager would refuse; a stuck rotation must be understood, not stacked upon.
        raise RotationError(f"secret {secret_id} has a rotation in progress (version {pending[0]} is AWSPENDING); "
                            f"wait for it or read the function's log{f' ({function_log_group})' if function_log_group else ''}")
    try:
        token = token or str(sm.rotate_secret(SecretId=secret_id, RotateImmediately=True)["VersionId"])
    except Exception as exc:  # botocore: not configured for rotation, access denied, ...
        raise RotationError(f"RotateSecret on {secret_id} failed ({_aws_error(exc)}); is the stack deployed with its rotation function?") from None
    start = clock.now()
    last = ""
    while True:
        stages = _stages(sm, secret_id)
        mine = stages.get(token, [])
        left_pending = [v for v, s in stages.items() if "AWSPENDING" in s]
        if "AWSCURRENT" in mine and not left_pending:
            out(f"  {secret_id}: new version {token} is AWSCURRENT ({clock.now() - start:.0f}s)")
            return token
        state = "promoted, AWSPENDING label not yet removed" if "AWSCURRENT" in mine else "AWSPENDING (the function is creating, setting and testing it)"
        if state != last or int(clock.now() - start) % 30 < interval_s:
            out(f"  {secret_id}: waiting, new version {state} ({clock.now() - start:.0f}s)")
            last = state
        if clock.now() - start > timeout_s:
            where = f"; see {function_log_group}" if function_log_group else ""
            raise RotationError(f"rotation of {secret_id} did not finish within {int(timeout_s)}s (version {token} is {'/'.join(mine) or 'unstaged'}){where}; "
                                "Secrets Manager keeps retrying, AWSCURRENT still works")
        clock.sleep(interval_s)


def redeploy_service(ecs: Any, cluster: str, service: str, *, out: Callable[[str], None] = print, max_attempts: int = 60) -> None:
    """Force a new deployment so every task reads the newest secret at start, and wait until stable."""
    try:
        ecs.update_service(cluster=cluster, service=service, forceNewDeployment=True)
        out(f"  service {service}: new deployment started, waiting until stable ...")
        ecs.get_waiter("services_stable").wait(cluster=cluster, services=[service], WaiterConfig={"Delay": 15, "MaxAttempts": max_attempts})
    except Exception as exc:
        raise RotationError(f"redeploying service {service} in {cluster} failed ({_aws_error(exc)}); running tasks keep working until the next-but-one rotation") from None
    out(f"  service {service}: stable, every task holds the new credentials")


def rotate_stack(
    sm: Any,
    secret_ids: dict[str, str],
    roles: Sequence[str],
    *,
    ecs: Any = None,
    cluster: str = "",
    service: str = "",
    function_log_group: str = "",
    out: Callable[[str], None] = print,
    clock: Clock = Clock(),
    timeout_s: float = 900.0,
    join_pending: bool = False,
) -> list[str]:
    """Rotate `roles` (master first), then redeploy the service once if a login role rotated."""
    order = [r for r in ("master", *LOGIN_ROLES) if r in roles]
    unknown = sorted(set(roles) - set(order))
    if unknown:
        raise RotationError(f"unknown role(s) {', '.join(unknown)}; use master, app, migrator or all")
    done = []
    for role in order:
        out(f"rotate {role} through Secrets Manager")
        rotate_secret(sm, secret_ids[role], function_log_group=function_log_group, out=out, clock=clock, timeout_s=timeout_s, join_pending=join_pending)
        done.append(role)
    if ecs is not None and cluster and service and "app" in done:
        redeploy_service(ecs, cluster, service, out=out)
    return done


def function_log_group(function_arn: str) -> str:
    """The function's log group (components/rotation_function.py names it after the function)."""
    parts = function_arn.split(":")
    return f"/aws/lambda/{parts[6]}" if len(parts) >= 7 and parts[5] == "function" else ""


@dataclass
class RemoteRotator:
    """`rotate_stack` bound to one stack's outputs: its secrets, function and service."""

    sm: Any
    ecs: Any
    outputs: dict[str, Any]
    out: Callable[[str], None] = print
    clock: Clock = Clock()
    timeout_s: float = 900.0

    @staticmethod
    def available(outputs: dict[str, Any]) -> bool:
        return bool(outputs.get("rotationFunctionArn"))

    def secret_ids(self) -> dict[str, str]:
        logins = self.outputs.get("appDbLoginSecretArns") or {}
        return {"master": str(self.outputs.get("dbMasterSecretArn") or ""), **{k: str(v) for k, v in dict(logins).items()}}

    def rotate(self, roles: Sequence[str], join_pending: bool = False) -> list[str]:
        ids = self.secret_ids()
        missing = [r for r in roles if not ids.get(r)]
        if missing:
            raise RotationError(f"the stack exports no secret for {', '.join(missing)}; run `python -m bootstrap deploy` first")
        return rotate_stack(
            self.sm, ids, roles, ecs=self.ecs, cluster=str(self.outputs.get("clusterName") or ""), service=str(self.outputs.get("serviceName") or ""),
            function_log_group=function_log_group(str(self.outputs.get("rotationFunctionArn") or "")), out=self.out, clock=self.clock,
            timeout_s=self.timeout_s, join_pending=join_pending,
        )
