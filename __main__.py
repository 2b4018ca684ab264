"""Composition root: read the typed settings once, build the components, export the contract."""

import pulumi
import pulumi_aws as aws

from components.config import load_from_pulumi
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

# TODO(integration): from database/app_db -- placeholders until Database and AppDatabase are wired in.
_identity = aws.get_caller_identity()
_placeholder_secret_arn = f"arn:aws:secretsmanager:{settings.region}:{_identity.account_id}:secret:{settings.prefix}/db/app-AbCdEf"
_placeholder_kms_arn = f"arn:aws:kms:{settings.region}:{_identity.account_id}:key/00000000-0000-4000-8000-000000000000"

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
        db_host="db.invalid",  # TODO(integration): from database/app_db -> database.address
        db_port=settings.database.port,  # TODO(integration): from database/app_db -> database.port
        db_name=settings.app_database.name,  # TODO(integration): from database/app_db -> app_db.database_name
        db_username=f"{settings.app_database.role_prefix}_app",  # TODO(integration): from database/app_db -> app_db.app_username
        db_password_secret_arn=_placeholder_secret_arn,  # TODO(integration): from database/app_db -> app_db.login_secret_arns["app"]
        secrets_kms_key_arn=_placeholder_kms_arn,  # TODO(integration): from database/app_db -> database.kms_key_arn
        db_resource_id="db-PLACEHOLDER",  # TODO(integration): from database/app_db -> database.resource_id
        iam_auth=settings.app_database.iam_auth,
        container_insights="enhanced" if settings.is_prod else "enabled",
    ),
    opts=stack_opts,
)
# TODO(integration): database.allow_from("service", service.security_group_id, "App tasks")

pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("isolatedSubnetIds", network.isolated_subnet_ids)
pulumi.export("availabilityZones", network.availability_zones)
pulumi.export("repositoryUrl", registry.repository_url)
pulumi.export("albDnsName", service.alb_dns_name)
pulumi.export("url", service.url)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("httpsEnabled", service.https_enabled)
pulumi.export("albListeners", service.listener_summary)
