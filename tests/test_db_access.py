"""The database access path (components/db_access.py) on the recorded graph of both stacks: private,
never running, SG rules exactly, IAM least privilege, ECS Exec encrypted and logged; config; controls."""

from __future__ import annotations

import json
import re
from typing import Any

from bootstrap.access.tunnel import OUTPUT_KEYS, AccessTarget
from bootstrap.plan import report as plan
from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from components.db_access import AGENT_WRITABLE_PATHS, CONTAINER_NAME, MAX_TASK_SECONDS
from controls import FAIL, PASS
from controls.exec_access import EXEC_CHANNEL_ACTIONS
from tests import control_graphs as cg
from tests.helpers import assert_config_error
from tests.resource_types import CLUSTER, EGRESS, ENDPOINT, INGRESS, KEY, LOG_GROUP, REPO, ROLE, ROLE_POLICY, SG, TASKDEF

COMPONENT = "pghome:dbaccess:DbAccess"


def children(graph: Graph, type_: str) -> list[Resource]:
    return [r for r in graph.children(graph.one(COMPONENT)) if r.type == type_]


def one_child(graph: Graph, type_: str, suffix: str = "") -> Resource:
    found = [r for r in children(graph, type_) if r.name.endswith(suffix)]
    assert len(found) == 1, (type_, suffix, [r.name for r in found])
    return found[0]


def container(graph: Graph) -> dict[str, Any]:
    (c,) = json.loads(one_child(graph, TASKDEF).inputs["containerDefinitions"])
    return dict(c)


def statements(policy: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(policy)
    return {s["Sid"]: s for s in doc["Statement"]}


def one_of(graph: Graph, type_: str, suffix: str) -> Resource:
    (found,) = [r for r in graph.of_type(type_) if r.name.endswith(suffix)]
    return found


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_on_by_default_and_never_running(graph: Graph) -> None:
    assert graph.one(COMPONENT)
    under = {r.type for r in graph.children(graph.one(COMPONENT))}
    # a task definition and a cluster, but nothing that runs a task: no service, no schedule
    assert "aws:ecs/service:Service" not in under and "aws:scheduler/schedule:Schedule" not in under
    assert not [r for r in graph.of_type("aws:ecs/service:Service") if r.inputs.get("taskDefinition") == one_child(graph, TASKDEF).state.get("arn")]


def test_task_definition_is_a_hardened_sleeper(graph: Graph) -> None:
    td = one_child(graph, TASKDEF)
    assert td.inputs["requiresCompatibilities"] == ["FARGATE"] and td.inputs["networkMode"] == "awsvpc"
    assert (td.inputs["cpu"], td.inputs["memory"]) == ("256", "512")
    c = container(graph)
    assert c["name"] == CONTAINER_NAME
    # ECR Public's alpine, pinned by digest, pulled through this account's cache (issue 28 item 7)
    assert re.fullmatch(rf"123456789012\.dkr\.ecr\.eu-west-1\.amazonaws\.com/shop-{graph.stack}/docker/library/alpine:[0-9.]+@sha256:[0-9a-f]{{64}}",
                        c["image"]), "private registry, pinned by digest"
    assert c["command"] == ["sleep", str(MAX_TASK_SECONDS)] and MAX_TASK_SECONDS <= 12 * 3600
    assert c["user"] == "65534:65534" and c["privileged"] is False
    assert c["readonlyRootFilesystem"] is True
    assert c["linuxParameters"] == {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}}
    # the SSM agent's state and log directories are writable volumes, the rest of the root fs is not
    mounts = {m["containerPath"]: m for m in c["mountPoints"]}
    assert set(mounts) == {"/var/lib/amazon", "/var/log/amazon", "/managed-agents", "/tmp"}  # issue 23 item 2
    assert all(m["readOnly"] is False for m in mounts.values())
    assert sorted(v["name"] for v in td.inputs["volumes"]) == sorted(AGENT_WRITABLE_PATHS)
    assert not c["portMappings"] and not c["environment"] and "secrets" not in c
    task_logs = one_child(graph, LOG_GROUP, "-logs-task")
    assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert c["logConfiguration"]["options"]["awslogs-group"] == task_logs.inputs["name"]


