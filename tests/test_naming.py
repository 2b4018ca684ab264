"""The naming rule (config/naming.py) on the real graphs: replace-on-change never meets a
duplicate name, generated names where AWS replaces, stable names where users depend on them,
and every name checked against its AWS limit before any resource exists."""

from __future__ import annotations

from typing import Any

import pytest

from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from config import naming
from config.load import ConfigError, load_settings
from config.stack_file import stack_config
from tests.helpers import assert_config_error


def _fixed_names(graph: Graph) -> list[tuple[Resource, str]]:
    return [(r, n) for r in graph if r.custom and r.type in naming.FORCE_NEW and (n := naming.physical_name(r.type, r.inputs)) is not None]


# --- which resources get which kind of name ------------------------------------------------------------


def test_every_created_type_has_its_replace_on_change_inputs_encoded(graph: Graph) -> None:
    """A new resource type must be classified before it ships: which inputs replace it."""
    named = {r.type for r in graph if r.custom and (any(k in r.inputs for k in ("name", "namePrefix", "identifier")) or r.type == "aws:s3/bucket:Bucket")}
    unnamed_ok = {"aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:ecr/lifecyclePolicy:LifecyclePolicy", "aws:route53/record:Record",
                  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
                  "aws:rds/parameterGroup:ParameterGroup"}
    missing = sorted(t for t in named if t not in naming.FORCE_NEW and t not in unnamed_ok and not t.startswith(("postgresql:", "random:")))
    assert not missing, f"add these types to naming.FORCE_NEW: {missing}"


def test_replaceable_resources_get_generated_names(graph: Graph) -> None:
    generated = [r for r in graph if r.type in naming.GENERATED]
    assert {r.type for r in generated} == set(naming.GENERATED)
    for r in generated:
        assert "name" not in r.inputs, f"{r.name} ({r.type}) has a fixed name {r.inputs['name']!r}"
        prefix = r.inputs.get("namePrefix")
        if r.type == "aws:lb/targetGroup:TargetGroup":
            assert prefix is None  # name_prefix may be 6 chars at most: Pulumi autonames it (<= 32)
            assert len(r.state["name"]) <= 32
        else:
            assert prefix and prefix.startswith(f"shop-{graph.stack}-") and prefix.endswith("-"), (r.name, prefix)
    roles = [r for r in generated if r.type == "aws:iam/role:Role"]
    assert roles and all(len(r.inputs["namePrefix"]) <= naming.IAM_ROLE_NAME_PREFIX_MAX for r in roles)
    assert all(len(r.state["name"]) <= 64 for r in roles)


def test_stable_names_where_users_depend_on_them(graph: Graph) -> None:
    p = f"shop-{graph.stack}"
    names = {n for _, n in _fixed_names(graph)}
    expected = {p, f"{p}-app", "/ecs/" + p + "/app", f"/vpc/{p}/flow-logs", f"{p}-db", f"{p}/db/master", f"{p}-alb",
                f"/aws/rds/instance/{p}-db/postgresql", f"/aws/rds/instance/{p}-db/upgrade", f"{p}/db/app", f"{p}/db/migrator"}
    assert expected <= names, expected - names
    if graph.stack == "prod":
        assert {f"{p}-web", f"aws-waf-logs-{p}"} <= names


# --- replace-on-change never collides ------------------------------------------------------------------


def test_fixed_name_resources_only_replace_on_pinned_inputs(graph: Graph) -> None:
    """For each resource with a fixed name, every other replace-on-change input it sets is pinned
    (a constant or another stable resource): changing it is not something config can do."""
    for r, physical in _fixed_names(graph):
        if r.type in naming.SCOPED_NAMES:
            continue
        forcing = {p for p in naming.FORCE_NEW[r.type] if p in r.inputs and p not in ("name", "namePrefix", "bucket", "bucketPrefix", "identifier")}
        unpinned = forcing - set(naming.PINNED.get(r.type, {}))
        assert not unpinned, f"{r.name} ({physical}) would be replaced under the same name when {sorted(unpinned)} change"


