"""The Secrets Manager rotation function of a stack, inside the VPC, and the schedule on every DB secret.

What it builds (all children of the component):
  * a security group: no ingress; egress to the database's security group on its port and to
    HTTPS (Secrets Manager and RDS APIs, through the interface endpoints or the NAT). The database
    admits it through `Database.allow_from` (called by the composition root);
  * a role with least privilege: read/write only these secrets, the key only through Secrets
    Manager (`kms:ViaService`), no RDS rights (the master rotates in SQL as itself), `ecs:UpdateService` on
    the app's service only (a new deployment after each app rotation, so a scheduled rotation
    also reaches the running tasks), ENIs and logs through the AWS-managed
    `AWSLambdaVPCAccessExecutionRole`;
  * a KMS-encrypted log group with a retention (the function logs one sentence per failure);
  * the function (archive from `python -m bootstrap build-rotation`, by path and content hash) in
    the private subnets;
  * one invoke permission per secret for `secretsmanager.amazonaws.com`, bound to this account
    and that secret;
  * an `aws.secretsmanager.SecretRotation` per secret with the configured schedule, rotating
    immediately, so the first rotation happens right after provisioning, from inside the VPC.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, kms
from components import sg as rules
from components.awsinfo import aws_facts
from components.database import Database
from config import naming
from config.rotation_archive import ARCHITECTURE
from config.settings import DatabaseSettings

RUNTIME = "python3.12"
HANDLER = "rotation_function.handler.lambda_handler"
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
CA_BUNDLE_IN_ARCHIVE = "/var/task/rds-ca.pem"
# Long enough for RDS to apply a master password (setSecret waits, testSecret retries), well
# under Secrets Manager's per-step limit; a step that runs out is retried with the same token.
TIMEOUT_S = 600


def archive_hash(path: Path) -> str | None:
    """base64 SHA-256 of the archive (Lambda's source_code_hash), None if it is not built yet."""
    if not path.is_file():
        return None
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode("ascii")


def ecs_service_arn(partition: str, region: str, account_id: str, cluster_name: pulumi.Input[str], service_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """A service's ARN in the long format (`service/<cluster>/<service>`), which ECS uses for every
    service created since 2021; IAM evaluates UpdateService against it."""
    return pulumi.Output.concat(f"arn:{partition}:ecs:{region}:{account_id}:service/", cluster_name, "/", service_name)


@dataclass(frozen=True)
class RedeployTarget:
    """The ECS service whose tasks read the alternating login secret at start (`Service`'s outputs)."""

    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]


@dataclass
class RotationFunctionArgs:
    """Inputs: the database it rotates for, the login secrets, where it runs, its settings section."""

    settings: DatabaseSettings
    """Names (prefix), the DB port, the schedule (secret_rotation_days) and the log retention."""
    database: Database
    """The RDS component: its security group admits the function; instance, key and master secret."""
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets (a route to the Secrets Manager and RDS APIs: endpoints or NAT)."""
    archive_path: Path
    """The archive `python -m bootstrap build-rotation` writes."""
    login_secret_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Login secrets rotated with a single user, by key ('migrator')."""
    alternating_secret_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Login secrets rotated with alternating users ('app': `<role>` and `<role>_clone`)."""
    secret_versions: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """The initial SecretVersion of each login secret, by key (`AppDatabase.login_secret_versions`): a
    rotation of a secret with no AWSCURRENT yet fails. The master's comes from `database`."""
    login_roles: Sequence[pulumi.Resource] | None = None
    """The app database's roles and grants (`AppDatabase.login_roles`); None while it is off (phase
    1): the login secrets then get no rotation yet, since an immediate one would fail on a missing role."""
    architecture: str = ARCHITECTURE
    """Lambda architecture; the archive is built for the same one (config/rotation_archive.py)."""
    service: RedeployTarget | None = None
    """Forced to a new deployment in finishSecret of an alternating secret (None: no redeploy)."""


class RotationFunction(pulumi.ComponentResource):
    function_arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    secret_arns: list[pulumi.Input[str]]
    """The secrets it rotates: the master, then the logins (what a rotation-failure rule watches)."""

    def __init__(self, name: str, args: RotationFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:rotation:RotationFunction", name, None, opts)
        self._name, self._args = name, args
        self._facts = aws_facts(self)
        self._function_name = naming.rotation_function(args.settings.prefix)
        self._secrets: dict[str, pulumi.Input[str]] = {"master": args.database.master_secret_arn, **args.login_secret_arns, **args.alternating_secret_arns}
        # Only the alternating (app) login needs its tasks replaced after a rotation.
        self._redeploy = args.service if args.alternating_secret_arns else None

        sg = self._security_group()
        role, grants = self._role()
        log_group = self._log_group()
        function = self._function(sg, role, log_group, grants)
        self.secret_arns = self._rotations(function)

        self.function_arn = function.arn
        self.function_name = function.name
        self.security_group_id = sg.id
        self.role_arn = role.arn
        self.register_outputs({"function_arn": self.function_arn, "security_group_id": self.security_group_id})

    # --- network ---------------------------------------------------------------------------
    def _security_group(self) -> aws.ec2.SecurityGroup:
        args, name = self._args, self._name
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            name_prefix=naming.sg_prefix(self._function_name),  # generated names (config/naming.py)
            description=f"{args.settings.prefix} rotation function: out to the database and HTTPS APIs only",
            vpc_id=args.vpc_id,
            tags={"Name": self._function_name},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-db",
            security_group_id=sg.id,
            description="PostgreSQL to the database security group",
            ip_protocol="tcp",
            from_port=args.settings.port,
            to_port=args.settings.port,
            referenced_security_group_id=args.database.security_group_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        rules.egress(f"{name}-to-https", sg.id, 443, "HTTPS to the Secrets Manager, RDS and ECS APIs (endpoints or NAT)", self, cidr_ipv4="0.0.0.0/0")
        return sg

    # --- permissions -----------------------------------------------------------------------
    def _role(self) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """The role and what grants it (the managed VPC-access attachment, the inline policy): the
        function waits for both, since an immediate rotation may invoke it as soon as it exists."""
        args, name, facts = self._args, self._name, self._facts
        invoke = pulumi.InvokeOptions(parent=self)
        assume = aws.iam.get_policy_document_output(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    actions=["sts:AssumeRole"],
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=["lambda.amazonaws.com"])],
                    conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(test="StringEquals", variable="aws:SourceAccount", values=[facts.account_id])],
                )
            ],
            opts=invoke,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name_prefix=naming.role_prefix(args.settings.prefix, "db-rotation"),
            description=f"{args.settings.prefix}: rotates the database secrets (these secrets, this instance only)",
            assume_role_policy=assume.json,
            opts=pulumi.ResourceOptions(parent=self),
        )
        vpc_access = aws.iam.RolePolicyAttachment(
            f"{name}-vpc-access",
            role=role.name,
            policy_arn=f"arn:{facts.partition}:iam::aws:policy/{VPC_ACCESS_POLICY}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret_arns: list[Any] = list(self._secrets.values())  # Outputs; the SDK annotates plain str
        via_secrets_manager = aws.iam.GetPolicyDocumentStatementConditionArgs(
            test="StringEquals", variable="kms:ViaService", values=[f"secretsmanager.{facts.region}.amazonaws.com"])
        policy = iam.inline_policy(f"{name}-policy", "rotation", role, [
            iam.statement(["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                           "secretsmanager:UpdateSecretVersionStage"], secret_arns, "RotateTheseSecrets"),
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [args.database.kms_key_arn], "SecretsKeyThroughSecretsManager",
                          conditions=[via_secrets_manager]),
            *self._redeploy_statement(),
        ], self)
        return role, [vpc_access, policy]

    def _redeploy_statement(self) -> list[aws.iam.GetPolicyDocumentStatementArgs]:
        if self._redeploy is None:
            return []
        facts, target = self._facts, self._redeploy
        service_arn: Any = ecs_service_arn(facts.partition, facts.region, facts.account_id, target.cluster_name, target.service_name)
        return [iam.statement(["ecs:UpdateService", "ecs:DescribeServices"], [service_arn], "RedeployTheAppService")]

    def _log_group(self) -> aws.cloudwatch.LogGroup:
        return kms.encrypted_log_group(f"{self._name}-logs", name=naming.rotation_log_group(self._args.settings.prefix),
                                       retention_days=self._args.settings.log_retention_days, key_arn=self._args.database.kms_key_arn, parent=self,
                                       keep=self._args.settings.keep_on_destroy)

    # --- the function ----------------------------------------------------------------------
    def _function(self, sg: aws.ec2.SecurityGroup, role: aws.iam.Role, log_group: aws.cloudwatch.LogGroup,
                  grants: list[pulumi.Resource]) -> aws.lambda_.Function:
        args = self._args
        code_hash = archive_hash(args.archive_path)
        if code_hash is None:
            shown = args.archive_path.relative_to(Path.cwd()) if args.archive_path.is_relative_to(Path.cwd()) else args.archive_path
            pulumi.log.warn(f"the rotation function's archive {shown} is not built: run `python -m bootstrap build-rotation` before `up`", self)
        variables: dict[str, pulumi.Input[str]] = {
            "PGHOME_MASTER_SECRET_ARN": args.database.master_secret_arn,
            "PGHOME_DB_INSTANCE_ID": args.database.instance_id,
            "PGHOME_LOGIN_SECRET_ARNS": pulumi.Output.all(*args.login_secret_arns.values()).apply(lambda a: ",".join(sorted(a))),
            "PGHOME_ALTERNATING_SECRET_ARNS": pulumi.Output.all(*args.alternating_secret_arns.values()).apply(lambda a: ",".join(sorted(a))),
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": CA_BUNDLE_IN_ARCHIVE,
        }
        if self._redeploy is not None:
            variables.update(PGHOME_ECS_CLUSTER=self._redeploy.cluster_name, PGHOME_ECS_SERVICE=self._redeploy.service_name)
        return aws.lambda_.Function(
            f"{self._name}-function",
            name=self._function_name,
            description=f"{args.settings.prefix}: Secrets Manager rotation of the database secrets (master and login roles)",
            runtime=RUNTIME,
            architectures=[args.architecture],
            handler=HANDLER,
            code=pulumi.FileArchive(str(args.archive_path)),
            source_code_hash=code_hash,
            role=role.arn,
            timeout=TIMEOUT_S,
            memory_size=256,
            # No reserved concurrency: Lambda refuses a reservation that leaves the account under 100
            # unreserved executions, and one slot throttles the second of two concurrent rotations.
            # Steps that change passwords serialise on a database lock instead (dbcore/rotation_lock.py).
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=args.subnet_ids, security_group_ids=[sg.id]),
            # Only ARNs and names: Lambda's own key encrypts them at rest; a CMK here would add a key
            # grant to keep working for nothing secret.
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=variables),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="PassThrough"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, *grants]),
        )

    def _initial_version(self, key: str) -> list[pulumi.Resource]:
        version = self._args.database.master_secret_version if key == "master" else self._args.secret_versions.get(key)
        return [version] if version is not None else []

    def _rotations(self, function: aws.lambda_.Function) -> list[pulumi.Input[str]]:
        """A schedule per secret; returns the ARNs of the secrets rotated."""
        args, name, facts = self._args, self._name, self._facts
        master_rotation: list[pulumi.Resource] = []
        rotated: list[pulumi.Input[str]] = []
        for key, arn in self._secrets.items():  # "master" first
            if key != "master" and args.login_roles is None:
                continue
            rotated.append(arn)
            permission = aws.lambda_.Permission(
                f"{name}-invoke-{key}",
                action="lambda:InvokeFunction",
                function=function.name,
                principal="secretsmanager.amazonaws.com",
                source_account=facts.account_id,
                source_arn=arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            rotation = aws.secretsmanager.SecretRotation(
                f"{name}-rotation-{key}",
                secret_id=arn,
                rotation_lambda_arn=function.arn,
                rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(automatically_after_days=args.settings.secret_rotation_days),
                rotate_immediately=True,
                # after the secret's first value (the rotation reads AWSCURRENT); login secrets also after
                # the master's first rotation (their setSecret connects as the master) and their roles
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, *self._initial_version(key),
                                                                     *([*master_rotation, *(args.login_roles or [])] if key != "master" else [])]),
            )
            if key == "master":
                master_rotation.append(rotation)
        return rotated