def test_security_group_rules_exactly(graph: Graph) -> None:
    sg = one_child(graph, SG)
    assert sg.inputs["vpcId"] == graph.outputs["vpcId"]
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")  # no inline rules
    assert not [r for r in graph.of_type(INGRESS) if r.inputs["securityGroupId"] == sg.id], "the access task admits nothing"
    db_sg = graph.outputs["dbSecurityGroupId"]
    endpoints_sg = one_of(graph, SG, "-endpoints-sg").id
    s3_list = next(e for e in graph.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Gateway").state["prefixListId"]
    egress = sorted(
        (r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"], r.inputs.get("referencedSecurityGroupId") or r.inputs.get("prefixListId"),
         r.inputs.get("cidrIpv4"), r.inputs.get("cidrIpv6"))
        for r in graph.of_type(EGRESS) if r.inputs["securityGroupId"] == sg.id
    )
    # no address range at all: the database, the interface endpoints, S3's prefix list (issue 28 item 7)
    assert egress == sorted([("tcp", 443, 443, endpoints_sg, None, None), ("tcp", 443, 443, s3_list, None, None), ("tcp", 5432, 5432, db_sg, None, None)])
    # the database admits it, as a grant of the database (allow_from), on the DB port only
    (grant,) = [r for r in graph.of_type(INGRESS) if r.inputs.get("referencedSecurityGroupId") == sg.id]
    assert grant.inputs["securityGroupId"] == db_sg and (grant.inputs["fromPort"], grant.inputs["toPort"]) == (5432, 5432)
    assert graph.by_urn(grant.parent).type == "pghome:database:Database"


def test_private_subnets_and_outputs_the_tunnel_reads(graph: Graph) -> None:
    out = graph.outputs
    assert out["dbAccessSubnetIds"] == out["privateSubnetIds"]
    assert not set(out["dbAccessSubnetIds"]) & set(out["publicSubnetIds"])
    for subnet in out["dbAccessSubnetIds"]:
        assert graph.by_id(subnet).inputs.get("mapPublicIpOnLaunch") in (None, False)  # type: ignore[union-attr]
    target = AccessTarget.from_outputs(out, graph.stack)
    assert target.cluster == one_child(graph, CLUSTER).inputs["name"] == f"shop-{graph.stack}-db-access"
    assert target.task_definition_arn == one_child(graph, TASKDEF).state["arn"]
    assert target.security_group_id == one_child(graph, SG).id
    assert (target.db_host, target.db_port, target.container) == (out["dbAddress"], 5432, CONTAINER_NAME)
    assert set(OUTPUT_KEYS.values()) <= set(out)


def test_exec_sessions_encrypted_and_logged(graph: Graph) -> None:
    cluster = one_child(graph, CLUSTER)
    key = one_child(graph, KEY)
    exec_logs = one_child(graph, LOG_GROUP, "-logs-exec")
    cfg = cluster.inputs["configuration"]["executeCommandConfiguration"]
    assert cfg == {
        "kmsKeyId": key.state["arn"],
        "logging": "OVERRIDE",
        "logConfiguration": {"cloudWatchLogGroupName": exec_logs.inputs["name"], "cloudWatchEncryptionEnabled": True},
    }
    for group in children(graph, LOG_GROUP):
        assert group.inputs["kmsKeyId"] == key.state["arn"] and group.inputs["retentionInDays"] > 0
    assert key.inputs["enableKeyRotation"] is True
    principals = [s.get("Principal", {}).get("Service") for s in json.loads(key.inputs["policy"])["Statement"] if isinstance(s.get("Principal"), dict)]
    assert "logs.eu-west-1.amazonaws.com" in principals


def test_iam_least_privilege(graph: Graph) -> None:
    key = one_child(graph, KEY)
    exec_logs, task_logs = one_child(graph, LOG_GROUP, "-logs-exec"), one_child(graph, LOG_GROUP, "-logs-task")
    task_role, execution_role = one_child(graph, ROLE, "-task-role"), one_child(graph, ROLE, "-execution-role")
    td = one_child(graph, TASKDEF)
    assert td.inputs["taskRoleArn"] == task_role.state["arn"] and td.inputs["executionRoleArn"] == execution_role.state["arn"]
    policies = {p.inputs["role"]: p for p in children(graph, ROLE_POLICY)}
    assert set(policies) == {task_role.id, execution_role.id}
    task = statements(policies[task_role.id].inputs["policy"])
    assert {sid: (sorted(as_list(s["Action"])), as_list(s["Resource"])) for sid, s in task.items()} == {
        "EcsExecChannels": (sorted(EXEC_CHANNEL_ACTIONS), ["*"]),
        "EcsExecSessionKey": (["kms:Decrypt"], [key.state["arn"]]),
        "EcsExecFindLogGroup": (["logs:DescribeLogGroups"], ["*"]),
        "EcsExecSessionLogs": (["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"], [f"{exec_logs.state['arn']}:*"]),
    }
    assert sorted(EXEC_CHANNEL_ACTIONS) == ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                                            "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
    execution = statements(policies[execution_role.id].inputs["policy"])
    cache_repo = one_child(graph, REPO)
    assert {sid: (sorted(as_list(s["Action"])), as_list(s["Resource"])) for sid, s in execution.items()} == {
        "WriteTaskLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], [f"{task_logs.state['arn']}:*"]),
        # the cache repository only: pull, and let the first pull import the upstream image; no CreateRepository
        "PullAccessImage": (["ecr:BatchGetImage", "ecr:BatchImportUpstreamImage", "ecr:GetDownloadUrlForLayer"], [cache_repo.state["arn"]]),
        "EcrLogin": (["ecr:GetAuthorizationToken"], ["*"]),
    }
    for role in (task_role, execution_role):
        (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
        assert not role.inputs.get("managedPolicyArns")


def test_off_switch_removes_the_path_and_its_grant() -> None:
    g = run_stack("dev", {"dbAccess": False})
    assert not g.of_type(COMPONENT)
    assert not [k for k in g.outputs if k.startswith("dbAccess")]
    assert not [r for r in g.of_type(INGRESS) if "db-access" in r.name]
    assert not [r for r in g.of_type(CLUSTER) if r.inputs["name"].endswith("-db-access")]


def test_admin_cidrs_must_lie_inside_the_vpc() -> None:
    assert_config_error("dev", {"dbAdminCidrs": ["10.99.0.0/24"]}, "pghome:dbAdminCidrs", "'10.99.0.0/24'", "inside vpcCidr 10.20.0.0/16",
                        "no route out of the VPC", "python -m bootstrap tunnel")
    assert_config_error("prod", {"dbAdminCidrs": ["10.30.1.0/24", "192.168.0.0/24"]}, "'192.168.0.0/24'", "inside vpcCidr 10.30.0.0/16")
    assert_config_error("dev", {"dbAccess": "sometimes"}, "pghome:dbAccess")
    g = run_stack("dev", {"dbAdminCidrs": ["10.20.240.0/24"]})
    db_sg = g.outputs["dbSecurityGroupId"]
    assert [r.inputs["cidrIpv4"] for r in g.of_type(INGRESS) if r.inputs["securityGroupId"] == db_sg and r.inputs.get("cidrIpv4")] == ["10.20.240.0/24"]


def test_controls_cover_the_access_path(dev_graph: Graph, prod_graph: Graph) -> None:
    prod = plan.check_graph(prod_graph)
    assert prod.result("PGH.4").status == PASS and prod.result("PGH.4").checked == 1  # prod: only the access cluster has exec
    assert prod.result("PGH.5").status == PASS
    dev = plan.check_graph(dev_graph)
    # dev's app cluster allows exec too, now also under its own CMK and logged (issue 16): both pass
    assert dev.result("PGH.4").status == PASS and dev.result("PGH.4").checked == 2
    for cid in ("ECS.4", "ECS.5", "ECS.8", "ECS.9", "PGH.2", "KMS.2", "KMS.4", "IAM.1", "IAM.21", "PGH.3"):
        assert prod.result(cid).status == PASS, cid


def test_controls_catch_a_weakened_access_path(prod_graph: Graph) -> None:
    def broaden(g: Graph) -> None:
        policy = next(p for p in g.of_type(ROLE_POLICY) if p.name == "shop-prod-dbaccess-task-policy")
        doc = json.loads(policy.inputs["policy"])
        doc["Statement"].append({"Sid": "Oops", "Effect": "Allow", "Action": "ssm:StartSession", "Resource": "*"})
        policy.inputs["policy"] = json.dumps(doc)

    report = plan.check_graph(cg.mutated(prod_graph, broaden))
    assert report.result("PGH.5").status == FAIL
    assert [f.resource for f in report.result("PGH.5").findings] == ["shop-prod-dbaccess-task-policy"]

    def log_default(g: Graph) -> None:
        cluster = next(c for c in g.of_type(CLUSTER) if c.name == "shop-prod-dbaccess-cluster")
        cluster.inputs["configuration"]["executeCommandConfiguration"]["logging"] = "DEFAULT"

    report = plan.check_graph(cg.mutated(prod_graph, log_default))
    assert report.result("PGH.4").status == FAIL

    def writable_root(g: Graph) -> None:
        cg.set_container(g, "shop-prod-dbaccess-task", readonlyRootFilesystem=False)

    report = plan.check_graph(cg.mutated(prod_graph, writable_root))
    assert report.result("ECS.5").status == FAIL
