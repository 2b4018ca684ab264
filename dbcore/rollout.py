"""Has the app service's last deployment finished? The alternating rotation must not outrun it.

An alternating rotation (components/rotation_function.py) leaves the previous user working until
the next-but-one rotation, and relies on the forced deployment of the previous rotation having
replaced every task meanwhile. If that rollout never finished (a failed image pull, a stuck
deployment, a circuit breaker rolling back), some tasks still hold the user the next rotation is
about to change: so createSecret (the function) and `python -m bootstrap rotate` (the CLI) both
refuse while the service has a deployment that is not COMPLETED, with the same sentence.

Reads ECS DescribeServices (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html):
each deployment has `status` (PRIMARY, ACTIVE, INACTIVE) and `rolloutState` (COMPLETED, FAILED,
IN_PROGRESS; absent for services without the rolling-update circuit breaker's tracking).

`force_new_deployment` and `wait_for_rollout` are the in-process rotation's redeploy
(bootstrap/rotation/local.py): it forces the deployment the function forces in finishSecret, then
waits for it, so a `rotate --local` that returns 0 leaves every task on the new user.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dbcore.secret import RotationError
from dbcore.waiting import wait_until


def rollout_problem(service: str, cluster: str, deployments: Sequence[Mapping[str, Any]], since: dt.datetime | None = None) -> str | None:
    """One sentence when the service's deployments say a rollout is unfinished, else None. With
    `since` (when the secret's current version was created): also when the newest deployment
    started before it, i.e. the forced redeploy after the last rotation never happened (a failed
    UpdateService), so running tasks may still hold the user the next rotation changes."""
    primary = [d for d in deployments if d.get("status") == "PRIMARY"]
    others = [d for d in deployments if d.get("status") == "ACTIVE"]
    state = str(primary[0].get("rolloutState") or "") if primary else ""
    if primary and state in ("", "COMPLETED") and not others:
        created = primary[0].get("createdAt")
        if since is None or not isinstance(created, dt.datetime) or created >= since:
            return None
        return (f"the last deployment of service {service} in cluster {cluster} ({primary[0].get('id', '?')}) started before the login's "
                f"current version was created ({since:%Y-%m-%d %H:%M:%S} UTC), so its tasks may still hold the login this rotation "
                f"would change; force a new deployment (aws ecs update-service --cluster {cluster} --service {service} "
                "--force-new-deployment) and rotate again once it has completed")
    why = (f"its newest deployment is {state or 'not reported'}" if state not in ("", "COMPLETED")
           else f"{len(others)} older deployment(s) still run tasks" if others else "it has no primary deployment")
    return (f"the last deployment of service {service} in cluster {cluster} has not completed ({why}): tasks may still hold the login "
            "this rotation would change next; rotate again once the rollout has completed (or fix it: "
            f"aws ecs describe-services --cluster {cluster} --services {service})")


def check_service(ecs: Any, cluster: str, service: str, since: dt.datetime | None = None) -> str | None:
    """rollout_problem for a live service (ecs: a boto3 ECS client). A service that does not exist
    runs no task that could be cut off: no problem (the redeploy after the rotation says it failed)."""
    found = [s for s in ecs.describe_services(cluster=cluster, services=[service]).get("services") or [] if s.get("status") != "INACTIVE"]
    if not found:
        return None
    return rollout_problem(service, cluster, found[0].get("deployments") or [], since)


def force_new_deployment(ecs: Any, cluster: str, service: str) -> str:
    """UpdateService with forceNewDeployment: every task is replaced and reads the secret anew at
    start. Returns the new PRIMARY deployment's id (from the reply, else read back)."""
    reply = ecs.update_service(cluster=cluster, service=service, forceNewDeployment=True)
    deployments = (reply.get("service") or {}).get("deployments") or []
    if not deployments:
        found = ecs.describe_services(cluster=cluster, services=[service]).get("services") or []
        deployments = (found[0].get("deployments") or []) if found else []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    return str(primary.get("id") or "") if primary else ""


def rollout_progress(service: str, cluster: str, deployments: Sequence[Mapping[str, Any]], deployment_id: str) -> str | None:
    """None once the followed deployment (or one that replaced it) is the only one and runs every
    task it should; else what is still happening. A FAILED rollout raises (one sentence)."""
    mine = next((d for d in deployments if d.get("id") == deployment_id), None)
    if mine is not None and mine.get("rolloutState") == "FAILED":
        reason = str(mine.get("rolloutStateReason") or "no reason given").rstrip(".")
        raise RotationError(f"deployment {deployment_id} of service {service} in cluster {cluster} failed ({reason})")
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    running, desired = (int(primary.get("runningCount") or 0), int(primary.get("desiredCount") or 0)) if primary else (0, 0)
    # A deployment started after ours replaced it: its tasks read the secret even later, so it counts.
    ours = primary is not None and (mine is None or primary.get("id") == deployment_id)
    if ours and rollout_problem(service, cluster, deployments) is None and running >= desired:
        return None
    draining = sum(1 for d in deployments if d.get("status") == "ACTIVE")
    return f"{running}/{desired} new task(s) running, {draining} older deployment(s) draining"


def wait_for_rollout(
    ecs: Any,
    cluster: str,
    service: str,
    deployment_id: str,
    *,
    timeout_s: float = 1800.0,
    interval_s: float = 15.0,
    out: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll DescribeServices until `rollout_progress` says done; progress on each change, else
    every 30 s. Returns the seconds waited; RotationError on a failed rollout or the timeout."""
    now, shown, shown_at = "", "", -30.0

    def done() -> bool | None:
        nonlocal now
        found = [s for s in ecs.describe_services(cluster=cluster, services=[service]).get("services") or [] if s.get("status") != "INACTIVE"]
        if not found:
            raise RotationError(f"service {service} in cluster {cluster} disappeared while deployment {deployment_id} rolled out")
        state = rollout_progress(service, cluster, found[0].get("deployments") or [], deployment_id)
        now = state or ""
        return True if state is None else None

    def waiting(elapsed: float) -> None:
        nonlocal shown, shown_at
        if now != shown or elapsed - shown_at >= 30:
            out(f"  service {service}: deployment {deployment_id} rolling out: {now} ({elapsed:.0f}s)")
            shown, shown_at = now, elapsed

    def timed_out(elapsed: float) -> RotationError:
        return RotationError(f"deployment {deployment_id} of service {service} in cluster {cluster} has not completed after {elapsed:.0f}s ({now})")

    started = clock()
    wait_until(done, timeout_s=timeout_s, interval_s=interval_s, timed_out=timed_out, waiting=waiting, clock=clock, sleep=sleep)
    return clock() - started
