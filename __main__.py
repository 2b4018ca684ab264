"""Composition root: read the typed settings once, build the components, export the contract."""

import pulumi
import pulumi_aws as aws

from components.config import load_from_pulumi
from components.database import Database, DatabaseArgs
from components.network import Network, NetworkArgs

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
