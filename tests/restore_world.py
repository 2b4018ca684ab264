"""The world `restore` runs in, for tests: the dev stack's RDS instance in moto (subnet group,
parameter group, KMS key, IAM auth, CA, monitoring, Performance Insights), its master secret in
moto's Secrets Manager, the stack outputs pointing at them, and a botocore Stubber for the one
call moto does not model (DescribeDBInstanceAutomatedBackups' RestoreWindow; shape from the RDS
API reference, DBInstanceAutomatedBackup and RestoreWindow).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.stub import Stubber

from config.load import load_settings
from config.stack_file import stack_config
from tests.tunnel_world import CLUSTER, SG, SUBNETS, TASKDEF_ARN

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SOURCE = "shop-dev-db"
NOW = dt.datetime(2026, 12, 4, 15, 30, 0, tzinfo=dt.UTC)
EARLIEST = NOW - dt.timedelta(days=7)
LATEST = NOW - dt.timedelta(minutes=4)
MASTER = "shop_master"
MASTER_PASSWORD = "master-Pw-for-restore-tests-1"
MONITORING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shop-dev-db-monitoring"
DRILL_TARGET = "shop-dev-db-drill-202612041530"
RESTORE_TARGET = "shop-dev-db-restore-202612041530"


def rds_address(identifier: str) -> str:
    """The endpoint moto gives an instance (the real one is <id>.<account hash>.<region>.rds.amazonaws.com)."""
    return f"{identifier}.aaaaaaaaaa.{REGION}.rds.amazonaws.com"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def settings(**overrides: str) -> Any:
    return load_settings(stack_config("dev", overrides), stack="dev", check_credentials=False)


@dataclass
class World:
    rds: Any
    secrets: Any
    kms_key: str
    db_sg: str
    outputs: dict[str, Any] = field(default_factory=dict)

    def instance(self, identifier: str) -> dict[str, Any] | None:
        try:
            return dict(self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0])
        except self.rds.exceptions.DBInstanceNotFoundFault:
            return None


def build(engine_version: str = "16.4") -> World:
    """Inside `mock_aws`: the dev stack's database as deploy leaves it."""
    ec2, rds, kms, sm = client("ec2"), client("rds"), client("kms"), client("secretsmanager")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"] for i, az in ((4, "a"), (5, "b"))]
    db_sg = ec2.create_security_group(GroupName="shop-dev-db", Description="database", VpcId=vpc)["GroupId"]
    key = kms.create_key(Description="shop-dev database")["KeyMetadata"]["Arn"]
    rds.create_db_subnet_group(DBSubnetGroupName="shop-dev-db-subnets", DBSubnetGroupDescription="isolated", SubnetIds=subnets)
    rds.create_db_parameter_group(DBParameterGroupName="shop-dev-db-params", DBParameterGroupFamily="postgres16", Description="TLS only")
    rds.create_db_instance(
        DBInstanceIdentifier=SOURCE, Engine="postgres", EngineVersion=engine_version, DBInstanceClass="db.t4g.micro",
        MasterUsername=MASTER, MasterUserPassword="state-password-long-gone", AllocatedStorage=20, MaxAllocatedStorage=50,
        StorageType="gp3", StorageEncrypted=True, KmsKeyId=key, DBSubnetGroupName="shop-dev-db-subnets", VpcSecurityGroupIds=[db_sg],
        DBParameterGroupName="shop-dev-db-params", CACertificateIdentifier="rds-ca-rsa2048-g1", EnableIAMDatabaseAuthentication=True,
        EnableCloudwatchLogsExports=["postgresql", "upgrade"], MonitoringInterval=60, MonitoringRoleArn=MONITORING_ROLE,
        EnablePerformanceInsights=True, PerformanceInsightsKMSKeyId=key, PerformanceInsightsRetentionPeriod=7,
        BackupRetentionPeriod=7, PreferredBackupWindow="03:00-03:30", MultiAZ=False, PubliclyAccessible=False, DeletionProtection=False,
        Tags=[{"Key": "Project", "Value": "pghome"}, {"Key": "Stack", "Value": "dev"}, {"Key": "Name", "Value": SOURCE}],
    )
    secret = {"engine": "postgres", "host": rds_address(SOURCE), "port": 5432, "username": MASTER, "password": MASTER_PASSWORD, "dbname": "postgres"}
    sm.create_secret(Name="shop-dev/db/master", SecretString=json.dumps(secret))
    world = World(rds, sm, key, db_sg)
    world.outputs = {
        "dbInstanceId": SOURCE, "dbSecurityGroupId": db_sg, "dbAddress": rds_address(SOURCE), "dbPort": 5432, "dbKmsKeyArn": key,
        "appDbEnabled": True, "clusterName": "shop-dev", "serviceName": "shop-dev-app",
        "dbAccessCluster": CLUSTER, "dbAccessTaskDefinitionArn": TASKDEF_ARN, "dbAccessSubnetIds": list(SUBNETS),
        "dbAccessSecurityGroupId": SG, "dbAccessContainerName": "access",
    }
    return world


def automated_backup(world: World, *, earliest: dt.datetime = EARLIEST, latest: dt.datetime = LATEST) -> dict[str, Any]:
    src = world.instance(SOURCE) or {}
    return {
        "DBInstanceArn": src.get("DBInstanceArn"), "DbiResourceId": src.get("DbiResourceId"), "Region": REGION,
        "DBInstanceIdentifier": SOURCE, "RestoreWindow": {"EarliestTime": earliest, "LatestTime": latest}, "AllocatedStorage": 20,
        "Status": "active", "Port": 5432, "Engine": "postgres", "EngineVersion": "16.4", "Encrypted": True, "KmsKeyId": world.kms_key,
        "IAMDatabaseAuthenticationEnabled": True, "BackupRetentionPeriod": 7, "StorageType": "gp3",
    }


def backups_stub(world: World, *, calls: int = 1, **window: dt.datetime) -> tuple[Any, Stubber]:
    """A client answering DescribeDBInstanceAutomatedBackups `calls` times with the source's window."""
    c = client("rds")
    stub = Stubber(c)
    for _ in range(calls):
        stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [automated_backup(world, **window)]},
                          {"DBInstanceIdentifier": SOURCE})
    stub.activate()
    return c, stub


class Faulty:
    """The RDS client with one call made to fail (or interrupt): the seam where cleanup is proven."""

    def __init__(self, inner: Any, method: str, error: BaseException | Callable[[], BaseException], *, after: int = 0, times: int = 1_000_000):
        self.inner, self.method, self.error, self.after, self.times = inner, method, error, after, times
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def call(**kw: Any) -> Any:
            self.calls.append(name)
            if self.after < len(self.calls) <= self.after + self.times:
                raise self.error() if callable(self.error) else self.error
            return attr(**kw)

        return call
