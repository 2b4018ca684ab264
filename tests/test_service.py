"""ECS Fargate service behind an ALB: every security setting asserted on the recorded graph, both stacks."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from bootstrap.plan.mockanswers import ELB_ACCOUNTS
from bootstrap.plan.mockgraph import Graph, Resource, run_program, run_stack
from components.app_database import DbConnection
from components.container import health_check_command
from components.loadbalancer import LOG_DELIVERY_PRINCIPAL, TLS_POLICY, lb_name
from components.service import Service, ServiceArgs
from config.load import load_settings
from config.stack_file import stack_config
from controls.exec_access import EXEC_CHANNEL_ACTIONS, STAR_ONLY_ACTIONS
from tests.helpers import assert_config_error
from tests.resource_types import ALB, CLUSTER, EGRESS, INGRESS, LOG_GROUP, ROLE, ROLE_POLICY, SG, TASKDEF

CAPACITY = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
SERVICE = "aws:ecs/service:Service"
TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
BUCKET = "aws:s3/bucket:Bucket"
INTERNET = ("0.0.0.0/0", "::/0")
DOMAIN = {"domainName": "app.example.com", "hostedZoneId": "Z0123456789ABC"}


# --- helpers -------------------------------------------------------------------------------------


def container(graph: Graph) -> dict[str, Any]:
    (task,) = [t for t in graph.of_type(TASKDEF) if graph.by_urn(t.parent).type == "pghome:service:Service"]  # not db-access's
    defs = json.loads(task.inputs["containerDefinitions"])
    assert len(defs) == 1
    return defs[0]


def role(graph: Graph, physical: str) -> Resource:
    """The role whose generated name starts with `physical-` (config/naming.py: roles get name_prefix)."""
    return next(r for r in graph.of_type(ROLE) if r.inputs.get("namePrefix") == f"{physical}-")


def role_policies(graph: Graph, role_res: Resource) -> list[dict[str, Any]]:
    return [json.loads(p.inputs["policy"]) for p in graph.of_type(ROLE_POLICY) if p.inputs["role"] == role_res.id]


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    st = doc["Statement"]
    return st if isinstance(st, list) else [st]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sg_by_name(graph: Graph, physical: str) -> Resource:
    """The security group whose generated name starts with `physical-` (name_prefix)."""
    return next(r for r in graph.of_type(SG) if r.inputs.get("namePrefix") == f"{physical}-")


def rules_of(graph: Graph, type_: str, sg: Resource) -> list[Resource]:
    return [r for r in graph.of_type(type_) if r.inputs["securityGroupId"] == sg.id]


def listener_ports(graph: Graph) -> dict[int, Resource]:
    return {r.inputs["port"]: r for r in graph.of_type(LISTENER)}


# --- cluster, capacity, logs ----------------------------------------------------------------------


def test_cluster_has_container_insights(dev_graph: Graph, prod_graph: Graph) -> None:
    for graph, level in ((dev_graph, "enabled"), (prod_graph, "enhanced")):
        cluster = graph.one(CLUSTER, f"shop-{graph.stack}-service-cluster")
        assert cluster.inputs["name"] == f"shop-{graph.stack}"
        assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": level}]
    # dev enables ECS Exec: sessions encrypted with their own CMK and logged to a KMS-encrypted group
    exec_cfg = dev_graph.one(CLUSTER, "shop-dev-service-cluster").get("configuration.executeCommandConfiguration")
    key = next(k for k in dev_graph.of_type("aws:kms/key:Key") if k.name == "shop-dev-service-exec-key")
    logs = next(g for g in dev_graph.of_type(LOG_GROUP) if g.inputs["name"] == "/ecs/shop-dev/exec")
    assert exec_cfg["kmsKeyId"] == key.state["arn"] and exec_cfg["logging"] == "OVERRIDE"
    assert exec_cfg["logConfiguration"] == {"cloudWatchEncryptionEnabled": True, "cloudWatchLogGroupName": "/ecs/shop-dev/exec"}
    assert logs.inputs["kmsKeyId"] == key.state["arn"]
    assert prod_graph.one(CLUSTER, "shop-prod-service-cluster").get("configuration") is None
    assert not [g for g in prod_graph.of_type(LOG_GROUP) if g.inputs["name"] == "/ecs/shop-prod/exec"]


def test_capacity_providers_follow_weights(dev_graph: Graph, prod_graph: Graph) -> None:
    for graph in (dev_graph, prod_graph):
        cap = graph.one(CAPACITY)
        assert cap.inputs["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
        assert cap.inputs["clusterName"] == graph.one(CLUSTER, f"shop-{graph.stack}-service-cluster").inputs["name"]
        assert graph.one(SERVICE).inputs["capacityProviderStrategies"] == cap.inputs["defaultCapacityProviderStrategies"]
        assert "launchType" not in graph.one(SERVICE).inputs
    assert dev_graph.one(CAPACITY).inputs["defaultCapacityProviderStrategies"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert prod_graph.one(CAPACITY).inputs["defaultCapacityProviderStrategies"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}]
    mixed = run_stack("dev", {"fargateWeight": 1, "fargateSpotWeight": 3})
    assert mixed.one(SERVICE).inputs["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
    ]


def test_log_group_is_kms_encrypted_and_retained(graph: Graph) -> None:
    service = graph.one("pghome:service:Service")
    group = next(r for r in graph.of_type(LOG_GROUP) if r.parent == service.urn and r.inputs["name"].endswith("/app"))
    assert group.inputs["name"] == f"/ecs/shop-{graph.stack}/app"
    assert group.inputs["retentionInDays"] == {"dev": 14, "prod": 365}[graph.stack]
    key = next(k for k in graph.of_type("aws:kms/key:Key") if k.state["arn"] == group.inputs["kmsKeyId"])
    assert key.parent == service.urn
    principals = [s.get("Principal", {}).get("Service") for s in statements(json.loads(key.inputs["policy"])) if isinstance(s.get("Principal"), dict)]
    assert "logs.eu-west-1.amazonaws.com" in principals
    opts = container(graph)["logConfiguration"]
    assert opts["logDriver"] == "awslogs"
    assert opts["options"]["awslogs-group"] == group.inputs["name"]
    assert opts["options"]["awslogs-region"] == "eu-west-1"


# --- IAM ------------------------------------------------------------------------------------------


def test_roles_trust_only_ecs_tasks_of_this_account(graph: Graph) -> None:
    for physical in (f"shop-{graph.stack}-task-execution", f"shop-{graph.stack}-task"):
        doc = json.loads(role(graph, physical).inputs["assumeRolePolicy"])
        (st,) = statements(doc)
        assert st["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert st["Action"] == "sts:AssumeRole"
        assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
        assert st["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:ecs:eu-west-1:123456789012:*"


def test_execution_role_is_scoped_to_this_repo_log_group_and_secret(graph: Graph) -> None:
    exec_role = role(graph, f"shop-{graph.stack}-task-execution")
    (doc,) = role_policies(graph, exec_role)
    by_action: dict[str, list[str]] = {}
    for st in statements(doc):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            by_action.setdefault(action, []).extend(as_list(st["Resource"]))
    repo_arn = graph.one("aws:ecr/repository:Repository", f"shop-{graph.stack}-registry-repo").state["arn"]
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"):
        assert by_action[action] == [repo_arn]
    assert by_action["ecr:GetAuthorizationToken"] == ["*"]
    group = graph.one(LOG_GROUP, f"shop-{graph.stack}-service-logs")
    assert by_action["logs:CreateLogStream"] == [group.state["arn"] + ":*"]
    assert by_action["logs:PutLogEvents"] == [group.state["arn"] + ":*"]
    secret_from = container(graph)["secrets"][-1]["valueFrom"]
    assert by_action["secretsmanager:GetSecretValue"] == [secret_from.removesuffix(":password::")]
    assert len(by_action["kms:Decrypt"]) == 1 and by_action["kms:Decrypt"][0].startswith("arn:aws:kms:")
    decrypt = next(st for st in statements(doc) if st["Action"] == "kms:Decrypt")
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"
    assert set(by_action) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
    }


def test_task_role_grants_exec_channels_only_when_enabled(dev_graph: Graph, prod_graph: Graph) -> None:
    (doc,) = role_policies(dev_graph, role(dev_graph, "shop-dev-task"))
    by_sid = {st["Sid"]: st for st in statements(doc)}
    assert set(by_sid) == {"EcsExecChannels", "EcsExecSessionKey", "EcsExecFindLogGroup", "EcsExecSessionLogs"}
    assert sorted(as_list(by_sid["EcsExecChannels"]["Action"])) == sorted(EXEC_CHANNEL_ACTIONS)
    assert by_sid["EcsExecChannels"]["Resource"] == "*"
    exec_key = dev_graph.one(CLUSTER, "shop-dev-service-cluster").get("configuration.executeCommandConfiguration.kmsKeyId")
    assert by_sid["EcsExecSessionKey"] == {"Sid": "EcsExecSessionKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": exec_key}
    assert by_sid["EcsExecFindLogGroup"]["Action"] == "logs:DescribeLogGroups" and by_sid["EcsExecFindLogGroup"]["Resource"] == "*"
    exec_logs = next(g for g in dev_graph.of_type(LOG_GROUP) if g.inputs["name"] == "/ecs/shop-dev/exec")
    assert by_sid["EcsExecSessionLogs"]["Resource"] == exec_logs.state["arn"] + ":*"
    assert sorted(by_sid["EcsExecSessionLogs"]["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert role_policies(prod_graph, role(prod_graph, "shop-prod-task")) == [], "prod: no exec, no IAM auth -> the task role has no permissions"
    assert dev_graph.one(SERVICE).inputs["enableExecuteCommand"] is True
    assert prod_graph.one(SERVICE).inputs["enableExecuteCommand"] is False


def test_task_role_gets_rds_db_connect_for_the_app_user_with_iam_auth() -> None:
    graph = run_stack("prod", {"appDbIamAuthRoles": ["app"]})
    (doc,) = role_policies(graph, role(graph, "shop-prod-task"))
    (st,) = statements(doc)
    assert st["Action"] == "rds-db:connect"
    env = {e["name"]: e["value"] for e in container(graph)["environment"]}
    assert re.fullmatch(rf"arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-[A-Za-z0-9]+/{env['PGUSER']}", st["Resource"])


# ecr:GetAuthorizationToken, ssmmessages:*, and the lookup ECS Exec logging makes
ALLOWED_STAR_ACTIONS = STAR_ONLY_ACTIONS


@pytest.mark.parametrize("overrides", [{}, {"appDbIamAuthRoles": ["app"]}], ids=["default", "iam-auth"])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_iam_policies_have_no_wildcards_beyond_the_allowlist(stack: str, overrides: dict) -> None:
    graph = run_stack(stack, overrides)
    docs = [json.loads(r.inputs["policy"]) for r in graph.of_type(ROLE_POLICY) + graph.of_type("aws:iam/policy:Policy")]
    assert len(docs) >= 2
    for doc in docs:
        for st in statements(doc):
            actions = as_list(st.get("Action", []))
            assert "NotAction" not in st and "NotResource" not in st
            for action in actions:
                assert action not in ("*", "*:*") and not action.endswith(":*"), f"wildcard action {action}"
            if "*" in as_list(st["Resource"]):
                bad = [a for a in actions if a not in ALLOWED_STAR_ACTIONS]
                assert not bad, f"Resource '*' for actions that support resource ARNs: {bad}"


# --- task definition ------------------------------------------------------------------------------


def test_task_definition_is_hardened(graph: Graph) -> None:
    task = graph.one(TASKDEF, f"shop-{graph.stack}-service-task")
    settings = load_settings(graph.config, stack=graph.stack).service
    assert task.inputs["cpu"] == str(settings.task_cpu) and task.inputs["memory"] == str(settings.task_memory)
    assert (task.inputs["cpu"], task.inputs["memory"]) == {"dev": ("256", "512"), "prod": ("1024", "2048")}[graph.stack]
    assert task.inputs["requiresCompatibilities"] == ["FARGATE"]
    assert task.inputs["networkMode"] == "awsvpc"
    # /tmp, plus the SSM agent's paths when ECS Exec is on (dev): the root filesystem stays read-only
    expected = {"tmp": "/tmp"} if graph.stack == "prod" else {"tmp": "/tmp", "ssm-lib": "/var/lib/amazon", "ssm-log": "/var/log/amazon",
                                                              "managed-agents": "/managed-agents"}
    assert task.inputs["volumes"] == [{"name": v} for v in expected]
    assert {m["sourceVolume"]: m["containerPath"] for m in container(graph)["mountPoints"]} == expected
    assert task.inputs["executionRoleArn"] == role(graph, f"shop-{graph.stack}-task-execution").state["arn"]
    assert task.inputs["taskRoleArn"] == role(graph, f"shop-{graph.stack}-task").state["arn"]
    c = container(graph)
    assert c["readonlyRootFilesystem"] is True
    assert {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False} in c["mountPoints"]
    assert all(m["readOnly"] is False for m in c["mountPoints"])
    assert c["user"] == "1000:1000"
    assert c["privileged"] is False
    assert c["linuxParameters"] == {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}}
    assert "add" not in c["linuxParameters"]["capabilities"]
    assert c["portMappings"][0]["containerPort"] == 8000
    repo_url = graph.one("aws:ecr/repository:Repository", f"shop-{graph.stack}-registry-repo").state["repositoryUrl"]
    assert c["image"] == f"{repo_url}@sha256:" + "0" * 64  # no image yet (see test_no_image_yet_means_no_tasks)


def test_db_settings_as_env_and_password_only_via_secrets(graph: Graph) -> None:
    c = container(graph)
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert {"PGHOST", "PGPORT", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT"} <= set(env) and "PGUSER" not in env
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGPORT"] == "5432"
    assert env["PGSSLROOTCERT"].startswith("/")
    assert c["secrets"] == [
        {"name": "PGUSER", "valueFrom": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-{graph.stack}/db/app-AbCdEf:username::"},
        {"name": "PGPASSWORD", "valueFrom": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-{graph.stack}/db/app-AbCdEf:password::"}
    ]


CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL|PASSWD|PWD", re.IGNORECASE)
CREDENTIAL_VALUE = re.compile(r"://[^/\s:@]+:[^/\s@]+@|password\s*=|AKIA[0-9A-Z]{16}|-----BEGIN", re.IGNORECASE)


@pytest.mark.parametrize("overrides", [{}, {"appDbIamAuthRoles": ["app"], "containerImage": "ghcr.io/acme/shop:1.2.3"}], ids=["default", "custom"])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_credentials_in_task_environment(stack: str, overrides: dict) -> None:
    graph = run_stack(stack, overrides)
    for task in graph.of_type(TASKDEF):
        for c in json.loads(task.inputs["containerDefinitions"]):
            for e in c.get("environment", []):
                assert not CREDENTIAL_NAME.search(e["name"]), f"credential-like env name {e['name']}"
                assert not CREDENTIAL_VALUE.search(str(e["value"])), f"credential-like env value in {e['name']}"
            if graph.by_urn(task.parent).type != "pghome:service:Service":
                assert "secrets" not in c  # the db-access sleeper holds no credential at all
                continue
            assert [s["name"] for s in c["secrets"]] == (["PGPASSWORD"] if overrides.get("appDbIamAuthRoles") else ["PGUSER", "PGPASSWORD"])
            assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in c["secrets"])


def test_credential_regexes_would_catch_a_leak() -> None:
    # The check above must be able to fail.
    assert CREDENTIAL_NAME.search("PGPASSWORD") and CREDENTIAL_NAME.search("AWS_SECRET_ACCESS_KEY")
    assert CREDENTIAL_VALUE.search("postgres://app:hunter2@db:5432/app")
    assert not CREDENTIAL_VALUE.search("postgres://db.internal:5432/app")


def test_container_image_override() -> None:
    graph = run_stack("dev", {"containerImage": "ghcr.io/acme/shop@sha256:" + "a" * 64})
    assert container(graph)["image"] == "ghcr.io/acme/shop@sha256:" + "a" * 64
    graph = run_stack("dev", {"imageTag": "v1.4.2"})
    assert container(graph)["image"].endswith("/shop-dev:v1.4.2")


def test_no_container_health_check_by_default(graph: Graph) -> None:
    # Slim and distroless images have no wget/curl: the load balancer's check decides by default.
    assert "healthCheck" not in container(graph)
    assert graph.one(TG).get("healthCheck.path") == "/healthz"


def test_container_health_check_options() -> None:
    graph = run_stack("dev", {"containerHealthCheck": "none"})
    assert "healthCheck" not in container(graph)
    graph = run_stack("dev", {"containerHealthCheck": "/app/bin/probe --ready", "healthCheckPath": "/ready"})
    hc = container(graph)["healthCheck"]
    assert hc["command"] == ["CMD-SHELL", "/app/bin/probe --ready"]
    assert hc["startPeriod"] == 60 and hc["retries"] == 3
    assert graph.one(TG).get("healthCheck.path") == "/ready"
    settings = load_settings(stack_config("dev", {"containerPort": 9000, "healthCheckPath": "/up"}), stack="dev").service
    assert health_check_command(settings) is None


# --- the ECS service ------------------------------------------------------------------------------


def test_service_runs_privately_and_heals_itself(graph: Graph) -> None:
    svc = graph.one(SERVICE)
    assert svc.inputs["name"] == f"shop-{graph.stack}-app"
    net = svc.inputs["networkConfiguration"]
    assert net["assignPublicIp"] is False
    assert net["subnets"] == graph.outputs["privateSubnetIds"]
    assert net["securityGroups"] == [sg_by_name(graph, f"shop-{graph.stack}-service").id]
    assert svc.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert svc.inputs["healthCheckGracePeriodSeconds"] == 60
    assert svc.inputs["desiredCount"] == 0  # no imageTag yet; with one: test_autoscaling_targets_and_policies
    assert svc.inputs["propagateTags"] == "SERVICE"
    assert svc.inputs["waitForSteadyState"] is False
    assert svc.inputs["taskDefinition"] == graph.one(TASKDEF, f"shop-{graph.stack}-service-task").state["arn"]
    (lb,) = svc.inputs["loadBalancers"]
    assert lb == {"targetGroupArn": graph.one(TG).state["arn"], "containerName": "app", "containerPort": 8000}
    # The service waits for its listeners and capacity providers.
    deps = set(svc.dependencies)
    assert {r.urn for r in graph.of_type(LISTENER)} <= deps
    assert graph.one(CAPACITY).urn in deps


def test_service_ignores_desired_count(graph: Graph) -> None:
    assert graph.one(SERVICE).ignore_changes == ["desiredCount"]


def test_no_image_yet_means_no_tasks(graph: Graph) -> None:
    # The stack files set no imageTag: the first deploy creates the service with no running task,
    # and autoscaling cannot start one either, until `release` sets the tag.
    assert graph.one(SERVICE).inputs["desiredCount"] == 0
    target = graph.one(SCALING_TARGET)
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (0, 0)
    assert container(graph)["image"].endswith("@sha256:" + "0" * 64)
    assert ":initial" not in container(graph)["image"]


def test_autoscaling_targets_and_policies() -> None:
    dev_graph, prod_graph = run_stack("dev", {"imageTag": "1.0.0"}), run_stack("prod", {"imageTag": "1.0.0"})
    assert dev_graph.one(SERVICE).inputs["desiredCount"] == 1 and prod_graph.one(SERVICE).inputs["desiredCount"] == 3
    for graph, (lo, hi) in ((dev_graph, (1, 2)), (prod_graph, (3, 12))):
        target = graph.one(SCALING_TARGET)
        assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (lo, hi)
        assert target.inputs["resourceId"] == f"service/shop-{graph.stack}/shop-{graph.stack}-app"
        assert target.inputs["scalableDimension"] == "ecs:service:DesiredCount"
        assert target.inputs["serviceNamespace"] == "ecs"
    metrics = {
        p.get("targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType"): p for p in dev_graph.of_type(SCALING_POLICY)
    }
    assert set(metrics) == {"ECSServiceAverageCPUUtilization", "ECSServiceAverageMemoryUtilization"}
    assert metrics["ECSServiceAverageCPUUtilization"].get("targetTrackingScalingPolicyConfiguration.targetValue") == 60
    assert metrics["ECSServiceAverageMemoryUtilization"].get("targetTrackingScalingPolicyConfiguration.targetValue") == 70
    assert all(p.inputs["policyType"] == "TargetTrackingScaling" for p in metrics.values())
    prod = {p.get("targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType"): p for p in prod_graph.of_type(SCALING_POLICY)}
    requests = prod["ALBRequestCountPerTarget"]
    assert requests.get("targetTrackingScalingPolicyConfiguration.targetValue") == 1000
    label = requests.get("targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel")
    assert label == f"{prod_graph.one(ALB).state['arnSuffix']}/{prod_graph.one(TG).state['arnSuffix']}"
    assert re.fullmatch(r"app/[\w-]+/[0-9a-f]+/targetgroup/[\w-]+/[0-9a-f]+", label)


# --- security groups ------------------------------------------------------------------------------


def _internet_ingress(graph: Graph) -> list[tuple[str, int, int]]:
    """(sg name, from, to) for every ingress rule anywhere in the graph open to the internet."""
    names = {r.id: r.inputs.get("namePrefix", r.inputs.get("name", r.name)).rstrip("-") for r in graph.of_type(SG) + graph.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")}
    found = []
    for rule in graph.of_type(INGRESS):
        if rule.inputs.get("cidrIpv4") in INTERNET or rule.inputs.get("cidrIpv6") in INTERNET:
            found.append((names[rule.inputs["securityGroupId"]], rule.inputs["fromPort"], rule.inputs["toPort"]))
    for rule in graph.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
        cidrs = rule.inputs.get("cidrBlocks", []) + rule.inputs.get("ipv6CidrBlocks", [])
        if rule.inputs.get("type") == "ingress" and set(cidrs) & set(INTERNET):
            found.append((names.get(rule.inputs["securityGroupId"], "?"), rule.inputs["fromPort"], rule.inputs["toPort"]))
    for sg in graph.of_type(SG) + graph.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        for inline in sg.inputs.get("ingress", []):
            if set(inline.get("cidrBlocks", []) + inline.get("ipv6CidrBlocks", [])) & set(INTERNET):
                found.append((sg.inputs.get("name", sg.name), inline["fromPort"], inline["toPort"]))
    return found


@pytest.mark.parametrize(
    ("stack", "overrides", "expected_ports"),
    [
        ("dev", {}, {80}),
        ("prod", {}, {80, 443}),
        ("prod", {"albHttpRedirect": False}, {443}),
        ("dev", {"albIngressCidrs": ["0.0.0.0/0", "::/0"], **DOMAIN}, {80, 443}),
        ("dev", {"albIngressCidrs": ["203.0.113.0/24"]}, set()),
    ],
    ids=["dev", "prod", "prod-no-redirect", "dev-https-dualstack", "dev-restricted"],
)
def test_only_alb_listener_ports_face_the_internet(stack: str, overrides: dict, expected_ports: set[int]) -> None:
    graph = run_stack(stack, overrides)
    open_rules = _internet_ingress(graph)
    assert {name for name, _, _ in open_rules} <= {f"shop-{stack}-alb"}
    assert all(lo == hi for _, lo, hi in open_rules), "no port ranges open to the internet"
    assert {lo for _, lo, _ in open_rules} == expected_ports
    assert {lo for _, lo, _ in open_rules} <= {80, 443}


def test_internet_ingress_walk_sees_inline_rules() -> None:
    # The walk must be able to fail: an inline 0.0.0.0/0 rule on a security group is found.
    def program() -> None:
        import pulumi_aws as aws

        aws.ec2.SecurityGroup("open", name="open", vpc_id="vpc-1", ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}])

    graph = run_program(program, stack="dev", config=stack_config("dev"))
    assert _internet_ingress(graph) == [("open", 22, 22)]


def test_service_sg_admits_only_the_alb(graph: Graph) -> None:
    svc_sg = sg_by_name(graph, f"shop-{graph.stack}-service")
    alb_sg = sg_by_name(graph, f"shop-{graph.stack}-alb")
    (rule,) = rules_of(graph, INGRESS, svc_sg)
    assert rule.inputs["referencedSecurityGroupId"] == alb_sg.id
    assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (8000, 8000, "tcp")
    assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs
    egress = {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in rules_of(graph, EGRESS, svc_sg)}
    vpc_cidr = {"dev": "10.20.0.0/16", "prod": "10.30.0.0/16"}[graph.stack]
    assert egress == {(443, "0.0.0.0/0"), (5432, vpc_cidr)}
    assert svc_sg.inputs.get("egress") in (None, []) and svc_sg.inputs.get("ingress") in (None, [])


def test_alb_sg_egress_only_to_container_port_in_vpc(graph: Graph) -> None:
    alb_sg = sg_by_name(graph, f"shop-{graph.stack}-alb")
    (rule,) = rules_of(graph, EGRESS, alb_sg)
    vpc_cidr = {"dev": "10.20.0.0/16", "prod": "10.30.0.0/16"}[graph.stack]
    assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["cidrIpv4"]) == (8000, 8000, vpc_cidr)
    assert graph.outputs["albDnsName"] == graph.one(ALB).state["dnsName"]


def test_alb_ingress_follows_configured_cidrs() -> None:
    graph = run_stack("prod", {"albIngressCidrs": ["203.0.113.0/24", "2001:db8::/32"]})
    rules = rules_of(graph, INGRESS, sg_by_name(graph, "shop-prod-alb"))
    seen = {(r.inputs["fromPort"], r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")) for r in rules}
    assert seen == {(p, c) for p in (80, 443) for c in ("203.0.113.0/24", "2001:db8::/32")}


# --- load balancer, access logs, listeners -----------------------------------------------------------


def test_alb_settings(dev_graph: Graph, prod_graph: Graph) -> None:
    for graph, protect in ((dev_graph, False), (prod_graph, True)):
        alb = graph.one(ALB)
        assert alb.inputs["internal"] is False
        assert alb.inputs["loadBalancerType"] == "application"
        assert alb.inputs["dropInvalidHeaderFields"] is True
        assert alb.inputs["enableDeletionProtection"] is protect
        assert alb.inputs["subnets"] == graph.outputs["publicSubnetIds"]
        assert alb.inputs["securityGroups"] == [sg_by_name(graph, f"shop-{graph.stack}-alb").id]
        assert alb.inputs["accessLogs"] == {"enabled": True, "bucket": graph.one(BUCKET).state["bucket"], "prefix": "alb"}
        # Deletion-protected stacks keep their access logs when the bucket resource goes away.
        assert graph.one(BUCKET).inputs["forceDestroy"] is (not protect)
        tg = graph.one(TG)
        assert tg.inputs["targetType"] == "ip"
        assert tg.inputs["deregistrationDelay"] == 30
        assert tg.get("healthCheck.path") == "/healthz"
        assert tg.inputs["port"] == 8000 and tg.inputs["vpcId"] == graph.outputs["vpcId"]


def test_lb_names_fit_32_chars() -> None:
    assert lb_name("shop-dev", "alb") == "shop-dev-alb"
    long = lb_name("a" * 20 + "-" + "averylongstackname", "alb")
    assert len(long) <= 32 and not long.endswith("-")


def test_access_log_bucket_is_locked_down(graph: Graph) -> None:
    bucket = graph.one(BUCKET)
    bid = bucket.id
    pab = graph.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert pab.inputs["bucket"] == bid
    assert all(pab.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    owner = graph.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert owner.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    sse = graph.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.get("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm") == "AES256"  # the only option ALB log delivery supports
    assert graph.one("aws:s3/bucketVersioning:BucketVersioning").get("versioningConfiguration.status") == "Enabled"
    rule = graph.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").get("rules.0")
    assert rule["status"] == "Enabled" and rule["expiration"]["days"] == 90
    policy = graph.one("aws:s3/bucketPolicy:BucketPolicy")
    doc = json.loads(policy.inputs["policy"])
    deny = next(s for s in statements(doc) if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == sorted([bucket.state["arn"], bucket.state["arn"] + "/*"])
    allow = next(s for s in statements(doc) if s["Effect"] == "Allow")
    assert allow["Action"] == "s3:PutObject"
    assert allow["Principal"] == {"AWS": f"arn:aws:iam::{ELB_ACCOUNTS['eu-west-1']}:root"}
    assert allow["Resource"] == f"{bucket.state['arn']}/alb/AWSLogs/123456789012/*"
    # The ALB is created only after it may write its logs.
    assert policy.urn in graph.one(ALB).dependencies


def test_access_log_delivery_uses_service_principal_in_newer_regions() -> None:
    graph = run_stack("dev", {"aws:region": "eu-south-2", "accessLogRetentionDays": 30})
    doc = json.loads(graph.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    allow = next(s for s in statements(doc) if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": LOG_DELIVERY_PRINCIPAL}
    assert graph.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").get("rules.0.expiration.days") == 30


def test_dev_is_http_only_and_says_so(dev_graph: Graph) -> None:
    ports = listener_ports(dev_graph)
    assert set(ports) == {80}
    assert ports[80].inputs["protocol"] == "HTTP"
    assert ports[80].get("defaultActions.0.type") == "forward"
    assert dev_graph.outputs["httpsEnabled"] is False
    assert dev_graph.outputs["url"].startswith("http://")
    assert "HTTP ONLY" in dev_graph.outputs["albListeners"]


def test_prod_is_https_with_redirect(prod_graph: Graph) -> None:
    ports = listener_ports(prod_graph)
    assert set(ports) == {80, 443}
    https = ports[443]
    assert https.inputs["protocol"] == "HTTPS"
    assert https.inputs["sslPolicy"] == TLS_POLICY == "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
    assert https.inputs["certificateArn"] == prod_graph.config["pghome:certificateArn"]
    assert https.get("defaultActions.0") == {"type": "forward", "targetGroupArn": prod_graph.one(TG).state["arn"]}
    redirect = ports[80].get("defaultActions.0")
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}
    assert prod_graph.outputs["httpsEnabled"] is True
    assert prod_graph.outputs["url"].startswith("https://")


def test_prod_without_redirect_has_no_port_80() -> None:
    graph = run_stack("prod", {"albHttpRedirect": False})
    assert set(listener_ports(graph)) == {443}


def test_domain_and_zone_request_a_dns_validated_certificate() -> None:
    graph = run_stack("dev", DOMAIN)
    cert = graph.one("aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == "app.example.com"
    assert cert.inputs["validationMethod"] == "DNS"
    records = {r.inputs["type"]: r for r in graph.of_type("aws:route53/record:Record")}
    validation_record = records["CNAME"]
    assert validation_record.inputs["zoneId"] == "Z0123456789ABC"
    assert validation_record.inputs["records"] == [cert.state["domainValidationOptions"][0]["resourceRecordValue"]]
    validation = graph.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["certificateArn"] == cert.state["arn"]
    assert validation.inputs["validationRecordFqdns"] == [validation_record.state["fqdn"]]
    https = listener_ports(graph)[443]
    assert https.inputs["certificateArn"] == cert.state["arn"]
    assert validation.urn in https.dependencies, "the listener waits for the certificate to be issued"
    alias = records["A"]
    assert alias.inputs["name"] == "app.example.com"
    assert alias.get("aliases.0.name") == graph.one(ALB).state["dnsName"]
    assert graph.outputs["url"] == "https://app.example.com"
    assert graph.outputs["httpsEnabled"] is True


def test_stack_outputs(graph: Graph) -> None:
    for key in ("repositoryUrl", "albDnsName", "url", "clusterName", "serviceName", "httpsEnabled"):
        assert key in graph.outputs
    assert graph.outputs["clusterName"] == graph.one(CLUSTER, f"shop-{graph.stack}-service-cluster").inputs["name"]
    assert graph.outputs["serviceName"] == graph.one(SERVICE).inputs["name"]


def test_components_and_parenting(graph: Graph) -> None:
    service = graph.one("pghome:service:Service")
    lb = graph.one("pghome:service:LoadBalancer")
    assert lb.parent == service.urn
    for t in (CAPACITY, SERVICE, SCALING_TARGET):
        assert graph.one(t).parent == service.urn
    for t, suffix in ((CLUSTER, "cluster"), (TASKDEF, "task")):  # the db-access component has its own
        assert graph.one(t, f"shop-{graph.stack}-service-{suffix}").parent == service.urn
    for t in (ALB, TG, BUCKET):
        assert graph.one(t).parent == lb.urn


def test_service_in_isolation_accepts_outputs() -> None:
    """Every connection input may be an Output (what the integrated __main__ passes)."""
    settings = load_settings(stack_config("dev"), stack="dev")

    def program() -> None:
        out = pulumi.Output.from_input
        svc = Service(
            "s",
            ServiceArgs(
                settings=dataclasses.replace(settings.service, prefix="demo-dev"),
                vpc_id=out("vpc-1"),
                vpc_cidr=out("10.9.0.0/16"),
                public_subnet_ids=out(["subnet-a", "subnet-b"]),
                private_subnet_ids=out(["subnet-c", "subnet-d"]),
                repository_url=out("123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo"),
                repository_arn=out("arn:aws:ecr:eu-west-1:123456789012:repository/demo"),
                database=DbConnection(
                    host=out("demo.abc.eu-west-1.rds.amazonaws.com"),
                    port=out(6543),
                    dbname="demo",
                    username="demo_app",
                    secret_arn=out("arn:aws:secretsmanager:eu-west-1:123456789012:secret:demo-dev/db/app-XyZ123"),
                    kms_key_arn=out("arn:aws:kms:eu-west-1:123456789012:key/k"),
                    iam_grant=aws.iam.GetPolicyDocumentStatementArgs(
                        actions=["rds-db:connect"], resources=["arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABC/demo_app"], sid="ConnectAsAppUser"
                    ),
                ),
            ),
        )
        pulumi.export("sg", svc.security_group_id)
        pulumi.export("exec", svc.execution_role_arn)
        pulumi.export("logs", svc.log_group_name)

    graph = run_program(program, stack="dev", config=stack_config("dev"))
    c = container(graph)
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["PGHOST"] == "demo.abc.eu-west-1.rds.amazonaws.com" and env["PGPORT"] == "6543" and env["PGUSER"] == "demo_app"
    assert c["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo@sha256:" + "0" * 64
    assert c["secrets"][0]["valueFrom"] == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:demo-dev/db/app-XyZ123:password::"
    db_egress = next(r for r in graph.of_type(EGRESS) if r.inputs["fromPort"] == 6543)
    assert db_egress.inputs["cidrIpv4"] == "10.9.0.0/16"
    task_docs = role_policies(graph, role(graph, "demo-dev-task"))
    resources = [st["Resource"] for doc in task_docs for st in statements(doc) if st["Action"] == "rds-db:connect"]
    assert resources == ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABC/demo_app"]
    assert graph.outputs["logs"] == "/ecs/demo-dev/app"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "overrides", "fragments"),
    [
        ("dev", {"taskCpu": 256, "taskMemory": 4096}, ("pghome:taskMemory", "4096", "256")),
        ("dev", {"taskCpu": 300}, ("pghome:taskCpu", "256, 512")),
        ("dev", {"minCapacity": 3, "maxCapacity": 2, "desiredCount": 2}, ("pghome:minCapacity", "maxCapacity")),
        ("dev", {"desiredCount": 5}, ("pghome:desiredCount", "between minCapacity")),
        ("dev", {"healthCheckPath": "healthz"}, ("pghome:healthCheckPath", "must start with /")),
        ("prod", {"certificateArn": ""}, ("pghome:certificateArn", "prod needs HTTPS")),
        ("dev", {"containerImage": "UPPER/Case:tag"}, ("pghome:containerImage", "image reference")),
        ("dev", {"containerImage": "repo:bad tag"}, ("pghome:containerImage", "image reference")),
        ("dev", {"imageTag": "bad tag"}, ("pghome:imageTag",)),
        ("dev", {"containerUser": "0"}, ("pghome:containerUser", "never root")),
        ("dev", {"containerUser": "root"}, ("pghome:containerUser", "never root")),
        ("dev", {"containerUser": "1000:0"}, ("pghome:containerUser", "root group")),
        ("prod", {"enableExecuteCommand": True}, ("pghome:enableExecuteCommand", "must be false in prod")),
        ("dev", {"certificateArn": "arn:aws:acm:eu-west-1:123:certificate/nope"}, ("pghome:certificateArn", "ACM certificate ARN")),
        ("dev", {"fargateWeight": 0, "fargateSpotWeight": 0}, ("pghome:fargateSpotWeight", "cannot both be 0")),
        ("dev", {"domainName": "app.example.com"}, ("pghome:hostedZoneId", "go together")),
        ("dev", {"albIngressCidrs": ["0.0.0.0/33"]}, ("pghome:albIngressCidrs", "CIDR")),
        ("prod", {"albDeletionProtection": False}, ("pghome:albDeletionProtection", "must be true in prod")),
        ("dev", {"containerPort": 80}, ("pghome:containerPort", "1024")),
        ("dev", {"cpuTargetPercent": 95}, ("pghome:cpuTargetPercent", "90")),
        ("dev", {"containerHealthCheck": "wget\nx"}, ("pghome:containerHealthCheck", "single-line")),
        ("dev", {"logRetentionDays": 17}, ("pghome:logRetentionDays", "one of")),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_service_config_errors(stack: str, overrides: dict, fragments: tuple[str, ...]) -> None:
    assert_config_error(stack, overrides, *fragments)


def test_all_problems_reported_together() -> None:
    err = assert_config_error("prod", {"containerUser": "root", "healthCheckPath": "x", "enableExecuteCommand": True})
    assert len(err.problems) == 3


def test_http_only_plan_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Under mocks the engine's warning channel is the root logger; the CLI shows it in the plan."""
    with caplog.at_level(logging.WARNING):
        run_stack("dev")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("HTTP ONLY" in w and "NOT encrypted" in w for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_stack("prod")
    assert not any("HTTP ONLY" in r.getMessage() for r in caplog.records)
