"""What `release` and `rollback` add around bootstrap/deploy/release.py's Releaser (its `gate`):

  - before the stack update: take the ledger's lock and run the migration (bootstrap/deploy/migrate.py)
    when the stack has a migration command and the run is a release (a rollback never migrates);
  - at steady state: the service must run exactly the task definition the update registered and
    every running app container the digest we checked (DescribeTasks' imageDigest), else the
    release fails saying what runs instead;
  - at the end, however it ends: one record in the ledger (tag, digest, task definition, time,
    outcome, the migration's task, exit code, duration and image), and the lock given back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bootstrap.deploy.ledger import Ledger, LedgerError, ReleaseRecord
from bootstrap.deploy.migrate import MigrationError, MigrationRunner, MigrationTarget, short
from bootstrap.deploy.release import ReleaseError, ReleaseOptions, Releaser
from config.naming import APP_CONTAINER

# Seconds beyond the migration and deployment timeouts a lock's lease lasts (a killed CLI's lock
# expires on its own after that).
LEASE_MARGIN = 600


def plain(outputs: Mapping[str, Any], key: str) -> Any:
    value = outputs.get(key)
    return getattr(value, "value", value)


class ReleaseGate:
    def __init__(self, settings: Any, ecs: Any, ledger: Ledger | None, runner: MigrationRunner | None, outputs: Callable[[], Mapping[str, Any]],
                 *, kind: str, holder: str, out: Callable[[str], None] = print, deploy_timeout: float = 1800):
        self.settings, self.ecs, self.ledger, self.runner, self.outputs = settings, ecs, ledger, runner, outputs
        self.kind, self.holder, self.out, self.deploy_timeout = kind, holder, out, deploy_timeout
        self.record: ReleaseRecord | None = None
        self.token = ""
        self.expected_digest = ""  # rollback: the digest the ledger recorded for the target tag

    @property
    def migrates(self) -> bool:
        return self.kind == "release" and bool(self.settings.service.migration_command)

    def before_update(self, tag: str, digest: str) -> None:
        if self.expected_digest and digest != self.expected_digest:
            raise ReleaseError(f"tag {tag} now names {digest[:19]}…, not the {self.expected_digest[:19]}… released before; "
                               "refusing to roll back to a different image under the same tag")
        if self.ledger is not None:
            self.record = self.ledger.new_record(self.kind, tag, digest, self.holder)
        if not self.migrates:
            self.out("migration: none (no migrationCommand)" if self.kind == "release" else "migration: none (a rollback never migrates)")
            return
        if self.ledger is None or self.runner is None:
            raise ReleaseError("the stack has a migrationCommand but no release table to lock; deploy the stack first")
        outputs = self.outputs()
        target = migration_target(outputs, self.settings)
        lease = self.settings.service.migration_timeout_seconds + self.deploy_timeout + LEASE_MARGIN
        self.token = self.ledger.acquire(self.holder, lease)
        self.out(f"lock: taken for {self.settings.prefix} as {self.holder}")
        image = f"{plain(outputs, 'repositoryUrl')}@{digest}"
        try:
            result = self.runner.run(target, image, self.settings.service.migration_timeout_seconds,
                                     on_started=lambda arn: self.ledger.note_task(self.token, arn) if self.ledger else None)
        except MigrationError as exc:
            if self.record is not None:
                self.record.migration = exc.result
            raise ReleaseError(str(exc)) from None
        if self.record is not None:
            self.record.migration = result

    def verify_steady(self, cluster: str, service: str, task_definition: str, digest: str) -> None:
        expected = str(plain(self.outputs(), "appTaskDefinitionArn") or "")
        if expected and task_definition != expected:
            raise ReleaseError(f"{service} settled on {short(task_definition)}, not the {short(expected)} this release registered; "
                               "another deployment replaced it")
        arns = self.ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING").get("taskArns") or []
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=arns[:100]).get("tasks") or [] if arns else []
        wrong = []
        for t in tasks:
            app: Mapping[str, Any] = next((c for c in t.get("containers") or [] if c.get("name") == APP_CONTAINER), {})
            if t.get("taskDefinitionArn") != task_definition or app.get("imageDigest") != digest:
                wrong.append(f"{short(str(t.get('taskArn', '')))} ({short(str(t.get('taskDefinitionArn', '')))}, {app.get('imageDigest') or 'digest unknown'})")
        if not tasks or wrong:
            raise ReleaseError(f"{service} reports steady state but does not run only {digest[:19]}…: "
                               f"{', '.join(wrong) if wrong else 'no running task'}")
        self.out(f"verified: {len(tasks)} running task(s) of {short(task_definition)} on {digest[:19]}…")

    def finish(self, releaser: Releaser, outcome: str, reason: str) -> None:
        try:
            if self.record is not None and self.ledger is not None:
                self.record.outcome, self.record.reason = outcome, reason[:900]
                self.record.task_definition = releaser.settled_on or str(plain(releaser.outputs, "appTaskDefinitionArn") or "")
                try:
                    self.ledger.save(self.record)
                    self.out(f"recorded: {self.kind} {self.record.tag} {outcome} at {self.record.at} in {self.ledger.table}")
                except LedgerError as exc:
                    self.out(f"warning: this {self.kind} was not recorded: {exc}")
        finally:
            if self.token and self.ledger is not None and self.runner is not None and self.runner.running:
                # Interrupted while the migration task runs: it goes on without us, and so must the lock.
                self.out(f"the migration task {short(self.runner.running)} is still running: the lock of {self.settings.prefix} stays "
                         "until its lease ends; once the task stopped, the next release can take it with --break-lock")
            elif self.token and self.ledger is not None:
                self.ledger.release(self.token)
                self.token = ""


def migration_target(outputs: Mapping[str, Any], settings: Any) -> MigrationTarget:
    arn = str(plain(outputs, "migrationTaskDefinitionArn") or "")
    if not arn:
        raise ReleaseError("the stack has a migrationCommand but its state has no migration task definition (output "
                           f"migrationTaskDefinitionArn); run `python -m bootstrap up --stack {settings.stack}` first")
    return MigrationTarget(cluster=str(plain(outputs, "clusterName") or settings.prefix), task_definition=arn,
                           subnets=list(plain(outputs, "privateSubnetIds") or []), security_groups=[str(plain(outputs, "serviceSecurityGroupId"))],
                           log_group=str(plain(outputs, "appLogGroupName") or ""))


def run_gated(releaser: Releaser, gate: ReleaseGate, opts: ReleaseOptions) -> int:
    """The release with its gate: the record is written and the lock given back however it ends."""
    try:
        rc = releaser.release(opts)
    except ReleaseError as exc:
        gate.finish(releaser, "failed", str(exc))
        raise
    except BaseException as exc:
        gate.finish(releaser, "failed", f"interrupted: {type(exc).__name__}")
        raise
    gate.finish(releaser, "succeeded" if rc == 0 else "failed", "" if rc == 0 else "ECS rolled the deployment back")
    return rc
