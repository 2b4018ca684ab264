"""Issue 28 item 7: sessions through the access task reach the database only, and the stack
creates the operator policy (its ARNs match the generated names) instead of the docs' copy."""

from __future__ import annotations

import json

from bootstrap.access.ssm_session import AwsCliSessionStarter
from bootstrap.access.tunnel import AccessTarget, SessionRequest
from bootstrap.plan.mockgraph import Graph, Resource
from components.db_access_operator import LOCAL_PORT_PATTERN, operator_statements, session_document


def _one(g: Graph, type_: str) -> Resource:
    (r,) = [r for r in g.resources if r.type == type_ and "dbaccess" in r.name]
    return r


def test_the_stack_document_fixes_host_and_port(graph: Graph) -> None:
    doc = _one(graph, "aws:ssm/document:Document")
    content = json.loads(doc.inputs["content"])
    (db,) = [r for r in graph.resources if r.type == "aws:rds/instance:Instance"]
    assert doc.inputs["documentType"] == "Session" and content["sessionType"] == "Port"
    assert content["properties"]["host"].startswith(db.inputs["identifier"]) and content["properties"]["portNumber"] == str(db.inputs["port"])
    assert set(content["parameters"]) == {"localPortNumber"}  # no host or port parameter to point elsewhere
    assert doc.inputs["name"] == f"{graph.config['pghome:appName']}-{graph.stack}-db-tunnel"


def test_operator_policy_allows_port_forwarding_with_our_document_only(graph: Graph) -> None:
    policy = _one(graph, "aws:iam/policy:Policy")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    start = statements["PortForwardToTheDatabaseOnly"]
    assert start["Action"] == ["ssm:StartSession"]
    assert start["Condition"] == {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
    assert any(r.endswith(":document/" + f"{graph.config['pghome:appName']}-{graph.stack}-db-tunnel") for r in start["Resource"])
    assert not any("AWS-StartPortForwardingSessionToRemoteHost" in r or r.endswith("document/*") for r in start["Resource"])
    every = [r for s in statements.values() for r in s["Resource"]]
    assert "*" not in every
    # the roles passed are the access task's generated ones, not a guessed pattern
    roles = [r for r in graph.resources if r.type == "aws:iam/role:Role" and "dbaccess" in r.name]
    assert set(statements["PassItsRoles"]["Resource"]) == {r.state["arn"] for r in roles}


def test_the_outputs_name_the_document_and_the_policy(graph: Graph) -> None:
    assert graph.outputs["dbAccessSessionDocument"].endswith("-db-tunnel")
    assert ":policy/" in graph.outputs["dbAccessOperatorPolicyArn"]


def test_pure_statements_and_document() -> None:
    doc = session_document("db.example", 6543, "shop-dev")
    assert doc["properties"]["host"] == "db.example" and doc["properties"]["portNumber"] == "6543"
    st = operator_statements(partition="aws", region="eu-west-1", account="123456789012", cluster="c", family="f",
                             document_arn="arn:aws:ssm:eu-west-1:123456789012:document/d", role_arns=["r2", "r1"], key_arn="k")
    assert [s["Sid"] for s in st][:2] == ["RunTheAccessTask", "WatchAndStopIt"] and st[2]["Resource"] == ["r1", "r2"]
    import re

    assert re.fullmatch(LOCAL_PORT_PATTERN, "0") and re.fullmatch(LOCAL_PORT_PATTERN, "65535") and not re.fullmatch(LOCAL_PORT_PATTERN, "65536")


def test_the_tunnel_uses_the_stack_document_with_only_the_local_port() -> None:
    outputs = {"dbAccessCluster": "c", "dbAccessTaskDefinitionArn": "td", "dbAccessSubnetIds": ["s"], "dbAccessSecurityGroupId": "sg",
               "dbAccessContainerName": "access", "dbAddress": "db.example", "dbPort": 5432, "dbAccessSessionDocument": "shop-dev-db-tunnel"}
    target = AccessTarget.from_outputs(outputs)
    assert target.document == "shop-dev-db-tunnel"
    cmd = AwsCliSessionStarter().command(SessionRequest("ecs:c_t_r", "db.example", 5432, 15432, "eu-west-1", document=target.document))
    assert cmd[cmd.index("--document-name") + 1] == "shop-dev-db-tunnel"
    assert json.loads(cmd[cmd.index("--parameters") + 1]) == {"localPortNumber": ["15432"]}
    # a stack deployed before the document existed still opens AWS's document
    del outputs["dbAccessSessionDocument"]
    assert AccessTarget.from_outputs(outputs).document == ""
