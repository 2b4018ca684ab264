"""Composition root: read the typed settings once, build the components, export the contract."""

import pulumi
import pulumi_aws as aws

from components.app_database import AppDatabase, AppDatabaseArgs
from components.config import load_from_pulumi
from components.database import Database, DatabaseArgs
from components.network import Network, NetworkArgs
from components.registry import Registry, RegistryArgs
from components.service import Service, ServiceArgs

settings = load_from_pulumi()  # raises ConfigError before any resource exists

# One explicit AWS provider: the region and the default tags apply to every child resource.
aws_provider = aws.Provider(
    "aws",
    region=settings.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=dict(settings.tags)),
)
stack_opts = pulumi.ResourceOptions(providers={"aws": aws_provider})

network = Network(
    settings.name("network"),
    NetworkArgs(
        name=settings.prefix,
        cidr_block=str(settings.network.cidr),
        az_count=settings.network.az_count,
        subnet_prefix_length=settings.network.subnet_prefix_length,
        nat_strategy=settings.network.nat_strategy,
        flow_log_retention_days=settings.network.flow_log_retention_days,
        s3_gateway_endpoint=settings.network.s3_gateway_endpoint,
        interface_endpoints=settings.network.interface_endpoints,
    ),
    opts=stack_opts,
)

database = Database(
    settings.name("database"),
    DatabaseArgs(
        name=settings.prefix,
        vpc_id=network.vpc_id,
        subnet_ids=network.isolated_subnet_ids,
        settings=settings.database,
        production=settings.is_prod,
    ),
    opts=stack_opts,
)

registry = Registry(
    settings.name("registry"),
    RegistryArgs(
        name=settings.prefix,
        untagged_expiry_days=settings.registry.untagged_expiry_days,
        keep_tagged_count=settings.registry.keep_tagged_count,
        force_delete=settings.registry.force_delete,
    ),
    opts=stack_opts,
)

app_db = AppDatabase(
    settings.name("appdb"),
    AppDatabaseArgs(
        name=settings.prefix,
        settings=settings.app_database,
        master_username=settings.database.master_username,
        engine_version=settings.database.engine_version,
        host=database.address,
        port=database.port,
        kms_key_arn=database.kms_key_arn,
        secret_recovery_window_days=30 if settings.is_prod else 0,  # 0: destroy -> up reuses the names
        protect=settings.database.protect,
    ),
    opts=pulumi.ResourceOptions(providers={"aws": aws_provider}, depends_on=[database]),
)

service = Service(
    settings.name("service"),
    ServiceArgs(
        name=settings.prefix,
        settings=settings.service,
        vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
        repository_url=registry.repository_url,
        repository_arn=registry.repository_arn,
        db_host=database.address,
        db_port=database.port,
        db_name=app_db.database_name,
        db_username=app_db.app_username,
        db_password_secret_arn=app_db.login_secret_arns["app"],
        secrets_kms_key_arn=database.kms_key_arn,
        db_resource_id=database.resource_id,
        iam_auth=settings.app_database.iam_auth,
        container_insights="enhanced" if settings.is_prod else "enabled",
    ),
    opts=stack_opts,
)
database.allow_from("service", service.security_group_id, "PostgreSQL from the app tasks")

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
# The master credentials only as secrets (encrypted in the state, masked by `pulumi stack output`).
pulumi.export("dbMasterUsername", pulumi.Output.secret(database.master_username))
pulumi.export("dbMasterPassword", pulumi.Output.secret(database.master_password))
pulumi.export("appDbName", app_db.database_name)
pulumi.export("appDbEnabled", settings.app_database.enabled)
pulumi.export("appDbLoginSecretArns", app_db.login_secret_arns)
pulumi.export("repositoryUrl", registry.repository_url)
pulumi.export("albDnsName", service.alb_dns_name)
pulumi.export("url", service.url)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("httpsEnabled", service.https_enabled)
pulumi.export("albListeners", service.listener_summary)
