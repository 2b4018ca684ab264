"""The database access path: an ECS task that nobody runs until a tunnel needs it.

`python -m bootstrap tunnel` (bootstrap/access/tunnel.py) starts one task of this definition with RunTask,
opens an SSM port-forwarding session through it to the RDS endpoint, and stops it afterwards.
Idle, the path costs one KMS key ($1/month): no service, no running task, an empty cluster.

What it builds (all children of the component):
  * its own cluster, with ECS Exec sessions encrypted with this component's CMK and logged
    (executeCommandConfiguration: kmsKeyId, logging OVERRIDE to a KMS-encrypted log group);
  * a task definition: Fargate, awsvpc, a small ECR Public image pinned by digest, pulled through
    this account's pull-through cache (components/db_access_image.py), that only sleeps
    (at most MAX_TASK_SECONDS, so a task orphaned by a killed client stops on its own); non-root,
    read-only root filesystem with writable volumes where the SSM agent writes, every capability
    dropped, an init process, logs to a KMS-encrypted log group;
  * a security group with no ingress and three egress rules, none to the internet (issue 28 item 7):
    the DB port to the database's security group, 443 to the VPC interface endpoints' security group
    (ssmmessages, kms, logs, ecr.api, ecr.dkr: config/settings.py ACCESS_ENDPOINT_SERVICES) and 443
    to the S3 gateway endpoint's prefix list (image layers); the database admits it through
    `Database.allow_from`;
  * a task role with exactly what ECS Exec needs: the four ssmmessages channel actions, kms:Decrypt
    on the session key, and writing the session log group; an execution role that writes the task's
    log group and pulls from the cache repository only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import sg as rules
from components.awsinfo import aws_facts
from components.container import EXEC_AGENT_PATHS
from components.database import Database
from components.db_access_image import PublicImage, pull_statements, pull_through_cache
from components.db_access_operator import operator_statements, session_document
from components.iam import ecs_exec_statements, ecs_tasks_trust_policy, inline_policy, log_streams, statement
from components.kms import encrypted_log_group, logs_key
from config import naming
from config.settings import DatabaseSettings

CONTAINER_NAME = "access"
# Alpine 3.20.3, multi-arch index digest (the same on Docker Hub and ECR Public's docker/library
# mirror). The task pulls it through this account's pull-through cache, never from the internet;
# bump with `docker buildx imagetools inspect public.ecr.aws/docker/library/alpine:<tag>`.
ACCESS_IMAGE = "public.ecr.aws/docker/library/alpine:3.20.3@sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d"
# The longest a tunnel may stay open; the task exits on its own after that even if nobody stops it.
MAX_TASK_SECONDS = 12 * 3600
# ECS Exec's agent writes where EXEC_AGENT_PATHS says (components/container.py); with a read-only root
# filesystem those must be volumes, the same set the app's tasks mount when exec is on.
AGENT_WRITABLE_PATHS = {**EXEC_AGENT_PATHS, "tmp": "/tmp"}
HTTPS_PORT = 443
LOG_KINDS = ("task", "exec")


@dataclass
class DbAccessArgs:
    """The network the task runs in, the database it reaches, and the database settings section
    (prefix, port, log retention; `access` decides whether this component exists at all)."""

    settings: DatabaseSettings
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets; never public ones."""
    database: Database
    """The database; it admits the access task through `allow_from`."""
    endpoint_security_group_id: pulumi.Input[str] | None
    """The VPC interface endpoints' security group (Network.endpoint_security_group_id): the task's
    only way to AWS APIs. Config makes it exist whenever dbAccess is on (config/load.py)."""
    s3_prefix_list_id: pulumi.Input[str] | None
    """The S3 gateway endpoint's prefix list (Network.s3_prefix_list_id): where image layers come from."""
    image: str = ACCESS_IMAGE
    """An ECR Public reference pinned by digest; the task pulls it through the pull-through cache."""


