"""Rotate through Secrets Manager: the runner needs only AWS API access, never a path to the database.

`run_rotation` calls RotateSecret (the rotation function and schedule come from the stack's
`SecretRotation`), then polls DescribeSecret until the new version is AWSCURRENT and no version
is left staged AWSPENDING, printing what it waits for and the elapsed time; meanwhile it reads the
function's log group and stops at once, in one sentence, when the function reported a failed step
for this secret. A version left AWSPENDING by a failed rotation is resumed (RotateSecret with that
version as ClientRequestToken), never stacked upon. `rotate_stack` does that for the master first
(the login rotations connect as the master), then the login secrets, and after an app rotation
waits until the service is stable on a deployment started after the rotation began (the function
starts one in finishSecret; if it did not, one is forced here), so every task holds the newest
credentials before the next rotation.

`python -m bootstrap rotate --local` keeps the in-process path (bootstrap/rotation/local.py) for stacks
where the runner reaches the database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dbcore.rollout import check_service, force_new_deployment, wait_for_rollout
from dbcore.secret import RotationError, aws_error_code
from dbcore.waiting import wait_until

LOGIN_ROLES = ("app", "migrator")


@dataclass(frozen=True)
class Clock:
    """Time seams, so tests run the polling loop without sleeping."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time  # epoch seconds: compared with AWS timestamps (log events, deployments)


@dataclass(frozen=True)
class Rotation:
    token: str  # the version that became AWSCURRENT ("" when nothing was started or joined)
    began: float  # epoch seconds: RotateSecret called here, or the joined version's creation


STEP_FAILURE = re.compile(r"(createSecret|setSecret|testSecret|finishSecret) failed for (\S+?): (.*)")


def _stages(sm: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {})


def _aws_error(exc: Exception) -> str:
    return aws_error_code(exc) or type(exc).__name__


def _created(sm: Any, secret_id: str, token: str) -> float | None:
    """When Secrets Manager created the version (the start of a rotation we join), None if unknown."""
    try:
        versions = sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True).get("Versions") or []
    except Exception:  # noqa: BLE001 - only a better start time is lost
        return None
    created = next((v.get("CreatedDate") for v in versions if v.get("VersionId") == token), None)
    return created.timestamp() if created is not None else None


class FunctionLog:
    """The failure sentences the rotation function logged for one secret (rotation_function/handler.py:
    `<step> failed for <arn>: <sentence>`), read with CloudWatch Logs FilterLogEvents."""

    def __init__(self, logs: Any, group: str, secret_id: str, out: Callable[[str], None]):
        self.logs, self.group, self.secret_id, self.out = logs, group, secret_id, out
        self.unreadable = False

    def last_failure(self, since: float) -> tuple[str, str] | None:
        """(step, sentence) of the newest failure logged since `since` (epoch seconds), else None."""
        if self.logs is None or not self.group or self.unreadable:
            return None
        kwargs: dict[str, Any] = {"logGroupName": self.group, "startTime": int(since * 1000), "filterPattern": f'"failed for {self.secret_id}"'}
        events: list[dict[str, Any]] = []
        try:
            for _ in range(20):  # bounded paging: failure lines are few, one per failed invocation
                page = self.logs.filter_log_events(**kwargs)
                events += page.get("events") or []
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except Exception as exc:  # noqa: BLE001 - the wait goes on; only the early report is lost
            self.unreadable = True
            self.out(f"  cannot read the function's log {self.group} ({_aws_error(exc)}): waiting without it")
            return None
        for event in sorted(events, key=lambda e: int(e.get("timestamp") or 0), reverse=True):
            match = STEP_FAILURE.search(str(event.get("message") or ""))
            if match and match.group(2) == self.secret_id:
                return match.group(1), match.group(3).strip().rstrip(".")
        return None


def _begin(sm: Any, secret_id: str, *, join_pending: bool, start: bool, out: Callable[[str], None], clock: Clock) -> Rotation:
    """Join, resume or start the rotation to wait for (token "" when there is nothing to do)."""
    stages = _stages(sm, secret_id)
    pending = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
    if pending and join_pending:
        out(f"  {secret_id}: a rotation is in progress (version {pending[0]}): waiting for it")
        return Rotation(pending[0], _created(sm, secret_id, pending[0]) or clock.wall())
    if pending:
        # A failed rotation leaves its version AWSPENDING and blocks any new one. RotateSecret with
        # that version as ClientRequestToken (the idempotency token Secrets Manager documents for
        # retries) runs the same rotation again; if the service refuses, its own retries are waited for.
        began = clock.wall()
        try:
            sm.rotate_secret(SecretId=secret_id, ClientRequestToken=pending[0], RotateImmediately=True)
            out(f"  {secret_id}: resuming the rotation of version {pending[0]} (AWSPENDING)")
        except Exception as exc:  # noqa: BLE001 - refused: the rotation is still Secrets Manager's
            out(f"  {secret_id}: version {pending[0]} is AWSPENDING and Secrets Manager would not resume it ({_aws_error(exc)}): waiting for its retries")
            began = _created(sm, secret_id, pending[0]) or began
        return Rotation(pending[0], began)
    if not start:
        out(f"  {secret_id}: no rotation in progress and none due: AWSCURRENT stands")
        return Rotation("", clock.wall())
    began = clock.wall()
    try:
        return Rotation(str(sm.rotate_secret(SecretId=secret_id, RotateImmediately=True)["VersionId"]), began)
    except Exception as exc:  # botocore: not configured for rotation, access denied, ...
        raise RotationError(f"RotateSecret on {secret_id} failed ({_aws_error(exc)}); is the stack deployed with its rotation function?") from None