def _replacements(before: Graph, after: Graph) -> list[tuple[Resource, Resource, set[str]]]:
    old = {r.urn: r for r in before if r.custom}
    out = []
    for r in after:
        b = old.get(r.urn)
        if b is None or r.type not in naming.FORCE_NEW:
            continue
        changed = {p for p in naming.FORCE_NEW[r.type] if b.inputs.get(p) != r.inputs.get(p) and p not in ("name", "namePrefix")}
        if changed:
            out.append((b, r, changed))
    return out


# Config changes that replace resources, each with the types it must replace (so the loop below
# always has something to check). Mutation tried: the replacement case {"healthCheckPath": ...}
# that replaced nothing used to pass through an empty loop; now every case names its types and the
# in-place case is its own test below.
PERTURBATIONS: list[tuple[dict[str, Any], set[str]]] = [
    ({"containerPort": 8080}, {"aws:lb/targetGroup:TargetGroup"}),  # target group port
    ({"dbEngineVersion": "17"}, {"aws:rds/parameterGroup:ParameterGroup"}),  # parameter group family
    ({"vpcCidr": "10.21.0.0/16"}, {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet"}),  # subnets
]


@pytest.mark.parametrize(("overrides", "types"), PERTURBATIONS, ids=[",".join(o) for o, _ in PERTURBATIONS])
def test_config_changes_replace_without_name_collisions(dev_graph: Graph, overrides: dict[str, Any], types: set[str]) -> None:
    replaced = _replacements(dev_graph, run_stack("dev", overrides))
    assert {now.type for _, now, _ in replaced} == types
    for before, now, changed in replaced:
        # Pulumi creates the replacement before deleting the old one: same fixed name = "already exists".
        fixed = naming.physical_name(now.type, now.inputs)
        assert fixed is None or fixed != naming.physical_name(before.type, before.inputs) or now.delete_before_replace, (
            f"{now.name} is replaced ({sorted(changed)}) under the same name {fixed!r}"
        )


def test_health_check_and_task_size_change_in_place(dev_graph: Graph) -> None:
    """A new health check path or task size updates the target group and the task definition in
    place: nothing with a fixed name is replaced."""
    assert _replacements(dev_graph, run_stack("dev", {"healthCheckPath": "/ready", "taskCpu": 512, "taskMemory": 1024})) == []


def test_target_group_port_change_is_a_replacement_with_a_new_name(dev_graph: Graph) -> None:
    after = run_stack("dev", {"containerPort": 8080})
    (before, now, changed) = next(x for x in _replacements(dev_graph, after) if x[1].type == "aws:lb/targetGroup:TargetGroup")
    assert changed == {"port"}
    assert "name" not in now.inputs  # autonamed: the replacement gets a fresh name


def test_description_change_of_a_security_group_or_parameter_group_gets_a_new_name(graph: Graph) -> None:
    for r in graph:
        if r.type in ("aws:ec2/securityGroup:SecurityGroup", "aws:rds/parameterGroup:ParameterGroup"):
            assert "description" in naming.FORCE_NEW[r.type]
            assert naming.physical_name(r.type, r.inputs) is None and r.inputs["namePrefix"]


def test_rds_master_username_change_is_the_one_pinned_replacement(dev_graph: Graph) -> None:
    after = run_stack("dev", {"dbMasterUsername": "shop_admin2"})
    (before, now, changed) = next(x for x in _replacements(dev_graph, after) if x[1].type == "aws:rds/instance:Instance")
    assert changed == {"username"} and "username" in naming.PINNED["aws:rds/instance:Instance"]


# --- names checked against AWS limits before any resource ----------------------------------------------


def _load(stack: str, **overrides: Any) -> None:
    load_settings(stack_config("dev", overrides), stack=stack, check_credentials=False)


@pytest.mark.parametrize(
    ("stack", "fragments"),
    [
        ("production-eu-west-1-blue", ["the load balancer name 'shop-production-eu-west-1-blue-alb' is 34 chars (max 32)"]),
        ("Prod", ["the S3 bucket name", "the RDS DB identifier name 'shop-Prod-db' has characters AWS rejects"]),
        ("prod_eu", ["the load balancer name 'shop-prod_eu-alb' has characters AWS rejects", "the RDS DB identifier name 'shop-prod_eu-db'"]),
    ],
)
def test_bad_final_names_are_one_error_naming_appname(stack: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(stack)
    assert len(exc.value.problems) == 1
    message = exc.value.problems[0]
    assert message.startswith("pghome:appName = 'shop' is invalid: with stack") and "choose a shorter appName" in message
    for f in fragments:
        assert f in message


def test_good_names_pass() -> None:
    assert naming.name_problems("shop", "dev", "eu-west-1") == []
    assert naming.name_problems("a" * 20, "prod", "ap-southeast-3") == []
    _load("staging")


def test_names_of_exactly_the_aws_limit_pass_and_one_past_fails() -> None:
    """The stack name that makes the load balancer name exactly 32 chars passes; one more char fails.
    Mutation tried: `len(name) > rule.max_length` -> `>=` in config/naming.py (this failed)."""
    assert len(naming.alb(naming.prefix("shop", "s" * 23))) == 32
    assert naming.name_problems("shop", "s" * 23, "eu-west-1") == []
    assert naming.name_problems("shop", "s" * 24, "eu-west-1") == [
        f"the load balancer name 'shop-{'s' * 24}-alb' is 33 chars (max 32)"
    ]


# The limits as AWS documents them (written here, not read from config/naming.py, so a wrong limit
# there fails): S3 bucket naming rules; ELBv2 CreateLoadBalancer Name; RDS DBInstanceIdentifier;
# ECR CreateRepository repositoryName; ECS CreateCluster/CreateService; CloudWatch Logs CreateLogGroup;
# Secrets Manager CreateSecret Name; WAFv2 CreateWebACL Name; KMS CreateAlias AliasName (256 minus
# "alias/"); IAM role name 64 minus the 26 characters Pulumi appends to a name prefix;
# RDS parameter group name 255 minus the 26 characters of the generated suffix.
AWS_LIMITS = {"s3": 63, "alb": 32, "rds": 63, "ecr": 256, "ecs": 255, "logs": 512, "secret": 512, "waf": 128,
              "kms_alias": 250, "iam_prefix": 38, "rds_prefix": 229,
              # SNS CreateTopic Name; CloudWatch PutMetricAlarm AlarmName; EventBridge PutRule Name;
              # RDS CreateEventSubscription SubscriptionName
              "sns": 256, "alarm": 255, "events": 64, "rds_events": 255,
              # ECR CreatePullThroughCacheRule ecrRepositoryPrefix (issue 28 item 7)
              "ecr_ptc": 30}


def test_every_name_rule_has_its_aws_limit_written_here() -> None:
    assert sorted(AWS_LIMITS) == sorted(naming.RULES)


@pytest.mark.parametrize("key", sorted(AWS_LIMITS))
def test_every_rule_accepts_its_limit_and_rejects_one_past(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rule on its own: a valid name of exactly the AWS limit has no problem, one char more is
    reported with both numbers. Mutations tried: `len(name) > rule.max_length` -> `>=`, and the S3
    limit 63 -> 64 in config/naming.py; each failed here."""
    rule = naming.RULES[key]
    assert rule.max_length == AWS_LIMITS[key]
    tail = "-" if key == "rds_prefix" else "a"  # the prefix rule requires the trailing hyphen

    def problems_of(length: int) -> list[str]:
        name = "a" * (length - 1) + tail
        monkeypatch.setattr(naming, "planned_names", lambda *_a: [(key, name)])
        return naming.name_problems("shop", "dev", "eu-west-1")

    assert problems_of(rule.max_length) == []
    over = problems_of(rule.max_length + 1)
    assert len(over) == 1 and f"is {rule.max_length + 1} chars (max {rule.max_length})" in over[0], over


def test_long_region_drops_from_the_bucket_name_only_when_needed() -> None:
    assert naming.access_log_bucket("shop-dev", "123456789012", "eu-west-1") == "shop-dev-alb-logs-123456789012-eu-west-1"
    long = naming.access_log_bucket("a" * 20 + "-staging", "123456789012", "ap-southeast-3")
    assert long == "a" * 20 + "-staging-alb-logs-123456789012" and len(long) <= 63


def test_az_count_one_and_small_storage_ceiling_rejected_before_any_resource() -> None:
    assert_config_error("dev", {"azCount": 1}, "pghome:azCount", "from 2 to 6")
    assert_config_error("dev", {"dbAllocatedStorageGb": 100, "dbMaxAllocatedStorageGb": 109}, "pghome:dbMaxAllocatedStorageGb", "110%")
    _load("dev", dbAllocatedStorageGb=100, dbMaxAllocatedStorageGb=110)


# --- destroy -> up ---------------------------------------------------------------------------------------


def test_recreate_outside_prod_prod_keeps_protections(dev_graph: Graph, prod_graph: Graph) -> None:
    """A destroyed dev stack can be brought up again with the same names: its secrets go at once
    (no recovery window holding the names); prod keeps 30 days and deletion protection. Both take a
    final snapshot (dev too since issue 28: dbFinalSnapshot) whose identifier is unique per instance
    lifetime, so a second destroy never collides with the first one's snapshot."""
    for graph, window in ((dev_graph, 0), (prod_graph, 30)):
        secrets = graph.of_type("aws:secretsmanager/secret:Secret")
        assert len(secrets) == 3 and {s.inputs["recoveryWindowInDays"] for s in secrets} == {window}
    assert dev_graph.one("aws:rds/instance:Instance").inputs["deletionProtection"] is False
    prod_db = prod_graph.one("aws:rds/instance:Instance")
    assert prod_db.inputs["deletionProtection"] is True and prod_db.protect is True
    for graph, stack in ((dev_graph, "dev"), (prod_graph, "prod")):
        db = graph.one("aws:rds/instance:Instance")
        suffix = graph.one("random:index/randomId:RandomId")
        assert db.inputs["skipFinalSnapshot"] is False
        assert db.inputs["finalSnapshotIdentifier"] == f"shop-{stack}-db-final-{suffix.state['hex']}"
        assert db.property_dependencies["finalSnapshotIdentifier"] == [suffix.urn]
        # the suffix is created with the stack and never replaced by an update (no keepers)
        assert "keepers" not in suffix.inputs and suffix.parent == db.parent


# --- each naming function, written out (fast: these kill mutants before any graph test runs) -----------


def test_stable_names_are_the_documented_ones() -> None:
    """docs/naming.md's names for app shop, stack dev. Added for issue 30: mutation testing found
    these functions checked only through the golden plans."""
    p = naming.prefix("shop", "dev")
    assert p == "shop-dev"
    assert [naming.repository(p), naming.cluster(p), naming.ecs_service(p), naming.task_family(p)] == ["shop-dev", "shop-dev", "shop-dev-app", "shop-dev-app"]
    assert [naming.app_log_group(p), naming.exec_log_group(p), naming.flow_log_group(p), naming.waf_log_group(p)] == [
        "/ecs/shop-dev/app", "/ecs/shop-dev/exec", "/vpc/shop-dev/flow-logs", "aws-waf-logs-shop-dev"]
    assert [naming.db_identifier(p), naming.db_log_group(p, "postgresql"), naming.final_snapshot_prefix(p)] == [
        "shop-dev-db", "/aws/rds/instance/shop-dev-db/postgresql", "shop-dev-db-final"]
    assert [naming.db_secret(p, "app"), naming.master_secret(p), naming.alb(p), naming.waf_acl(p)] == ["shop-dev/db/app", "shop-dev/db/master", "shop-dev-alb", "shop-dev-web"]
    # the bucket keeps the region while the name fits in 63 characters, exactly at 63 too
    at_63 = "p" * (63 - len("-alb-logs-123456789012-eu-west-1"))
    assert naming.access_log_bucket(at_63, "123456789012", "eu-west-1") == f"{at_63}-alb-logs-123456789012-eu-west-1"
    assert naming.access_log_bucket(at_63 + "q", "123456789012", "eu-west-1") == f"{at_63}q-alb-logs-123456789012"


def test_generated_name_prefixes() -> None:
    assert naming.sg_prefix("shop-dev-db") == "shop-dev-db-"
    assert naming.rds_prefix("Shop-dev", "-pg16") == "shop-dev-pg16-"  # lowercase, no '--'
    assert naming.role_prefix("shop-dev", "task") == "shop-dev-task-"
    # at most 38 characters with the trailing hyphen, no '--' where the cut falls on a hyphen
    long = naming.role_prefix("a" * 30 + "-stack", "execution")
    assert long == "a" * 30 + "-stack-" and len(long) == 37
    cut = naming.role_prefix("b" * 36 + "-x", "role")
    assert cut == "b" * 36 + "-" and len(cut) == naming.IAM_ROLE_NAME_PREFIX_MAX - 1
    cut = naming.role_prefix("c" * 40, "role")
    assert cut == "c" * 37 + "-" and len(cut) == naming.IAM_ROLE_NAME_PREFIX_MAX


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"name": "shop-dev-alb"}, "shop-dev-alb"),
        ({"name": "x", "namePrefix": "shop-dev-"}, None),  # a prefix means AWS/Pulumi generates the name
        ({"namePrefix": "shop-dev-"}, None),
        ({"bucket": "b", "namePrefix": "p-"}, "b"),  # the prefix rule is about `name` only
        ({"identifier": "shop-dev-db"}, "shop-dev-db"),
        ({"name": ""}, None),
        ({"name": 5, "identifier": "i"}, "i"),  # not a string (an unresolved Output in a plan): skipped
        ({"description": "d"}, None),
    ],
)
def test_physical_name(inputs: dict[str, object], expected: str | None) -> None:
    assert naming.physical_name("aws:any/type:Type", inputs) == expected


