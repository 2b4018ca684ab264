"""The migration gate of `release`: the app's migration command as a one-off ECS task on the new
image, before the service changes.

  1. the stack's migration task definition (family `<prefix>-migrate`, the migrator's secret and
     roles: components/migration.py) is copied into a new revision whose image is the release's
     image pinned by digest (ECS cannot override an image at RunTask);
  2. RunTask on plain FARGATE (never spot: a reclaimed migration is a half-applied one), in the
     service's private subnets and security group, no public IP;
  3. the task is followed until it stops, its log lines printed as they arrive (CloudWatch Logs,
     stream `migrate/migrate/<task id>`), under a timeout after which the task is stopped;
  4. exit 0 lets the release continue; anything else (non-zero exit, a task that never started,
     the timeout) aborts it with the stopped reason, before the service is touched.

ECS and CloudWatch Logs are boto3 clients handed in: tests answer ECS with botocore's Stubber
(moto 5.2.5 crashes on RunTask with awsvpc networking) and the logs with moto.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bootstrap.deploy.ledger import Migration
from config.naming import MIGRATE_CONTAINER

# What RegisterTaskDefinition takes back from DescribeTaskDefinition's answer (the rest is read-only).
REGISTER_FIELDS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes", "placementConstraints",
                   "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage", "pidMode", "ipcMode", "proxyConfiguration")


class MigrationError(RuntimeError):
    """The migration did not succeed: the release stops here, the service untouched."""

    def __init__(self, message: str, result: Migration | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class MigrationTarget:
    """Where and as what the migration runs (from the stack's outputs)."""

    cluster: str
    task_definition: str  # the stack's migration task definition (its ARN)
    subnets: Sequence[str]
    security_groups: Sequence[str]
    log_group: str


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class MigrationRunner:
    def __init__(self, ecs: Any, logs: Any, *, out: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_seconds: float = 5):
        self.ecs, self.logs, self.out, self.clock, self.sleep, self.poll = ecs, logs, out, clock, sleep, poll_seconds
        self.running = ""  # the task started and not yet seen stopped (an interrupted CLI leaves it running)

    def register(self, target: MigrationTarget, image: str) -> str:
        """A revision of the migration family running `image`; its ARN."""
        td = self.ecs.describe_task_definition(taskDefinition=target.task_definition, include=["TAGS"])
        base = td["taskDefinition"]
        spec: dict[str, Any] = {k: base[k] for k in REGISTER_FIELDS if base.get(k)}
        spec["containerDefinitions"] = [{**c, "image": image} if c.get("name") == MIGRATE_CONTAINER else c for c in base["containerDefinitions"]]
        if td.get("tags"):
            spec["tags"] = td["tags"]
        return str(self.ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"])

    def run(self, target: MigrationTarget, image: str, timeout_seconds: float, on_started: Callable[[str], None] = lambda arn: None) -> Migration:
        start = self.clock()
        task_definition = self.register(target, image)
        self.out(f"migration: running {short(task_definition)} ({image.rsplit('/', 1)[-1]}) in {target.cluster}")
        answer = self.ecs.run_task(
            cluster=target.cluster, taskDefinition=task_definition, count=1, startedBy="pghome-release",
            capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1, "base": 1}],
            networkConfiguration={"awsvpcConfiguration": {"subnets": list(target.subnets), "securityGroups": list(target.security_groups), "assignPublicIp": "DISABLED"}},
            propagateTags="TASK_DEFINITION",
        )
        tasks = answer.get("tasks") or []
        if not tasks:
            failure = (answer.get("failures") or [{}])[0]
            why = f"{failure.get('reason', 'no reason given')}{': ' + failure['detail'] if failure.get('detail') else ''}"
            raise MigrationError(f"the migration task did not start ({why}); the service was not changed",
                                 Migration("", task_definition, image, None, self.clock() - start, why))
        arn = self.running = str(tasks[0]["taskArn"])
        on_started(arn)
        stream = f"{MIGRATE_CONTAINER}/{MIGRATE_CONTAINER}/{short(arn)}"
        self.out(f"migration: task {short(arn)} started; its log: {target.log_group} {stream}")
        tail = LogTail(self.logs, target.log_group, stream, self.out)
        last_status, last_said = "", start
        while True:
            task = self._task(target.cluster, arn)
            tail.poll()
            status = str(task.get("lastStatus", ""))
            now = self.clock()
            if status != last_status or now - last_said >= 60:  # a line a minute while nothing changes
                self.out(f"migration: task {status.lower()} ({now - start:.0f}s)")
                last_status, last_said = status, now
            if status == "STOPPED":
                self.running = ""
                tail.poll()
                return self._result(task, task_definition, image, self.clock() - start)
            if self.clock() - start >= timeout_seconds:
                self.ecs.stop_task(cluster=target.cluster, task=arn, reason=f"pghome release: migration timeout after {timeout_seconds:.0f}s")
                self.running = ""
                tail.poll()
                raise MigrationError(f"the migration did not finish in {timeout_seconds:.0f}s (migrationTimeoutSeconds); its task {short(arn)} "
                                     "was stopped and the service was not changed",
                                     Migration(arn, task_definition, image, None, self.clock() - start, "timeout"))
            self.sleep(self.poll)

    def _task(self, cluster: str, arn: str) -> Mapping[str, Any]:
        found = self.ecs.describe_tasks(cluster=cluster, tasks=[arn]).get("tasks") or []
        return found[0] if found else {"lastStatus": "STOPPED", "stoppedReason": "the task is no longer listed"}

    def _result(self, task: Mapping[str, Any], task_definition: str, image: str, duration: float) -> Migration:
        container: Mapping[str, Any] = next((c for c in task.get("containers") or [] if c.get("name") == MIGRATE_CONTAINER), {})
        code = container.get("exitCode")
        reason = "; ".join(str(x) for x in (task.get("stopCode"), task.get("stoppedReason"), container.get("reason")) if x)
        result = Migration(str(task.get("taskArn", "")), task_definition, image, int(code) if code is not None else None, duration, reason)
        if code is None:
            raise MigrationError(f"the migration task {short(result.task_arn)} stopped without running its command ({reason or 'no reason given'}); "
                                 "the service was not changed", result)
        if code != 0:
            raise MigrationError(f"the migration exited {code} after {duration:.0f}s ({reason or 'see its log above'}); the service was not changed", result)
        self.out(f"migration: exit 0 after {duration:.0f}s")
        return result


class LogTail:
    """Print a log stream's new events as they arrive (GetLogEvents, forward from the head)."""

    def __init__(self, logs: Any, group: str, stream: str, out: Callable[[str], None]):
        self.logs, self.group, self.stream, self.out, self.token = logs, group, stream, out, None

    def poll(self) -> None:
        while True:
            kw: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream, "startFromHead": True}
            if self.token:
                kw["nextToken"] = self.token
            try:
                page = self.logs.get_log_events(**kw)
            except self.logs.exceptions.ResourceNotFoundException:
                return  # the container has not written yet
            for event in page.get("events") or []:
                self.out(f"  | {str(event.get('message', '')).rstrip()}")
            nxt = page.get("nextForwardToken")
            if not page.get("events") or nxt == self.token:
                self.token = nxt or self.token
                return
            self.token = nxt
