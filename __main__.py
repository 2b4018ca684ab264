"""Composition root: read the typed settings once, build the components, export the contract."""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.app_database import AppDatabase, AppDatabaseArgs
from components.database import Database, DatabaseArgs
from components.db_access import DbAccess, DbAccessArgs
from components.migration import MigrationTask, MigrationTaskArgs, release_ledger
from components.monitoring import AlarmTopic, AlarmTopicArgs, DeploymentAlarms, Monitoring, MonitoringArgs, WatchedService
from components.network import Network, NetworkArgs
from components.registry import Registry, RegistryArgs
from components.rotation_function import RedeployTarget, RotationFunction, RotationFunctionArgs
from components.service import Service, ServiceArgs
from config.load import load_from_pulumi
from config.rotation_archive import archive_path

# Built by `python -m bootstrap build-rotation`; its content hash drives the function's updates.
ROTATION_ARCHIVE = archive_path(Path(__file__).resolve().parent)

settings = load_from_pulumi()  # raises ConfigError before any resource exists

# One explicit AWS provider: the region and the default tags apply to every child resource.
aws_provider = aws.Provider(
    "aws",
    region=settings.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=dict(settings.tags)),
)
stack_opts = pulumi.ResourceOptions(providers={"aws": aws_provider})

network = Network(settings.name("network"), NetworkArgs(settings=settings.network), opts=stack_opts)
database = Database(
    settings.name("database"),
    DatabaseArgs(vpc_id=network.vpc_id, subnet_ids=network.isolated_subnet_ids, settings=settings.database),
    opts=stack_opts,
)
registry = Registry(settings.name("registry"), RegistryArgs(settings=settings.registry), opts=stack_opts)
# Before the service: its deployment alarms notify this topic (components/monitoring.py).
alarm_topic = AlarmTopic(settings.name("alarms"), AlarmTopicArgs(settings=settings.monitoring), opts=stack_opts)
app_db = AppDatabase(
    settings.name("appdb"),
    AppDatabaseArgs(settings=settings.app_database, database=database),
    opts=pulumi.ResourceOptions(providers={"aws": aws_provider}, depends_on=[database]),
)
service = Service(
    settings.name("service"),
    ServiceArgs(
        settings=settings.service,
        vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
        repository_url=registry.repository_url,
        repository_arn=registry.repository_arn,
        database=app_db.connection("app"),
        deployment_alarms=DeploymentAlarms(settings=settings.monitoring, topic_arn=alarm_topic.topic_arn),
    ),
    opts=stack_opts,
)
database.allow_from("service", service.security_group_id, "PostgreSQL from the app tasks")

# What `release` needs (bootstrap/ops/): the history and migration lock every machine reads, and
# with a migration command the one-off task that runs it as the migrator, in the service's network.
ledger = release_ledger(settings.name("releases"), settings.prefix, deletion_protection=settings.is_prod, opts=stack_opts)
migration = None
if settings.service.migration_command:
    migration = MigrationTask(
        settings.name("migration"),
        MigrationTaskArgs(
            settings=settings.service,
            migrator=app_db.connection("migrator"),
            service=service,
            repository_arn=registry.repository_arn,
        ),
        opts=stack_opts,
    )

# Scheduled rotation from inside the VPC (archive: `python -m bootstrap build-rotation`). IAM-auth
# login roles have no password to rotate. After the service: the function redeploys it after each
# app rotation (the service reads the login secrets, the function only names the service: no cycle).
password_logins = settings.app_database.password_logins()
rotation = RotationFunction(
    settings.name("rotation"),
    RotationFunctionArgs(
        settings=settings.database,
        database=database,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        archive_path=ROTATION_ARCHIVE,
        login_secret_arns={"migrator": app_db.login_secret_arns["migrator"]} if "migrator" in password_logins else {},
        alternating_secret_arns={"app": app_db.login_secret_arns["app"]} if "app" in password_logins else {},
        secret_versions=app_db.login_secret_versions,
        login_roles=app_db.login_roles,
        service=RedeployTarget(service.cluster_name, service.service_name),
    ),
    opts=stack_opts,
)
database.allow_from("rotation", rotation.security_group_id, "PostgreSQL from the rotation function")
# The master secret: readable by the rotation function, the deploy role and the break-glass role only.
database.restrict_master_secret(rotation.role_arn)