class DbAccess(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[Sequence[str]]
    container_name: str
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    session_document: pulumi.Output[str]
    """The only Session Manager document operators may use: port forwarding to this database."""
    operator_policy_arn: pulumi.Output[str]
    """The IAM policy to attach to operators (components/db_access_operator.py)."""
    image_uri: pulumi.Output[str]
    """The image the task pulls: the pull-through cache repository, pinned by digest."""

    def __init__(self, name: str, args: DbAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:dbaccess:DbAccess", name, None, opts)
        self._name, self._args = name, args
        self._prefix, self._port = args.settings.prefix, args.settings.port
        self._region = aws_facts(self).region
        if args.endpoint_security_group_id is None or args.s3_prefix_list_id is None:
            raise ValueError("the access task needs the VPC's interface endpoints and S3 gateway endpoint (config turns them on with dbAccess)")
        image = PublicImage.parse(args.image)

        key = self._key()
        task_logs, exec_logs = self._log_groups(key)
        cluster = self._cluster(key, exec_logs)
        cache_rule, cache_repo = pull_through_cache(name, self._prefix, image, key.arn, self)
        execution_role = self._execution_role(task_logs, cache_repo)
        task_role = self._task_role(key, exec_logs)
        image_uri = cache_repo.repository_url.apply(image.private_uri)
        task_definition = self._task_definition(task_logs, execution_role, task_role, image_uri, cache_rule)
        sg = self._security_group()
        args.database.allow_from("db-access", sg.id, "PostgreSQL from the on-demand access task (tunnel)")
        document, operator = self._operator_access(key, cluster, task_definition, [task_role, execution_role])

        self.cluster_name = cluster.name
        self.task_definition_arn = task_definition.arn
        self.security_group_id = sg.id
        self.subnet_ids = pulumi.Output.from_input(args.subnet_ids)
        self.container_name = CONTAINER_NAME
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.session_document = document.name
        self.operator_policy_arn = operator.arn
        self.image_uri = image_uri
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "task_definition_arn": self.task_definition_arn,
                "security_group_id": self.security_group_id,
                "subnet_ids": self.subnet_ids,
            }
        )

    # --- encryption and logs ---------------------------------------------------------------------

    def _key(self) -> aws.kms.Key:
        """One CMK for the exec sessions (the task role decrypts), both log groups (CloudWatch Logs) and the image
        cache repository (ECR uses it through a grant it creates with the deployer's permissions)."""
        key = logs_key(
            f"{self._name}-key",
            alias=f"{self._prefix}/db-access",
            description=f"{self._prefix}: database access task, ECS Exec sessions, their logs and the image cache",
            log_groups=[self._log_group_name(kind) for kind in LOG_KINDS],
            parent=self,
            keep=self._args.settings.keep_on_destroy,
        )
        return key

    def _log_group_name(self, kind: str) -> str:
        return f"/ecs/{self._prefix}/db-access/{kind}"

    def _log_groups(self, key: aws.kms.Key) -> tuple[aws.cloudwatch.LogGroup, aws.cloudwatch.LogGroup]:
        groups = [
            encrypted_log_group(
                f"{self._name}-logs-{kind}",
                name=self._log_group_name(kind),
                retention_days=self._args.settings.log_retention_days,
                key_arn=key.arn,
                parent=self,
                keep=self._args.settings.keep_on_destroy,
            )
            for kind in LOG_KINDS
        ]
        return groups[0], groups[1]

    # --- cluster ---------------------------------------------------------------------------------

    def _cluster(self, key: aws.kms.Key, exec_logs: aws.cloudwatch.LogGroup) -> aws.ecs.Cluster:
        return aws.ecs.Cluster(
            f"{self._name}-cluster",
            name=f"{self._prefix}-db-access",
            settings=[{"name": "containerInsights", "value": "enabled"}],
            configuration=aws.ecs.ClusterConfigurationArgs(
                execute_command_configuration=aws.ecs.ClusterConfigurationExecuteCommandConfigurationArgs(
                    kms_key_id=key.arn,
                    logging="OVERRIDE",
                    log_configuration=aws.ecs.ClusterConfigurationExecuteCommandConfigurationLogConfigurationArgs(
                        cloud_watch_log_group_name=exec_logs.name,
                        cloud_watch_encryption_enabled=True,
                    ),
                )
            ),
            tags={"Name": f"{self._prefix}-db-access"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    # --- IAM -------------------------------------------------------------------------------------

    def _role(self, suffix: str, description: str, statements: list[aws.iam.GetPolicyDocumentStatementArgs]) -> aws.iam.Role:
        name = self._name
        role = aws.iam.Role(
            f"{name}-{suffix}-role",
            name_prefix=naming.role_prefix(self._prefix, f"db-access-{suffix}"),  # roles: generated names (config/naming.py)
            description=description,
            assume_role_policy=ecs_tasks_trust_policy(self),
            opts=pulumi.ResourceOptions(parent=self),
        )
        inline_policy(f"{name}-{suffix}-policy", "db-access", role, statements, self)
        return role

    def _execution_role(self, task_logs: aws.cloudwatch.LogGroup, cache_repo: aws.ecr.Repository) -> aws.iam.Role:
        return self._role(
            "execution",
            "ECS agent for the database access task: pull its image through the cache repository, write its log group",
            [*pull_statements(cache_repo.arn), statement(["logs:CreateLogStream", "logs:PutLogEvents"], [log_streams(task_logs.arn)], "WriteTaskLogs")],
        )

    def _task_role(self, key: aws.kms.Key, exec_logs: aws.cloudwatch.LogGroup) -> aws.iam.Role:
        return self._role(
            "task",
            "Database access task: ECS Exec channels, session key, session logs (nothing else)",
            ecs_exec_statements(key.arn, exec_logs.arn),
        )

    # --- task definition -------------------------------------------------------------------------

    def _container(self, task_logs: aws.cloudwatch.LogGroup, image_uri: pulumi.Input[str]) -> dict[str, Any]:
        return {
            "name": CONTAINER_NAME,
            "image": image_uri,
            "essential": True,
            # Only stays up for the SSM agent; ends by itself if nobody stops it.
            "command": ["sleep", str(MAX_TASK_SECONDS)],
            # The sleep runs as nobody; ECS runs the exec agent as root whatever this says.
            "user": "65534:65534",
            "privileged": False,
            "readonlyRootFilesystem": True,
            "mountPoints": [{"sourceVolume": v, "containerPath": p, "readOnly": False} for v, p in AGENT_WRITABLE_PATHS.items()],
            "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
            "portMappings": [],
            "environment": [],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": task_logs.name, "awslogs-region": self._region, "awslogs-stream-prefix": CONTAINER_NAME},
            },
            "stopTimeout": 2,
        }

    def _task_definition(self, task_logs: aws.cloudwatch.LogGroup, execution_role: aws.iam.Role, task_role: aws.iam.Role,
                         image_uri: pulumi.Input[str], cache_rule: aws.ecr.PullThroughCacheRule) -> aws.ecs.TaskDefinition:
        return aws.ecs.TaskDefinition(
            f"{self._name}-task",
            family=f"{self._prefix}-db-access",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu="256",
            memory="512",
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            runtime_platform={"operating_system_family": "LINUX"},
            volumes=[{"name": v} for v in AGENT_WRITABLE_PATHS],
            container_definitions=pulumi.Output.json_dumps([self._container(task_logs, image_uri)]),
            # no tunnel may start a task before the cache can fill its repository
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cache_rule]),
        )

    # --- operators -------------------------------------------------------------------------------

    def _operator_access(self, key: aws.kms.Key, cluster: aws.ecs.Cluster, task_definition: aws.ecs.TaskDefinition,
                         roles: list[aws.iam.Role]) -> tuple[aws.ssm.Document, aws.iam.Policy]:
        """The port-forwarding document fixed to the database, and the operator policy (names from this stack)."""
        child, facts, prefix = pulumi.ResourceOptions(parent=self), aws_facts(self), self._prefix
        document = aws.ssm.Document(
            f"{self._name}-session-document",
            name=f"{prefix}-db-tunnel",
            document_type="Session",
            document_format="JSON",
            content=pulumi.Output.from_input(self._args.database.address).apply(lambda host: json.dumps(session_document(host, self._port, prefix))),
            opts=child,
        )
        policy = pulumi.Output.all(cluster.name, document.arn, key.arn, *[r.arn for r in roles]).apply(
            lambda v: json.dumps({"Version": "2012-10-17", "Statement": operator_statements(
                partition=facts.partition, region=facts.region, account=facts.account_id, cluster=v[0], family=f"{prefix}-db-access",
                document_arn=v[1], key_arn=v[2], role_arns=list(v[3:]))})
        )
        operator = aws.iam.Policy(
            f"{self._name}-operator-policy",
            name=f"{prefix}-db-operator",
            description=f"{prefix}: open a tunnel to the database (python -m bootstrap tunnel), nothing else",
            policy=policy,
            opts=child,
        )
        return document, operator

    # --- network ---------------------------------------------------------------------------------

    def _security_group(self) -> aws.ec2.SecurityGroup:
        """No ingress; out only to the database, the interface endpoints and S3's prefix list: no
        address range at all, so nothing leaves through the NAT (controls PGH.8)."""
        args, name = self._args, self._name
        sg = rules.security_group(f"{name}-sg", f"{self._prefix}-db-access",
                                  "Database access task: no ingress; out to the database, the VPC endpoints and S3 only", args.vpc_id, self)
        rules.egress(f"{name}-out-db", sg.id, self._port, "PostgreSQL to the database security group only", self,
                     destination_security_group_id=args.database.security_group_id)
        rules.egress(f"{name}-out-endpoints", sg.id, HTTPS_PORT, "HTTPS to the VPC interface endpoints (ssmmessages, kms, logs, ecr) only", self,
                     destination_security_group_id=args.endpoint_security_group_id)
        rules.egress(f"{name}-out-s3", sg.id, HTTPS_PORT, "HTTPS to S3 through the gateway endpoint (image layers) only", self,
                     prefix_list_id=args.s3_prefix_list_id)
        return sg

