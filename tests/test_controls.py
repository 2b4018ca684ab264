"""The FSBP security controls (controls/): every control passes on a secure synthetic
stack, fails on a targeted mutation naming the offending resource, and the real stacks pass."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import controls
from bootstrap.plan import report as plan
from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from controls import ADVISED, ADVISORY, FAIL, MUST_HOLD, NOT_APPLICABLE, PASS, WAIVABLE, WAIVED, Inventory, Res, UndecidedError
from tests import control_graphs as cg
from tests.control_graphs import add, doc, find, mutated, remove, res, secure_stack, set_container, set_input, set_option


def evaluate(g: Graph, waivers: dict[str, str] | None = None) -> controls.Report:
    return controls.evaluate(g.inventory(), stack=g.stack, waivers=waivers or {})


@pytest.fixture(scope="module")
def secure() -> Graph:
    return secure_stack()


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


def test_catalogue_is_well_formed() -> None:
    ids = [c.id for c in controls.CONTROLS]
    assert len(ids) == len(set(ids)), "duplicate control ids"
    assert {c.level for c in controls.CONTROLS} <= {MUST_HOLD, WAIVABLE, ADVISORY}
    for c in controls.CONTROLS:
        assert c.types and c.title, c.id
        if c.level == ADVISORY:
            assert c.note, f"{c.id}: an advisory control must say why it is advisory"
    # The brief's controls are all covered.
    required = """RDS.2 RDS.3 RDS.5 RDS.6 RDS.8 RDS.9 RDS.11 RDS.13 RDS.17 RDS.23 RDS.25 RDS.38 RDS.46 ECS.2 ECS.3 ECS.4 ECS.5 ECS.8
    ECS.9 ECS.10 ECS.12 ECR.1 ECR.2 ECR.3 ELB.1 ELB.4 ELB.5 ELB.6 ELB.12 ELB.17 EC2.2 EC2.6 EC2.15 EC2.18 EC2.19 KMS.1 KMS.2 KMS.4
    IAM.1 SecretsManager.1 PGH.1 PGH.2 PGH.3 PGH.6 WAF.10 WAF.11 WAF.12""".split()
    assert set(required) <= set(ids), set(required) - set(ids)
    # Never-waivable: public DB, encryption, world-open DB/admin ports, secrets in env vars.
    for must in ("RDS.2", "RDS.3", "RDS.38", "RDS.46", "PGH.3", "EC2.18", "EC2.19", "ECS.8", "KMS.4", "PGH.1", "PGH.2", "ECR.5", "WAF.11"):
        assert controls.by_id(must).level == MUST_HOLD, must
    for waivable in ("RDS.5", "RDS.8", "ELB.1", "ELB.6", "PGH.6"):
        assert controls.by_id(waivable).level == WAIVABLE, waivable


def test_secure_stack_passes_every_control_and_checks_something_for_each(secure: Graph) -> None:
    report = evaluate(secure)
    for r in report.results:
        assert r.checked > 0, f"{r.control.id}: the synthetic stack has no {r.control.types}"
        expected = ADVISED if r.control.id == "RDS.23" else PASS
        assert r.status == expected, f"{r.control.id}: {r.status} {[str(f) for f in r.findings]}"
    assert not report.failed


# --------------------------------------------------------------------------------------------
# Negative cases: each mutation makes exactly the named control fail, naming the offender
# --------------------------------------------------------------------------------------------


def _world_ssh_rule(g: Graph) -> None:
    add(g, res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ssh-from-anywhere",
               {"securityGroupId": "sg-service", "cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}))


def _db_open_to_world(g: Graph) -> None:
    add(g, res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "db-from-anywhere",
               {"securityGroupId": "sg-db", "cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432}))


def _db_public_subnet(g: Graph) -> None:
    set_input(g, "db-subnets", "subnetIds", ["subnet-isolated", "subnet-public"])


def _db_nat_subnet(g: Graph) -> None:
    set_input(g, "db-subnets", "subnetIds", ["subnet-private", "subnet-isolated2"])


def _inline_kms_star(g: Graph) -> None:
    set_input(g, "task-policy", "policy", doc({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}))


NEGATIVE: list[tuple[str, str, Callable[[Graph], None]]] = [
    # RDS
    ("RDS.2", "db", lambda g: set_input(g, "db", "publiclyAccessible", True)),
    ("RDS.3", "db", lambda g: set_input(g, "db", "storageEncrypted", False)),
    ("RDS.5", "db", lambda g: set_input(g, "db", "multiAz", False)),
    ("RDS.6", "db", lambda g: set_input(g, "db", "monitoringInterval", 0)),
    ("RDS.8", "db", lambda g: set_input(g, "db", "deletionProtection", False)),
    ("RDS.9", "db", lambda g: set_input(g, "db", "enabledCloudwatchLogsExports", ["postgresql"])),
    ("RDS.10", "db", lambda g: set_input(g, "db", "iamDatabaseAuthenticationEnabled", False)),
    ("RDS.11", "db", lambda g: set_input(g, "db", "backupRetentionPeriod", 1)),
    ("RDS.13", "db", lambda g: set_input(g, "db", "autoMinorVersionUpgrade", False)),
    ("RDS.17", "db", lambda g: set_input(g, "db", "copyTagsToSnapshot", False)),
    ("RDS.25", "db", lambda g: set_input(g, "db", "username", "postgres")),
    ("RDS.36", "db", lambda g: set_input(g, "db", "enabledCloudwatchLogsExports", [])),
    ("RDS.38", "db", lambda g: set_input(g, "db-params", "parameters", [{"name": "rds.force_ssl", "value": "0"}])),
    ("RDS.46", "db", _db_public_subnet),
    ("RDS.46", "db", _db_nat_subnet),
    ("PGH.3", "db", _db_open_to_world),
    ("PGH.3", "db", lambda g: set_input(g, "db-from-vpn", "cidrIpv4", "203.0.113.0/24")),
    # ECS
    ("ECS.2", "service", lambda g: set_input(g, "service", "networkConfiguration.assignPublicIp", True)),
    ("ECS.3", "task", lambda g: set_input(g, "task", "pidMode", "host")),
    ("ECS.4", "task", lambda g: set_container(g, "task", privileged=True)),
    ("ECS.5", "task", lambda g: set_container(g, "task", readonlyRootFilesystem=False)),
    ("ECS.8", "task", lambda g: set_container(g, "task", environment=[{"name": "PGPASSWORD", "value": "hunter2hunter2"}])),
    ("ECS.8", "task", lambda g: set_container(g, "task", environment=[{"name": "DATABASE_URL", "value": "postgres://app:s3cret@db:5432/shop"}])),
    ("ECS.8", "task", lambda g: set_container(g, "task", environment=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "x" * 40}])),
    ("ECS.9", "task", lambda g: set_container(g, "task", logConfiguration=None)),
    ("ECS.10", "service", lambda g: set_input(g, "service", "platformVersion", "1.3.0")),
    ("ECS.12", "cluster", lambda g: set_input(g, "cluster", "settings", [{"name": "containerInsights", "value": "disabled"}])),
    # ECR
    ("ECR.1", "repo", lambda g: set_input(g, "repo", "imageScanningConfiguration.scanOnPush", False)),
    ("ECR.2", "repo", lambda g: set_input(g, "repo", "imageTagMutability", "MUTABLE")),
    ("ECR.3", "repo", lambda g: remove(g, "repo-lifecycle")),
    ("ECR.5", "repo", lambda g: set_input(g, "repo", "encryptionConfigurations", [{"encryptionType": "AES256"}])),
    # ELB
    ("ELB.1", "alb", lambda g: set_input(g, "http", "defaultActions", [{"type": "forward", "targetGroupArn": "tg"}])),
    ("ELB.4", "alb", lambda g: set_input(g, "alb", "dropInvalidHeaderFields", False)),
    ("ELB.5", "alb", lambda g: set_input(g, "alb", "accessLogs", {"bucket": "", "enabled": False})),
    ("ELB.6", "alb", lambda g: set_input(g, "alb", "enableDeletionProtection", False)),
    ("ELB.12", "alb", lambda g: set_input(g, "alb", "desyncMitigationMode", "monitor")),
    ("ELB.17", "https", lambda g: set_input(g, "https", "sslPolicy", "ELBSecurityPolicy-2016-08")),
    ("ELB.17", "https", lambda g: find(g, "https").inputs.pop("sslPolicy")),
    # EC2 / VPC
    ("EC2.2", "vpc", lambda g: set_input(g, "default-sg", "egress", [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}])),
    ("EC2.2", "vpc", lambda g: remove(g, "default-sg")),
    ("EC2.6", "vpc", lambda g: remove(g, "flow-log")),
    ("EC2.15", "public-a", lambda g: set_input(g, "public-a", "mapPublicIpOnLaunch", True)),
    ("EC2.18", "ssh-from-anywhere", _world_ssh_rule),
    ("EC2.18", "alb-sg", lambda g: set_input(g, "alb-sg", "ingress.0", {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]})),
    ("EC2.19", "ssh-from-anywhere", _world_ssh_rule),
    ("EC2.19", "db-from-anywhere", _db_open_to_world),
    # KMS / IAM
    ("KMS.1", "deploy-policy", lambda g: set_input(g, "deploy-policy", "policy", doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}))),
    ("KMS.2", "task-policy", _inline_kms_star),
    ("KMS.2", "task-role", lambda g: set_input(g, "task-role", "inlinePolicies", [{"name": "inline", "policy": doc({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": ["*"]})}])),
    ("KMS.4", "db-key", lambda g: set_input(g, "db-key", "enableKeyRotation", False)),
    ("IAM.1", "deploy-policy", lambda g: set_input(g, "deploy-policy", "policy", doc({"Effect": "Allow", "Action": "*", "Resource": "*"}))),
    ("IAM.1", "task-policy", lambda g: set_input(g, "task-policy", "policy", doc({"Effect": "Allow", "Action": ["*:*"], "Resource": "*"}))),
    ("IAM.21", "deploy-policy", lambda g: set_input(g, "deploy-policy", "policy", doc({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::x"}))),
    # Secrets, logs, S3
    ("PGH.1", "db-master-secret", lambda g: find(g, "db-master-secret").inputs.pop("kmsKeyId")),
    ("SecretsManager.1", "db-master-secret", lambda g: remove(g, "db-master-rotation")),
    ("SecretsManager.1", "db-master-secret", lambda g: set_input(g, "db-master-rotation", "rotationLambdaArn", "")),
    ("SecretsManager.4", "db-master-secret", lambda g: set_input(g, "db-master-rotation", "rotationRules", {"automaticallyAfterDays": 120})),
    ("SecretsManager.4", "db-master-secret", lambda g: remove(g, "db-master-rotation")),
    ("PGH.2", "app-logs", lambda g: set_input(g, "app-logs", "kmsKeyId", "")),
    ("PGH.4", "access-cluster", lambda g: set_input(g, "access-cluster", "configuration.executeCommandConfiguration.logging", "DEFAULT")),
    ("PGH.4", "access-cluster", lambda g: find(g, "access-cluster").inputs["configuration"]["executeCommandConfiguration"].pop("kmsKeyId")),
    ("PGH.4", "access-cluster", lambda g: set_input(g, "access-cluster", "configuration.executeCommandConfiguration.logConfiguration.cloudWatchLogGroupName", "/elsewhere")),
    ("PGH.8", "access-out-endpoints", lambda g: set_input(g, "access-out-endpoints", "cidrIpv4", "0.0.0.0/0")),
    ("PGH.8", "access-sg", lambda g: set_input(g, "access-sg", "egress", [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/8"]}])),
    ("PGH.5", "task-policy", lambda g: set_input(g, "task-policy", "policy", doc({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}))),
    ("S3.8", "alb-logs", lambda g: remove(g, "alb-logs-pab")),
    ("S3.8", "alb-logs", lambda g: set_input(g, "alb-logs-pab", "restrictPublicBuckets", False)),
    ("S3.5", "alb-logs", lambda g: remove(g, "alb-logs-policy")),
    # WAF on the internet-facing ALB, ECS Exec sessions
    ("PGH.6", "alb", lambda g: remove(g, "waf-association")),
    ("PGH.7", "db", lambda g: remove(g, "alarm-db-FreeStorageSpace")),
    ("PGH.7", "alb", lambda g: set_input(g, "alarm-alb-UnHealthyHostCount", "alarmActions", [])),
    ("WAF.10", "web-acl", lambda g: set_input(g, "web-acl", "rules", [])),
    ("WAF.11", "web-acl", lambda g: remove(g, "waf-logging")),
    ("WAF.12", "web-acl", lambda g: set_input(g, "web-acl", "rules.0.visibilityConfig.cloudwatchMetricsEnabled", False)),
    # prod data safety (issue 28): protect, retain on delete, verified TLS of the postgresql provider
    ("DATA.1", "db", lambda g: set_option(g, "db", "protect", False)),
    ("DATA.1", "app-db", lambda g: set_option(g, "app-db", "protect", False)),
    ("DATA.2", "db-key", lambda g: set_option(g, "db-key", "protect", False)),  # retain: tests/test_data_safety.py (the pack cannot see it)
    ("DATA.2", "app-logs", lambda g: set_option(g, "app-logs", "protect", False)),
    ("TLS.1", "pg", lambda g: set_input(g, "pg", "sslmode", "require")),
]


@pytest.mark.parametrize(("control_id", "offender", "change"), NEGATIVE, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(NEGATIVE)])
def test_mutation_fails_the_named_control(secure: Graph, control_id: str, offender: str, change: Callable[[Graph], None]) -> None:
    report = evaluate(mutated(secure, change))
    result = report.result(control_id)
    assert result.status == FAIL, f"{control_id} is {result.status}"
    assert offender in {f.resource for f in result.findings}, [str(f) for f in result.findings]
    assert all(f.control_id == control_id and f.message for f in result.findings)
    rendered = report.render(full=False)
    assert control_id in rendered and offender in rendered and "FAIL" in rendered


def test_every_non_advisory_control_has_a_negative_case() -> None:
    covered = {c for c, _, _ in NEGATIVE}
    missing = [c.id for c in controls.CONTROLS if c.level != ADVISORY and c.id not in covered]
    assert not missing, f"controls never shown to fail: {missing}"
    assert len(NEGATIVE) >= 12


def test_mutations_fail_only_what_they_break(secure: Graph) -> None:
    """Flipping one input fails its control and nothing else (the rules are not entangled)."""
    report = evaluate(mutated(secure, lambda g: set_input(g, "db", "storageEncrypted", False)))
    assert [r.control.id for r in report.failed] == ["RDS.3"]
    report = evaluate(mutated(secure, _db_open_to_world))
    assert sorted(r.control.id for r in report.failed) == ["EC2.18", "EC2.19", "PGH.3"]


def test_advisory_controls_report_but_never_fail(secure: Graph) -> None:
    report = evaluate(secure)
    rds23 = report.result("RDS.23")
    assert rds23.status == ADVISED and "5432" in rds23.findings[0].message and "isolated" in rds23.reason
    assert evaluate(mutated(secure, lambda g: set_input(g, "db", "port", 6432))).result("RDS.23").status == PASS
    assert not report.failed


def test_absent_types_are_not_applicable_not_passed() -> None:
    g = cg.graph([res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"}, id_="vpc-1")])
    report = evaluate(g)
    assert report.result("RDS.2").status == NOT_APPLICABLE and report.result("RDS.2").checked == 0
    assert report.result("ELB.17").status == NOT_APPLICABLE
    # A lone VPC is checked and fails: no adopted default SG, no flow log.
    assert report.result("EC2.2").status == FAIL and report.result("EC2.6").status == FAIL
    assert report.count(PASS) == 0


def test_elb17_only_applies_to_https_listeners(secure: Graph) -> None:
    # The HTTP listener (redirect only) is not an ELB.17 resource: one HTTPS listener is checked.
    assert evaluate(secure).result("ELB.17").checked == 1
    http_only = mutated(secure, lambda g: remove(g, "https"))
    assert evaluate(http_only).result("ELB.17").status == NOT_APPLICABLE


def test_references_by_dependency_and_by_value(secure: Graph) -> None:
    """assoc-isolated2 links subnet and table only through property dependencies; if the DB's
    second subnet had a NAT route on that table, RDS.46 must see it through those URNs."""
    def nat_on_isolated(g: Graph) -> None:
        add(g, res("aws:ec2/route:Route", "isolated-nat", {"routeTableId": "", "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"},
                   deps={"routeTableId": [find(g, "isolated-rt").urn]}))

    report = evaluate(mutated(secure, nat_on_isolated))
    messages = " ".join(f.message for f in report.result("RDS.46").findings)
    assert "isolated-nat" in messages and "isolated2-a" in messages and "natGatewayId" in messages


# --------------------------------------------------------------------------------------------
# Waivers
# --------------------------------------------------------------------------------------------


def test_waiver_turns_a_waivable_failure_into_waived_with_its_reason(secure: Graph) -> None:
    g = mutated(secure, lambda g: set_input(g, "db", "multiAz", False))
    report = evaluate(g, {"RDS.5": "dev runs single-AZ to save cost"})
    result = report.result("RDS.5")
    assert result.status == WAIVED and result.reason == "dev runs single-AZ to save cost"
    assert not report.failed
    assert "waived: dev runs single-AZ to save cost" in report.render(full=False)


def test_must_hold_controls_ignore_waivers(secure: Graph) -> None:
    g = mutated(secure, lambda g: set_input(g, "db", "publiclyAccessible", True))
    report = evaluate(g, {"RDS.2": "I really want a public database"})
    assert report.result("RDS.2").status == FAIL
    assert [r.control.id for r in report.must_hold_failed] == ["RDS.2"]
    assert any("RDS.2 is a must-hold control" in n for n in report.waiver_notes)


def test_unused_waiver_is_reported(secure: Graph) -> None:
    report = evaluate(secure, {"RDS.5": "dev runs single-AZ to save cost"})
    assert report.result("RDS.5").status == PASS
    assert report.waiver_notes == ["waiver RDS.5 is unused: the control is PASS"]


def test_config_rejects_unknown_and_must_hold_waivers() -> None:
    from tests.helpers import assert_config_error

    assert_config_error("dev", {"securityWaivers": ["RDS.2=the database must be public for the demo"]}, "securityWaivers", "RDS.2 is a must-hold control")
    assert_config_error("dev", {"securityWaivers": ["FOO.1=this control does not exist at all"]}, "FOO.1 is not a control this project checks")
    assert_config_error("prod", {"securityWaivers": ["RDS.5=prod would like to save money"]}, "prod cannot waive")


# --------------------------------------------------------------------------------------------
# Unknown values (preview) make a check undecided, never a verdict
# --------------------------------------------------------------------------------------------


def test_unknown_input_is_undecided() -> None:
    r = Res(urn="u", type="aws:rds/instance:Instance", name="db", inputs={"storageEncrypted": controls.UNKNOWN, "publiclyAccessible": False})
    with pytest.raises(UndecidedError):
        r.get("storageEncrypted")
    report = controls.evaluate(Inventory([r]))
    assert report.result("RDS.2").status == PASS
    rds3 = report.result("RDS.3")
    assert rds3.status != FAIL and rds3.undecided and "storageEncrypted" in rds3.undecided[0]


# --------------------------------------------------------------------------------------------
# The real stacks
# --------------------------------------------------------------------------------------------


def _expected_components(graph: Graph) -> set[str]:
    return {r.type for r in graph.resources if not r.custom}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_real_stack_passes_every_control_its_components_make_checkable(stack: str, dev_graph: Graph, prod_graph: Graph) -> None:
    """For every component wired into the stack, each control on that component's resources
    checked at least one resource and passed (prod) or passed/was waived (dev). Meaningful after
    integration: when the database, registry and service are wired, their controls are asserted."""
    g = dev_graph if stack == "dev" else prod_graph
    report = plan.check_graph(g)
    assert not report.failed, report.render(full=False)
    wired = _expected_components(g)
    assert controls.NETWORK in wired
    allowed = {PASS, ADVISED} if stack == "prod" else {PASS, ADVISED, WAIVED}
    for r in report.results:
        if r.control.component in wired and not (stack == "dev" and r.control.condition):
            assert r.checked > 0, f"{stack}: {r.control.component} is wired but {r.control.id} checked no {' / '.join(r.control.types)}"
            assert r.status in allowed, f"{stack}: {r.control.id} is {r.status}"
    if stack == "prod":
        assert report.count(WAIVED) == 0


def test_prod_network_controls_checked(prod_graph: Graph) -> None:
    report = plan.check_graph(prod_graph)
    for cid in ("EC2.2", "EC2.6", "EC2.15", "EC2.18", "EC2.19", "KMS.2", "KMS.4", "IAM.1", "PGH.2"):
        assert report.result(cid).status == PASS and report.result(cid).checked > 0, cid
    assert report.result("EC2.15").checked == 9  # 3 tiers x 3 AZs


def test_dev_waivers_are_declared_and_waivable(dev_graph: Graph) -> None:
    from config.load import load_settings

    waivers = load_settings(dev_graph.config, stack="dev").security.waivers
    # dev's app cluster passes PGH.4 now (exec sessions under a CMK, logged); it waives only the WAF (PGH.6)
    assert set(waivers) == {"RDS.5", "RDS.8", "ELB.1", "ELB.6", "PGH.6"}
    assert all(controls.by_id(w).level == WAIVABLE for w in waivers)


def _first(g: Graph, type_: str) -> Resource:
    return next(r for r in g.resources if r.type == type_)


def _real_public_subnet(g: Graph) -> str:
    subnet = _first(g, "aws:ec2/subnet:Subnet")
    subnet.inputs["mapPublicIpOnLaunch"] = True
    return subnet.name


def _real_no_flow_log(g: Graph) -> str:
    g.resources.remove(_first(g, "aws:ec2/flowLog:FlowLog"))
    return _first(g, "aws:ec2/vpc:Vpc").name


def _real_default_sg_rule(g: Graph) -> str:
    _first(g, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs["ingress"] = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]
    return _first(g, "aws:ec2/vpc:Vpc").name


def _real_rotation_off(g: Graph) -> str:
    key = _first(g, "aws:kms/key:Key")
    key.inputs["enableKeyRotation"] = False
    return key.name


def _real_kms_star(g: Graph) -> str:
    policy = _first(g, "aws:iam/rolePolicy:RolePolicy")
    policy.inputs["policy"] = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
    return policy.name


def _real_log_group_plain(g: Graph) -> str:
    group = _first(g, "aws:cloudwatch/logGroup:LogGroup")
    group.inputs.pop("kmsKeyId")
    return group.name


@pytest.mark.parametrize(
    ("control_id", "change"),
    [("EC2.15", _real_public_subnet), ("EC2.6", _real_no_flow_log), ("EC2.2", _real_default_sg_rule), ("KMS.4", _real_rotation_off),
     ("KMS.2", _real_kms_star), ("IAM.21", _real_kms_star), ("PGH.2", _real_log_group_plain)],
)
def test_real_dev_graph_mutation_fails(dev_graph: Graph, control_id: str, change: Callable[[Graph], str]) -> None:
    g = cg.mutated(dev_graph, lambda _g: None)
    offender = change(g)
    result = plan.check_graph(g).result(control_id)
    assert result.status == FAIL and offender in {f.resource for f in result.findings}, [str(f) for f in result.findings]


def test_real_prod_endpoint_sg_opened_to_world_fails_ec2_18() -> None:
    # prod with its interface endpoints on (the stack file leaves them off: issue 23 item 9)
    g = cg.mutated(run_stack("prod", {"interfaceEndpoints": "true"}), lambda _g: None)
    rule = next(r for r in g.resources if r.name.endswith("-endpoints-https"))
    rule.inputs["cidrIpv4"] = "0.0.0.0/0"  # HTTPS only: an authorised port, so EC2.18 still passes ...
    assert plan.check_graph(g).result("EC2.18").status == PASS
    rule.inputs.update(fromPort=0, toPort=65535)  # ... every port does not
    report = plan.check_graph(g)
    assert report.result("EC2.18").status == FAIL and report.result("EC2.19").status == FAIL
    assert rule.name in {f.resource for f in report.result("EC2.19").findings}


def test_docs_list_every_control_with_its_class() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "security-controls.md").read_text()
    for c in controls.CONTROLS:
        assert f"| {c.id} | {c.title} | **{c.level}** |" in text, f"docs/security-controls.md is stale for {c.id}"
