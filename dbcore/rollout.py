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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def rollout_problem(service: str, cluster: str, deployments: Sequence[Mapping[str, Any]]) -> str | None:
    """One sentence when the service's deployments say a rollout is unfinished, else None."""
    primary = [d for d in deployments if d.get("status") == "PRIMARY"]
    others = [d for d in deployments if d.get("status") == "ACTIVE"]
    state = str(primary[0].get("rolloutState") or "") if primary else ""
    if primary and state in ("", "COMPLETED") and not others:
        return None
    why = (f"its newest deployment is {state or 'not reported'}" if state not in ("", "COMPLETED")
           else f"{len(others)} older deployment(s) still run tasks" if others else "it has no primary deployment")
    return (f"the last deployment of service {service} in cluster {cluster} has not completed ({why}): tasks may still hold the login "
            "this rotation would change next; rotate again once the rollout has completed (or fix it: "
            f"aws ecs describe-services --cluster {cluster} --services {service})")


def check_service(ecs: Any, cluster: str, service: str) -> str | None:
    """rollout_problem for a live service (ecs: a boto3 ECS client). A service that does not exist
    runs no task that could be cut off: no problem (the redeploy after the rotation says it failed)."""
    found = [s for s in ecs.describe_services(cluster=cluster, services=[service]).get("services") or [] if s.get("status") != "INACTIVE"]
    if not found:
        return None
    return rollout_problem(service, cluster, found[0].get("deployments") or [])