monitoring = Monitoring(
    settings.name("monitoring"),
    MonitoringArgs(
        settings=settings.monitoring,
        database=settings.database,
        topic_arn=alarm_topic.topic_arn,
        service=WatchedService(
            cluster_name=service.cluster_name,
            service_name=service.service_name,
            service_arn=service.service_arn,
            alb_arn_suffix=service.alb_arn_suffix,
            target_group_arn_suffixes=service.target_group_arn_suffixes,
            web_acl_name=service.web_acl_name,
        ),
        rotation_function_name=rotation.function_name,
        rotated_secret_arns=rotation.secret_arns,
    ),
    opts=stack_opts,
)

# The on-demand path deploy/rotate/audit tunnel through from outside the VPC (bootstrap/access/tunnel.py).
db_access = None
if settings.database.access:
    db_access = DbAccess(
        settings.name("dbaccess"),
        DbAccessArgs(settings=settings.database, vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids, database=database,
                     endpoint_security_group_id=network.endpoint_security_group_id, s3_prefix_list_id=network.s3_prefix_list_id),
        opts=stack_opts,
    )

# The stack's contract with tools and people. No credential is ever exported, not even as a
# secret: the master password lives in Secrets Manager (dbMasterSecretArn) and is rotated.
pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("isolatedSubnetIds", network.isolated_subnet_ids)
pulumi.export("availabilityZones", network.availability_zones)
pulumi.export("dbAddress", database.address)
pulumi.export("dbPort", database.port)
pulumi.export("dbInstanceId", database.instance_id)
pulumi.export("dbResourceId", database.resource_id)
pulumi.export("dbSecurityGroupId", database.security_group_id)
pulumi.export("dbMasterSecretArn", database.master_secret_arn)
pulumi.export("dbKmsKeyArn", database.kms_key_arn)
pulumi.export("dbMasterUsername", pulumi.Output.secret(database.master_username))
pulumi.export("appDbName", app_db.database_name)
pulumi.export("appDbEnabled", settings.app_database.enabled)
# The tag this stack runs, read back by deploy/up when the stack file sets none (bootstrap/deploy/image_tag.py):
# a release not committed to the stack file is not undone. Plain: the task definition holds it too.
pulumi.export("imageTag", settings.service.image_tag)
pulumi.export("appDbLoginSecretArns", app_db.login_secret_arns)
pulumi.export("rotationFunctionArn", rotation.function_arn)
pulumi.export("repositoryUrl", registry.repository_url)
pulumi.export("albDnsName", service.alb_dns_name)
pulumi.export("url", service.url)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("httpsEnabled", service.https_enabled)
pulumi.export("albListeners", service.listener_summary)
pulumi.export("serviceSecurityGroupId", service.security_group_id)
pulumi.export("appTaskDefinitionArn", service.task_definition_arn)
pulumi.export("appLogGroupName", service.log_group_name)
pulumi.export("releaseTableName", ledger.name)
pulumi.export("migrationTaskDefinitionArn", migration.task_definition_arn if migration else "")
# Read by `status` to list this stack's alarms in ALARM (every alarm is named '<prefix>-...').
pulumi.export("alarmTopicArn", alarm_topic.topic_arn)
pulumi.export("alarmNamePrefix", f"{settings.prefix}-")
pulumi.export("alarmNames", monitoring.alarm_names)
pulumi.export("dashboardName", monitoring.dashboard_name)
if db_access is not None:  # read by `python -m bootstrap tunnel` (bootstrap/access/tunnel.py OUTPUT_KEYS)
    pulumi.export("dbAccessCluster", db_access.cluster_name)
    pulumi.export("dbAccessTaskDefinitionArn", db_access.task_definition_arn)
    pulumi.export("dbAccessSubnetIds", db_access.subnet_ids)
    pulumi.export("dbAccessSecurityGroupId", db_access.security_group_id)
    pulumi.export("dbAccessContainerName", db_access.container_name)
    pulumi.export("dbAccessSessionDocument", db_access.session_document)  # the only session document operators may use
    pulumi.export("dbAccessOperatorPolicyArn", db_access.operator_policy_arn)  # attach to the operators' role or group