def test_planned_names_are_every_stable_name_of_the_stack() -> None:
    """What name_problems checks, written out: a name left out, or built from the wrong prefix,
    would escape the limit check. Added for issue 30 (mutants of planned_names survived)."""
    assert naming.planned_names("shop", "dev", "eu-west-1") == [
        ("s3", "shop-dev-alb-logs-000000000000-eu-west-1"), ("alb", "shop-dev-alb"), ("rds", "shop-dev-db"),
        ("rds", "shop-dev-db-final-00000000"), ("rds_prefix", "shop-dev-pg16-"), ("ecr", "shop-dev"), ("ecr_ptc", "shop-dev"),
        ("ecs", "shop-dev"), ("ecs", "shop-dev-app"), ("ecs", "shop-dev-app"), ("logs", "/ecs/shop-dev/app"), ("logs", "/vpc/shop-dev/flow-logs"),
        ("logs", "aws-waf-logs-shop-dev"), ("logs", "/aws/rds/instance/shop-dev-db/postgresql"), ("secret", "shop-dev/db/master"),
        ("waf", "shop-dev-web"), ("kms_alias", "shop-dev-waf-logs"), ("sns", "shop-dev-alarms"), ("alarm", "shop-dev-alb-target-5xx-rate"),
        ("events", "shop-dev-ecs-deployment-failed"), ("rds_events", "shop-dev-db-events"), ("iam_prefix", "shop-dev-"),
    ]