def _current_since(sm: Any, secret_id: str) -> Any:
    """When AWSCURRENT was created, once the secret has been rotated (a version is AWSPREVIOUS); else
    None: AWSCURRENT is still the app database's passwordless first value, which no task can use
    (the function checks nothing then either, dbcore/alternating.py), or the date is unknown."""
    try:
        versions = sm.list_secret_version_ids(SecretId=secret_id).get("Versions") or []
    except Exception:  # noqa: BLE001 - only the earlier refusal is lost: the function's createSecret still checks
        return None
    if not any("AWSPREVIOUS" in (v.get("VersionStages") or []) for v in versions):
        return None
    return next((v.get("CreatedDate") for v in versions if "AWSCURRENT" in (v.get("VersionStages") or [])), None)


def run_rotation(
    sm: Any,
    secret_id: str,
    *,
    function_log_group: str = "",
    logs: Any = None,
    timeout_s: float = 900.0,
    interval_s: float = 5.0,
    out: Callable[[str], None] = print,
    clock: Clock = Clock(),
    join_pending: bool = False,
    start: bool = True,
) -> Rotation:
    """Start one rotation (or join / resume the one in progress) and wait until the new version is
    AWSCURRENT and no AWSPENDING is left. While waiting, the function's log (`logs`: a CloudWatch
    Logs client) is read: a failure it reported for this secret since the rotation began ends the
    wait at once, in one sentence. `join_pending`: a rotation in progress (the immediate one a new
    SecretRotation starts) is waited for; otherwise it is resumed with its own token. `start=False`:
    when none is in progress, nothing is started."""
    rotation = _begin(sm, secret_id, join_pending=join_pending, start=start, out=out, clock=clock)
    token = rotation.token
    if not token:
        return rotation
    log = FunctionLog(logs, function_log_group, secret_id, out)
    mine: list[str] = []
    shown, shown_at = "", 0.0

    def finished() -> Rotation | None:
        nonlocal mine
        stages = _stages(sm, secret_id)
        mine = stages.get(token, [])
        if "AWSCURRENT" in mine and not any("AWSPENDING" in s for s in stages.values()):
            return rotation
        if "AWSCURRENT" not in mine and (failure := log.last_failure(rotation.began)) is not None:
            step, sentence = failure
            raise RotationError(f"the rotation function failed at {step} for {secret_id}: {sentence} (log group {function_log_group}); "
                                f"AWSCURRENT still works and Secrets Manager retries the rotation; fix the cause, then run "
                                f"`python -m bootstrap rotate` again to resume version {token}")
        return None

    def waiting(elapsed: float) -> None:  # on each change of state, else every 30 s
        nonlocal shown, shown_at
        state = "promoted, AWSPENDING label not yet removed" if "AWSCURRENT" in mine else "AWSPENDING (the function is creating, setting and testing it)"
        if state != shown or elapsed - shown_at >= 30:
            out(f"  {secret_id}: waiting, new version {state} ({elapsed:.0f}s)")
            shown, shown_at = state, elapsed

    def timed_out(elapsed: float) -> RotationError:
        where = f"; see {function_log_group}" if function_log_group else ""
        return RotationError(f"rotation of {secret_id} did not finish within {int(timeout_s)}s (version {token} is {'/'.join(mine) or 'unstaged'}){where}; "
                             "Secrets Manager keeps retrying, AWSCURRENT still works")

    started = clock.now()
    wait_until(finished, timeout_s=timeout_s, interval_s=interval_s, waiting=waiting, timed_out=timed_out, clock=clock.now, sleep=clock.sleep)
    out(f"  {secret_id}: new version {token} is AWSCURRENT ({clock.now() - started:.0f}s)")
    return rotation


