"""The app's migration task and the release ledger: what `release` needs from the stack.

- `MigrationTask`: a task definition (family `<prefix>-migrate`) of one container, the app's image
  running `migrationCommand` with the **migrator's** login (its own secret, its own execution and
  task roles: the app's roles never read the migrator's secret). `release` registers a revision of
  this family pinned to the new image's digest and runs it once, in the service's subnets and
  security group, before the service changes (bootstrap/deploy/migrate.py). Its logs go to the app's
  log group under the stream prefix `migrate/`.
- `release_ledger`: one DynamoDB table per stack (`<prefix>-releases`) holding the release records
  and the migration lock. DynamoDB because the lock needs an atomic conditional write (take it
  when free or expired) and the history a query by time; every machine of the team with
  `dynamodb:Query` on the table reads the same history (docs/operations.md).

`migration_container` is a pure function of the app's container definition, as
components/container.py renders the app's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import service_iam
from components.app_database import DbConnection
from components.awsinfo import aws_facts
from components.container import container_definition
from components.service import Service
from config import naming
from config.naming import MIGRATE_CONTAINER
from config.settings import ServiceSettings

LEDGER_KEY, LEDGER_SORT = "pk", "sk"


def migration_container(app_container: dict[str, Any], command: Sequence[str]) -> dict[str, Any]:
    """The app's container definition turned into the one-off migration container: same image,
    hardening and database settings; the migration command; no port, no health check (nothing
    routes to it); logs under `migrate/`."""
    c = {k: v for k, v in app_container.items() if k not in ("portMappings", "healthCheck")}
    c["name"] = MIGRATE_CONTAINER
    c["command"] = list(command)
    log = dict(c["logConfiguration"])
    log["options"] = {**log["options"], "awslogs-stream-prefix": MIGRATE_CONTAINER}
    c["logConfiguration"] = log
    return c


@dataclass
class MigrationTaskArgs:
    settings: ServiceSettings
    """The service's settings: sizes, hardening, `migration_command`."""
    migrator: DbConnection
    """The migrator login (AppDatabase.connection("migrator")): its secret, never the app's."""
    service: Service
    """The app's service: its image and its log group."""
    repository_arn: pulumi.Input[str]
    """The ECR repository the execution role may pull from."""


class MigrationTask(pulumi.ComponentResource):
    task_definition_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MigrationTaskArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:service:MigrationTask", name, None, opts)
        s, svc = args.settings, args.service
        region = aws_facts(self).region
        execution_role, _ = service_iam.execution_role(
            name, f"{s.prefix}-mig", service_iam.execution_statements(args.repository_arn, svc.log_group_arn, args.migrator, region), self
        )
        task_role = service_iam.task_role(name, f"{s.prefix}-mig", service_iam.task_statements(args.migrator, None, None), self)
        container = migration_container(
            container_definition(s, args.migrator, svc.image, svc.log_group_name, region), s.migration_command
        )
        task = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=naming.migration_family(s.prefix),
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(s.task_cpu),
            memory=str(s.task_memory),
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            runtime_platform={"operating_system_family": "LINUX"},
            volumes=[{"name": "tmp"}],
            container_definitions=pulumi.Output.json_dumps([container]),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.task_definition_arn = task.arn
        self.register_outputs({"task_definition_arn": self.task_definition_arn})


def release_ledger(name: str, prefix: str, *, deletion_protection: bool, opts: pulumi.ResourceOptions | None = None) -> aws.dynamodb.Table:
    """The stack's release history and migration lock: on demand (a few writes per release),
    encrypted, point-in-time recoverable, protected from deletion in prod."""
    return aws.dynamodb.Table(
        name,
        name=naming.release_table(prefix),
        billing_mode="PAY_PER_REQUEST",
        hash_key=LEDGER_KEY,
        range_key=LEDGER_SORT,
        attributes=[aws.dynamodb.TableAttributeArgs(name=LEDGER_KEY, type="S"), aws.dynamodb.TableAttributeArgs(name=LEDGER_SORT, type="S")],
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
        deletion_protection_enabled=deletion_protection,
        tags={"Name": naming.release_table(prefix)},
        opts=opts,
    )
