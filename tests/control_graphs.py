"""Synthetic recorded graphs for the security-control tests.

`secure_stack()` is a small but complete stack (network, database, registry, service, secrets,
logs, bucket) built from `bootstrap.plan.mockgraph.Resource` records with the input names the engine
records (camelCase). It passes every control; tests mutate a copy to prove each control can fail.
References are made both ways the checker must follow: by property dependency (URN) and by value
(id, ARN or physical name).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from bootstrap.plan.mockgraph import Graph, Resource

ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/11111111-0000-4000-8000-000000000000"
SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:shop-prod/db/master-AbCdEf"
ALB_ARN = f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:loadbalancer/app/shop-prod/0123456789abcdef"
WEB_ACL_ARN = f"arn:aws:wafv2:eu-west-1:{ACCOUNT}:regional/webacl/shop-prod-web/00000000-0000-4000-8000-000000000000"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:t::pghome::{type_}::{name}"


ACCESS = urn("pghome:dbaccess:DbAccess", "access")  # the parent of the access path's resources


def res(type_: str, name: str, inputs: dict[str, Any], *, id_: str | None = None, arn: str = "", deps: dict[str, list[str]] | None = None, custom: bool = True,
        keep: bool = False, parent: str = "") -> Resource:
    return Resource(
        urn=urn(type_, name),
        type=type_,
        name=name,
        inputs=inputs,
        secret_paths=frozenset(),
        parent=parent,
        dependencies=[u for us in (deps or {}).values() for u in us],
        property_dependencies=deps or {},
        custom=custom,
        provider="",
        protect=keep,
        ignore_changes=[],
        additional_secret_outputs=[],
        replace_on_changes=[],
        delete_before_replace=False,
        retain_on_delete=keep,
        id=id_ if id_ is not None else f"{name}-id",
        state={"arn": arn} if arn else {},
    )


def graph(resources: list[Resource], stack: str = "t") -> Graph:
    return Graph(stack=stack, project="pghome", config={}, resources=resources, invokes=[], outputs={}, secret_outputs=frozenset())


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def container(**overrides: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "app",
        "image": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/shop-prod:1.0.0",
        "essential": True,
        "user": "1000:1000",
        "privileged": False,
        "readonlyRootFilesystem": True,
        "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
        "environment": [
            {"name": "PGHOST", "value": "shop-prod-db.abc.eu-west-1.rds.amazonaws.com"},
            {"name": "PGSSLMODE", "value": "verify-full"},
            {"name": "DB_SECRET_ARN", "value": SECRET_ARN},
        ],
        "secrets": [{"name": "PGPASSWORD", "valueFrom": f"{SECRET_ARN}:password::"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/shop-prod", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "app"}},
    }
    c.update(overrides)
    return c


def secure_stack() -> Graph:
    vpc = res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.30.0.0/16"}, id_="vpc-1")
    subnets = {
        tier: res("aws:ec2/subnet:Subnet", f"{tier}-a", {"vpcId": "vpc-1", "cidrBlock": cidr, "mapPublicIpOnLaunch": False}, id_=f"subnet-{tier}")
        for tier, cidr in (("public", "10.30.0.0/20"), ("private", "10.30.64.0/20"), ("isolated", "10.30.128.0/20"), ("isolated2", "10.30.144.0/20"))
    }
    tables = {t: res("aws:ec2/routeTable:RouteTable", f"{t}-rt", {"vpcId": "vpc-1"}, id_=f"rtb-{t}") for t in ("public", "private", "isolated")}
    db_sg = res("aws:ec2/securityGroup:SecurityGroup", "db-sg", {"vpcId": "vpc-1", "name": "shop-prod-db"}, id_="sg-db")
    param_group = res("aws:rds/parameterGroup:ParameterGroup", "db-params", {"name": "shop-prod-pg16", "family": "postgres16",
                      "parameters": [{"name": "rds.force_ssl", "value": "1"}, {"name": "log_min_duration_statement", "value": "500"}]})
    subnet_group = res("aws:rds/subnetGroup:SubnetGroup", "db-subnets", {"name": "shop-prod-db", "subnetIds": ["subnet-isolated", "subnet-isolated2"]})
    bucket = res("aws:s3/bucket:Bucket", "alb-logs", {"bucket": "shop-prod-alb-logs"}, id_="shop-prod-alb-logs", arn="arn:aws:s3:::shop-prod-alb-logs")
    alb = res("aws:lb/loadBalancer:LoadBalancer", "alb", {
        "name": "shop-prod", "loadBalancerType": "application", "internal": False, "dropInvalidHeaderFields": True,
        "accessLogs": {"bucket": "shop-prod-alb-logs", "enabled": True, "prefix": "alb"}, "enableDeletionProtection": True, "desyncMitigationMode": "defensive",
    }, arn=ALB_ARN)
    repo = res("aws:ecr/repository:Repository", "repo", {
        "name": "shop-prod", "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY_ARN}],
    })
    visibility = {"cloudwatchMetricsEnabled": True, "metricName": "m", "sampledRequestsEnabled": True}
    web_acl = res("aws:wafv2/webAcl:WebAcl", "web-acl", {"name": "shop-prod-web", "scope": "REGIONAL", "defaultAction": {"allow": {}},
                  "visibilityConfig": visibility, "rules": [{"name": "common", "priority": 0, "overrideAction": {"none": {}}, "visibilityConfig": visibility,
                  "statement": {"managedRuleGroupStatement": {"vendorName": "AWS", "name": "AWSManagedRulesCommonRuleSet"}}}]}, arn=WEB_ACL_ARN)
    secret = res("aws:secretsmanager/secret:Secret", "db-master-secret", {"name": "shop-prod/db/master", "kmsKeyId": KEY_ARN}, arn=SECRET_ARN)
    rotation = res("aws:secretsmanager/secretRotation:SecretRotation", "db-master-rotation", {
        "secretId": SECRET_ARN, "rotationLambdaArn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:shop-prod-db-rotation",
        "rotationRules": {"automaticallyAfterDays": 30}, "rotateImmediately": True,
    })
    resources = [
        # the stack's tier, as components/config.py tags it (controls/readers.py environment)
        res("pulumi:providers:aws", "aws", {"region": "eu-west-1", "defaultTags": json.dumps({"tags": {"Stack": "prod", "Environment": "prod"}})}),
        res("pulumi:providers:postgresql", "pg", {"host": "shop-prod-db.x.eu-west-1.rds.amazonaws.com", "sslmode": "verify-full",
            "sslrootcert": "certs/rds-global-bundle.pem", "superuser": "false"}),
        res("postgresql:index/database:Database", "app-db", {"name": "shop"}, keep=True),
        vpc,
        res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "default-sg", {"vpcId": "vpc-1", "ingress": [], "egress": []}),
        res("aws:ec2/flowLog:FlowLog", "flow-log", {"vpcId": "", "trafficType": "ALL", "logDestinationType": "cloud-watch-logs"}, deps={"vpcId": [vpc.urn]}),
        res("aws:ec2/internetGateway:InternetGateway", "igw", {"vpcId": "vpc-1"}, id_="igw-1"),
        res("aws:ec2/natGateway:NatGateway", "nat", {"subnetId": "subnet-public"}, id_="nat-1"),
        *subnets.values(),
        *tables.values(),
        res("aws:ec2/route:Route", "public-default", {"routeTableId": "rtb-public", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}),
        res("aws:ec2/route:Route", "private-default", {"routeTableId": "rtb-private", "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"}),
        res("aws:ec2/routeTableAssociation:RouteTableAssociation", "assoc-public", {"subnetId": "subnet-public", "routeTableId": "rtb-public"}),
        res("aws:ec2/routeTableAssociation:RouteTableAssociation", "assoc-private", {"subnetId": "subnet-private", "routeTableId": "rtb-private"}),
        res("aws:ec2/routeTableAssociation:RouteTableAssociation", "assoc-isolated", {"subnetId": "subnet-isolated", "routeTableId": "rtb-isolated"}),
        # by dependency only (ids unknown at preview): the checker must follow the URNs
        res("aws:ec2/routeTableAssociation:RouteTableAssociation", "assoc-isolated2", {"subnetId": "", "routeTableId": ""},
            deps={"subnetId": [subnets["isolated2"].urn], "routeTableId": [tables["isolated"].urn]}),
        res("aws:kms/key:Key", "db-key", {"enableKeyRotation": True, "customerMasterKeySpec": "SYMMETRIC_DEFAULT", "policy": doc(
            {"Sid": "AccountAdministration", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"})},
            arn=KEY_ARN, keep=True),
        res("aws:ec2/securityGroup:SecurityGroup", "alb-sg", {"vpcId": "vpc-1", "name": "shop-prod-alb", "ingress": [
            {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "fromPort": 80, "toPort": 80, "cidrBlocks": ["0.0.0.0/0"], "ipv6CidrBlocks": ["::/0"]},
        ]}, id_="sg-alb"),
        res("aws:ec2/securityGroup:SecurityGroup", "service-sg", {"vpcId": "vpc-1", "name": "shop-prod-service"}, id_="sg-service"),
        db_sg,
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "service-from-alb",
            {"securityGroupId": "sg-service", "referencedSecurityGroupId": "sg-alb", "ipProtocol": "tcp", "fromPort": 8000, "toPort": 8000}),
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "db-from-service",
            {"securityGroupId": "", "referencedSecurityGroupId": "sg-service", "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432},
            deps={"securityGroupId": [db_sg.urn]}),
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "db-from-vpn",
            {"securityGroupId": "sg-db", "cidrIpv4": "10.99.0.0/16", "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432}),
        param_group,
        subnet_group,
        res("aws:rds/instance:Instance", "db", {
            "identifier": "shop-prod-db", "engine": "postgres", "engineVersion": "16.4", "port": 5432,
            "storageEncrypted": True, "kmsKeyId": KEY_ARN, "publiclyAccessible": False, "multiAz": True,
            "monitoringInterval": 30, "monitoringRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-prod-rds-monitoring",
            "deletionProtection": True, "enabledCloudwatchLogsExports": ["postgresql", "upgrade"], "iamDatabaseAuthenticationEnabled": True,
            "backupRetentionPeriod": 30, "autoMinorVersionUpgrade": True, "copyTagsToSnapshot": True, "username": "shop_master",
            "parameterGroupName": "", "dbSubnetGroupName": "shop-prod-db", "vpcSecurityGroupIds": ["sg-db"],
        }, id_="shop-prod-db", deps={"parameterGroupName": [param_group.urn]}, keep=True),
        secret,
        rotation,
        res("aws:cloudwatch/logGroup:LogGroup", "app-logs", {"name": "/ecs/shop-prod", "retentionInDays": 365, "kmsKeyId": KEY_ARN}, keep=True),
        res("aws:ecs/cluster:Cluster", "cluster", {"name": "shop-prod", "settings": [{"name": "containerInsights", "value": "enabled"}]}),
        # the database access path: ECS Exec sessions under a CMK, logged to an encrypted group
        res("aws:cloudwatch/logGroup:LogGroup", "exec-logs", {"name": "/ecs/shop-prod/db-access/exec", "retentionInDays": 365, "kmsKeyId": KEY_ARN}, keep=True),
        res("aws:ecs/cluster:Cluster", "access-cluster", {"name": "shop-prod-db-access", "settings": [{"name": "containerInsights", "value": "enabled"}],
            "configuration": {"executeCommandConfiguration": {"kmsKeyId": KEY_ARN, "logging": "OVERRIDE", "logConfiguration": {
                "cloudWatchLogGroupName": "/ecs/shop-prod/db-access/exec", "cloudWatchEncryptionEnabled": True}}}}),
        # ... whose task reaches AWS only through the VPC endpoints (issue 28 item 7)
        res("aws:ec2/securityGroup:SecurityGroup", "access-sg", {"vpcId": "vpc-1", "name": "shop-prod-db-access"}, id_="sg-access", parent=ACCESS),
        res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "access-out-endpoints", {"securityGroupId": "sg-access", "ipProtocol": "tcp",
            "fromPort": 443, "toPort": 443, "referencedSecurityGroupId": "sg-endpoints"}, parent=ACCESS),
        res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "access-out-s3", {"securityGroupId": "sg-access", "ipProtocol": "tcp",
            "fromPort": 443, "toPort": 443, "prefixListId": "pl-6da54004"}, parent=ACCESS),
        res("aws:ecs/taskDefinition:TaskDefinition", "task", {"family": "shop-prod", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "1024", "memory": "2048", "containerDefinitions": json.dumps([container()])}),
        res("aws:ecs/service:Service", "service", {"name": "shop-prod", "capacityProviderStrategies": [{"capacityProvider": "FARGATE", "weight": 1}],
            "platformVersion": "LATEST", "networkConfiguration": {"assignPublicIp": False, "subnets": ["subnet-private"], "securityGroups": ["sg-service"]}}),
        repo,
        res("aws:ecr/lifecyclePolicy:LifecyclePolicy", "repo-lifecycle", {"repository": "shop-prod", "policy": json.dumps({"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}}]})}),
        alb,
        web_acl,
        res("aws:wafv2/webAclAssociation:WebAclAssociation", "waf-association", {"resourceArn": "", "webAclArn": WEB_ACL_ARN}, deps={"resourceArn": [alb.urn]}),
        res("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", "waf-logging",
            {"resourceArn": WEB_ACL_ARN, "logDestinationConfigs": [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:aws-waf-logs-shop-prod"]}),
        res("aws:lb/listener:Listener", "https", {"loadBalancerArn": "", "protocol": "HTTPS", "port": 443, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "certificateArn": f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/00000000-0000-4000-8000-000000000000",
            "defaultActions": [{"type": "forward", "targetGroupArn": "tg"}]}, deps={"loadBalancerArn": [alb.urn]}),
        res("aws:lb/listener:Listener", "http", {"loadBalancerArn": ALB_ARN, "protocol": "HTTP", "port": 80,
            "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]}),
        bucket,
        res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "alb-logs-pab", {"bucket": "", "blockPublicAcls": True, "blockPublicPolicy": True,
            "ignorePublicAcls": True, "restrictPublicBuckets": True}, deps={"bucket": [bucket.urn]}),
        res("aws:s3/bucketPolicy:BucketPolicy", "alb-logs-policy", {"bucket": "shop-prod-alb-logs", "policy": doc(
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::shop-prod-alb-logs", "arn:aws:s3:::shop-prod-alb-logs/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}})}),
        res("aws:iam/role:Role", "task-role", {"name": "shop-prod-task", "assumeRolePolicy": doc(
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"})}),
        res("aws:iam/rolePolicy:RolePolicy", "task-policy", {"role": "shop-prod-task", "policy": doc(
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": SECRET_ARN},
            {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": KEY_ARN})}),
        res("aws:iam/policy:Policy", "deploy-policy", {"name": "shop-prod-deploy", "policy": doc(
            {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/shop-prod"})}),
    ]
    return graph(resources + watching_alarms(resources))


# What PGH.7 wants watched, per type (AWS's recommended alarms), for the secure stack's alarms.
WATCHED = {
    "aws:rds/instance:Instance": ("AWS/RDS", "CPUUtilization FreeStorageSpace FreeableMemory DatabaseConnections ReadLatency WriteLatency"),
    "aws:lb/loadBalancer:LoadBalancer": ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count HTTPCode_Target_5XX_Count UnHealthyHostCount TargetResponseTime"),
    "aws:ecs/service:Service": ("AWS/ECS", "CPUUtilization MemoryUtilization"),
    "aws:wafv2/webAcl:WebAcl": ("AWS/WAFV2", "BlockedRequests"),
}
TOPIC_ARN = f"arn:aws:sns:eu-west-1:{ACCOUNT}:shop-prod-alarms"


def watching_alarms(resources: list[Resource]) -> list[Resource]:
    """One alarm with an action per must-watch metric, its dimensions built from the resource
    (recorded as a property dependency, as Pulumi records an ARN suffix taken from an Output)."""
    out = []
    for r in resources:
        namespace, names = WATCHED.get(r.type, ("", ""))
        metrics = [(namespace, n) for n in names.split()] + ([("ECS/ContainerInsights", "RunningTaskCount")] if r.type == "aws:ecs/service:Service" else [])
        for ns, metric in metrics:
            out.append(res("aws:cloudwatch/metricAlarm:MetricAlarm", f"alarm-{r.name}-{metric}", {
                "name": f"shop-prod-{r.name}-{metric}", "namespace": ns, "metricName": metric, "dimensions": {"Id": "from-dependency"},
                "alarmActions": [TOPIC_ARN], "okActions": [TOPIC_ARN]}, deps={"dimensions": [r.urn]}))
    return out


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------


def find(g: Graph, name: str) -> Resource:
    matches = [r for r in g.resources if r.name == name]
    assert len(matches) == 1, f"{name}: {len(matches)} matches"
    return matches[0]


def set_input(g: Graph, name: str, path: str, value: Any) -> None:
    target: Any = find(g, name).inputs
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(parts[-1])] = value
    else:
        target[parts[-1]] = value


def set_option(g: Graph, name: str, option: str, value: bool) -> None:
    """A resource option (protect, retain_on_delete) of one resource."""
    setattr(find(g, name), option, value)


def remove(g: Graph, name: str) -> None:
    g.resources.remove(find(g, name))


def add(g: Graph, resource: Resource) -> None:
    g.resources.append(resource)


def set_container(g: Graph, name: str, **overrides: Any) -> None:
    r = find(g, name)
    defs = json.loads(r.inputs["containerDefinitions"])
    defs[0].update(overrides)
    r.inputs["containerDefinitions"] = json.dumps(defs)


def mutated(g: Graph, change: Callable[[Graph], None]) -> Graph:
    copy_ = copy.deepcopy(g)
    change(copy_)
    return copy_