def _primary_deployment(ecs: Any, cluster: str, service: str) -> dict[str, Any] | None:
    found = ecs.describe_services(cluster=cluster, services=[service]).get("services") or []
    deployments = (found[0].get("deployments") or []) if found else []
    return next((d for d in deployments if d.get("status") == "PRIMARY"), None)


def redeploy_service(ecs: Any, cluster: str, service: str, *, since: float | None = None, out: Callable[[str], None] = print,
                     clock: Clock = Clock(), timeout_s: float = 1800.0, interval_s: float = 15.0) -> None:
    """Every task must hold the newest secret, read at task start. The rotation function forces a new
    deployment in the app secret's finishSecret; when the service's PRIMARY deployment was created
    after the rotation began (`since`, epoch seconds), follow it; else force one and follow that.
    Followed by id until its rollout COMPLETED (dbcore/rollout.py): a steady service is not enough,
    since a circuit breaker that rolled the deployment back leaves old tasks running, steadily."""
    try:
        primary = _primary_deployment(ecs, cluster, service) if since is not None else None
        created = primary.get("createdAt") if primary else None
        if primary and created is not None and created.timestamp() >= since:
            deployment = str(primary.get("id") or "")
            out(f"  service {service}: the rotation function started deployment {deployment or '?'}: waiting for its rollout ...")
        else:
            deployment = force_new_deployment(ecs, cluster, service)
            out(f"  service {service}: new deployment {deployment or '?'} started, waiting for its rollout ...")
        took = wait_for_rollout(ecs, cluster, service, deployment, timeout_s=timeout_s, interval_s=interval_s, out=out, clock=clock.now, sleep=clock.sleep)
    except RotationError as exc:
        raise RotationError(f"redeploying service {service} in {cluster} failed: {exc}; running tasks keep working until the next-but-one rotation") from None
    except Exception as exc:
        raise RotationError(f"redeploying service {service} in {cluster} failed ({_aws_error(exc)}); running tasks keep working until the next-but-one rotation") from None
    out(f"  service {service}: rollout completed ({took:.0f}s), every task holds the new credentials")


def rotate_stack(
    sm: Any,
    secret_ids: dict[str, str],
    roles: Sequence[str],
    *,
    ecs: Any = None,
    cluster: str = "",
    service: str = "",
    function_log_group: str = "",
    logs: Any = None,
    out: Callable[[str], None] = print,
    clock: Clock = Clock(),
    timeout_s: float = 900.0,
    join_pending: bool = False,
    start: bool = True,
) -> list[str]:
    """Rotate `roles` (master first), then redeploy the service once if the app login rotated."""
    order = [r for r in ("master", *LOGIN_ROLES) if r in roles]
    unknown = sorted(set(roles) - set(order))
    if unknown:
        raise RotationError(f"unknown role(s) {', '.join(unknown)}; use master, app, migrator or all")
    if "app" in order and ecs is not None and cluster and service:
        # the same refusal as the function's createSecret, before anything starts
        problem = check_service(ecs, cluster, service, _current_since(sm, secret_ids["app"]))
        if problem:
            raise RotationError(f"not rotating app: {problem}")
    done = []
    app_began: float | None = None
    for role in order:
        out(f"rotate {role} through Secrets Manager")
        rotation = run_rotation(sm, secret_ids[role], function_log_group=function_log_group, logs=logs, out=out, clock=clock,
                                timeout_s=timeout_s, join_pending=join_pending, start=start)
        if rotation.token:
            done.append(role)
            app_began = rotation.began if role == "app" else app_began
    if ecs is not None and cluster and service and "app" in done:
        redeploy_service(ecs, cluster, service, since=app_began, out=out, clock=clock)
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
    logs: Any = None  # CloudWatch Logs: the function's failures end the wait early

    @staticmethod
    def available(outputs: dict[str, Any]) -> bool:
        return bool(outputs.get("rotationFunctionArn"))

    def secret_ids(self) -> dict[str, str]:
        logins = self.outputs.get("appDbLoginSecretArns") or {}
        return {"master": str(self.outputs.get("dbMasterSecretArn") or ""), **{k: str(v) for k, v in dict(logins).items()}}

    def rotate(self, roles: Sequence[str], join_pending: bool = False, start: bool = True) -> list[str]:
        ids = self.secret_ids()
        missing = [r for r in roles if not ids.get(r)]
        if missing:
            raise RotationError(f"the stack exports no secret for {', '.join(missing)}; run `python -m bootstrap deploy` first")
        return rotate_stack(
            self.sm, ids, roles, ecs=self.ecs, cluster=str(self.outputs.get("clusterName") or ""), service=str(self.outputs.get("serviceName") or ""),
            function_log_group=function_log_group(str(self.outputs.get("rotationFunctionArn") or "")), logs=self.logs, out=self.out,
            clock=self.clock, timeout_s=self.timeout_s, join_pending=join_pending, start=start,
        )
