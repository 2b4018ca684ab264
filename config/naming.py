"""The naming rule, in one place (pure functions, no Pulumi import).

Two kinds of physical names:

* **Stable names** where people and tools depend on them: the ECR repository (`docker push`),
  the ECS cluster and service (`aws ecs ...`, `release`), log groups (dashboards, `aws logs tail`),
  secrets (apps and rotation find them by name), the DB identifier (snapshots, console), KMS
  aliases, the ALB and the access-log bucket, the web ACL. For each of these, the only inputs that
  force a replacement are the name itself or constants of this program, so a replacement always
  comes with a new name (see `FORCE_NEW` and tests/test_naming.py).
* **Generated names** for everything AWS replaces when a property changes and whose name is no
  contract: target groups, security groups, RDS parameter and subnet groups, IAM roles. These get
  `name_prefix` (or Pulumi autonaming where AWS allows only a tiny prefix), so Pulumi's
  create-before-delete replacement never meets "already exists", and IAM role names (global per
  account) never collide between the same stack in two regions.

`name_problems` checks every stable name the stack will create against its AWS limits, given the
app and stack names, before any resource exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ACCOUNT_ID_LENGTH = 12


# --- stable names -------------------------------------------------------------------------------


# The tag `python -m bootstrap release` adds to an image it puts into service; the repository's
# lifecycle policy keeps every image carrying one (components/registry.py).
RELEASED_TAG_PREFIX = "released-"

def prefix(app_name: str, stack: str) -> str:
    return f"{app_name}-{stack}"


def repository(p: str) -> str:
    return p


def pull_through_prefix(p: str) -> str:
    """The ECR pull-through cache namespace of the access task's image (components/db_access_image.py):
    the stack prefix itself, so its repositories are '<prefix>/<upstream path>' beside the app's
    repository '<prefix>'. ECR allows 30 characters here, and the load balancer's 32 ('<prefix>-alb')
    already bound the prefix to 28, so every valid stack fits."""
    return p


def cluster(p: str) -> str:
    return p


def ecs_service(p: str) -> str:
    return f"{p}-app"


# The containers of the app's task definitions: the service's, and the one-off migration's.
APP_CONTAINER = "app"
MIGRATE_CONTAINER = "migrate"


def migration_family(p: str) -> str:
    """The task definition family `release` runs the migration command from."""
    return f"{p}-migrate"


def release_table(p: str) -> str:
    """The DynamoDB table of the stack's release records and migration lock."""
    return f"{p}-releases"


def task_family(p: str) -> str:
    return f"{p}-app"


def app_log_group(p: str) -> str:
    return f"/ecs/{p}/app"


def exec_log_group(p: str) -> str:
    return f"/ecs/{p}/exec"


def rotation_function(p: str) -> str:
    return f"{p}-db-rotation"


def rotation_log_group(p: str) -> str:
    # Lambda's default group name; the function logs there (components/rotation_function.py).
    return f"/aws/lambda/{rotation_function(p)}"


def flow_log_group(p: str) -> str:
    return f"/vpc/{p}/flow-logs"


def db_identifier(p: str) -> str:
    return f"{p}-db"


def db_log_group(p: str, kind: str) -> str:
    return f"/aws/rds/instance/{db_identifier(p)}/{kind}"


def db_secret(p: str, role: str) -> str:
    """Secrets Manager name of a database credential ('master', or a login role of the model)."""
    return f"{p}/db/{role}"


def master_secret(p: str) -> str:
    return db_secret(p, "master")


def alb(p: str) -> str:
    return f"{p}-alb"


def access_log_bucket(p: str, account_id: str, region: str) -> str:
    """Globally unique: account and region in the name; the region is dropped when it does not fit."""
    full = f"{p}-alb-logs-{account_id}-{region}"
    return full if len(full) <= 63 else f"{p}-alb-logs-{account_id}"


def waf_acl(p: str) -> str:
    return f"{p}-web"


def waf_log_group(p: str) -> str:
    # WAF accepts only log groups whose name starts with aws-waf-logs-.
    return f"aws-waf-logs-{p}"


def final_snapshot_prefix(p: str) -> str:
    return f"{db_identifier(p)}-final"


# --- generated names (prefixes) -------------------------------------------------------------------

IAM_ROLE_NAME_PREFIX_MAX = 38  # role names are <= 64 chars; the provider appends 26
RDS_NAME_PREFIX_MAX = 229  # 255 - 26


def role_prefix(p: str, purpose: str) -> str:
    """`name_prefix` of an IAM role: purpose first so the prefix survives truncation readable."""
    return f"{p}-{purpose}"[: IAM_ROLE_NAME_PREFIX_MAX - 1].rstrip("-") + "-"


def sg_prefix(name: str) -> str:
    return f"{name}-"


def rds_prefix(p: str, purpose: str) -> str:
    """Parameter and subnet groups: lowercase, and no '--' (RDS rejects it)."""
    return re.sub(r"-+", "-", f"{p}-{purpose}-".lower())


# --- what forces a replacement ---------------------------------------------------------------------

# For every resource type the program creates: the inputs (as recorded, camelCase) whose change
# makes the provider replace the resource. From the pulumi-aws (terraform-provider-aws) schemas'
# ForceNew flags; only the inputs this program sets are listed.
FORCE_NEW: Mapping[str, frozenset[str]] = {
    "aws:ec2/vpc:Vpc": frozenset({"cidrBlock"}),
    "aws:ec2/subnet:Subnet": frozenset({"cidrBlock", "vpcId", "availabilityZone"}),
    "aws:lb/targetGroup:TargetGroup": frozenset({"name", "namePrefix", "port", "protocol", "vpcId", "targetType"}),
    "aws:lb/loadBalancer:LoadBalancer": frozenset({"name", "internal", "loadBalancerType"}),
    "aws:ec2/securityGroup:SecurityGroup": frozenset({"name", "namePrefix", "description", "vpcId"}),
    "aws:rds/parameterGroup:ParameterGroup": frozenset({"name", "namePrefix", "family", "description"}),
    "aws:rds/subnetGroup:SubnetGroup": frozenset({"name", "namePrefix"}),
    "aws:rds/instance:Instance": frozenset({"identifier", "engine", "kmsKeyId", "storageEncrypted", "username", "dbName", "characterSetName"}),
    "aws:iam/role:Role": frozenset({"name", "namePrefix", "path"}),
    "aws:lambda/function:Function": frozenset({"name", "packageType"}),
    "aws:iam/rolePolicy:RolePolicy": frozenset({"name", "role"}),
    "aws:ecr/repository:Repository": frozenset({"name", "encryptionConfigurations"}),
    "aws:ecs/cluster:Cluster": frozenset({"name"}),
    "aws:ecs/service:Service": frozenset({"name", "cluster", "launchType", "schedulingStrategy"}),
    "aws:cloudwatch/logGroup:LogGroup": frozenset({"name", "namePrefix", "logGroupClass"}),
    "aws:secretsmanager/secret:Secret": frozenset({"name", "namePrefix"}),
    "aws:s3/bucket:Bucket": frozenset({"bucket", "bucketPrefix"}),
    "aws:kms/alias:Alias": frozenset({"name", "namePrefix"}),
    "aws:wafv2/webAcl:WebAcl": frozenset({"name", "scope"}),
    "aws:appautoscaling/policy:Policy": frozenset({"name", "resourceId", "scalableDimension", "serviceNamespace"}),
    "aws:sns/topic:Topic": frozenset({"name", "namePrefix", "fifoTopic"}),
    "aws:cloudwatch/metricAlarm:MetricAlarm": frozenset({"name"}),
    "aws:dynamodb/table:Table": frozenset({"name", "hashKey", "rangeKey"}),
    "aws:iam/policy:Policy": frozenset({"name", "namePrefix", "path"}),
    "aws:ssm/document:Document": frozenset({"name", "documentType"}),
    "aws:cloudwatch/eventRule:EventRule": frozenset({"name", "namePrefix", "eventBusName"}),
    "aws:rds/eventSubscription:EventSubscription": frozenset({"name", "namePrefix"}),
}
# Resource types whose name is unique only within a parent that changes with them (a replaced
# scaling policy belongs to the same target; an inline role policy lives on its role).
SCOPED_NAMES = frozenset({"aws:appautoscaling/policy:Policy", "aws:iam/rolePolicy:RolePolicy"})
# Types that must carry a generated name (name_prefix or autonaming), never a fixed `name`.
GENERATED = frozenset(
    {
        "aws:lb/targetGroup:TargetGroup",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:iam/role:Role",
    }
)
NAME_INPUTS = ("name", "bucket", "identifier")
# For types with a stable name: the replace-on-change inputs other than the name that the program
# sets, each pinned to a constant or to another stable resource, so no config change replaces the
# resource under the same name. tests/test_naming.py holds every graph to this.
PINNED: Mapping[str, Mapping[str, str]] = {
    "aws:lb/loadBalancer:LoadBalancer": {"internal": "always false", "loadBalancerType": "always application"},
    "aws:ecr/repository:Repository": {"encryptionConfigurations": "the registry's own CMK, created once"},
    "aws:ecs/service:Service": {"cluster": "this stack's cluster (stable name)", "schedulingStrategy": "REPLICA"},
    "aws:rds/instance:Instance": {
        "engine": "always postgres",
        "kmsKeyId": "the database's own CMK, created once",
        "storageEncrypted": "always true",
        "username": "dbMasterUsername: fixed at creation (RDS cannot rename the master user; changing it is refused by AWS as a replacement)",
    },
    "aws:wafv2/webAcl:WebAcl": {"scope": "always REGIONAL"},
    "aws:dynamodb/table:Table": {"hashKey": "always pk (the release ledger's key schema)", "rangeKey": "always sk"},
    "aws:ssm/document:Document": {"documentType": "always Session (the tunnel's port-forwarding document)"},
}


def physical_name(type_: str, inputs: Mapping[str, object]) -> str | None:
    """The fixed physical name a resource's inputs set, or None when AWS/Pulumi generates it."""
    for key in NAME_INPUTS:
        value = inputs.get(key)
        if isinstance(value, str) and value and (key != "name" or "namePrefix" not in inputs):
            return value
    return None


# --- limits ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameRule:
    what: str
    max_length: int
    pattern: str
    allowed: str


RULES = {
    "s3": NameRule("S3 bucket", 63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]", "lowercase letters, digits, dots and hyphens"),
    "alb": NameRule("load balancer", 32, r"(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", "letters, digits and hyphens"),
    "rds": NameRule("RDS DB identifier", 63, r"[a-z](?!.*--)[a-z0-9-]*[a-z0-9]", "lowercase letters, digits and single hyphens, starting with a letter"),
    "rds_prefix": NameRule("RDS parameter/subnet group prefix", RDS_NAME_PREFIX_MAX, r"[a-z](?!.*--)[a-z0-9-]*-", "lowercase letters, digits and single hyphens"),
    "ecr": NameRule("ECR repository", 256, r"[a-z0-9]+(?:[._-][a-z0-9]+)*", "lowercase letters, digits, and . _ - between them"),
    # CreatePullThroughCacheRule: ecrRepositoryPrefix is 2-30 chars (the ECR API reference)
    "ecr_ptc": NameRule("ECR pull-through cache prefix", 30, r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*",
                        "lowercase letters, digits, and . _ - / between them"),
    "ecs": NameRule("ECS cluster/service", 255, r"[A-Za-z0-9_-]+", "letters, digits, hyphens and underscores"),
    "logs": NameRule("CloudWatch log group", 512, r"[\w./#-]+", "letters, digits, _ - / . #"),
    "secret": NameRule("Secrets Manager secret", 512, r"[\w/+=.@-]+", "letters, digits and / _ + = . @ -"),
    "waf": NameRule("WAF web ACL", 128, r"[\w-]+", "letters, digits, hyphens and underscores"),
    "kms_alias": NameRule("KMS alias", 250, r"[\w/-]+", "letters, digits, / _ -"),
    "sns": NameRule("SNS topic", 256, r"[\w-]+", "letters, digits, hyphens and underscores"),
    "alarm": NameRule("CloudWatch alarm", 255, r"[ -~]+", "printable ASCII"),
    "events": NameRule("EventBridge rule", 64, r"[\w.-]+", "letters, digits and . _ -"),
    "rds_events": NameRule("RDS event subscription", 255, r"[A-Za-z][A-Za-z0-9-]*", "letters, digits and hyphens, starting with a letter"),
    "iam_prefix": NameRule("IAM role name prefix", IAM_ROLE_NAME_PREFIX_MAX, r"[\w+=,.@-]+", "letters, digits and + = , . @ _ -"),
}


def planned_names(app_name: str, stack: str, region: str) -> list[tuple[str, str]]:
    """(rule key, name) for every stable name and name prefix the stack creates."""
    p = prefix(app_name, stack)
    account = "0" * ACCOUNT_ID_LENGTH  # the length is what matters
    return [
        ("s3", access_log_bucket(p, account, region)),
        ("alb", alb(p)),
        ("rds", db_identifier(p)),
        ("rds", final_snapshot_prefix(p) + "-00000000"),
        ("rds_prefix", rds_prefix(p, "pg16")),
        ("ecr", repository(p)),
        ("ecr_ptc", pull_through_prefix(p)),
        ("ecs", cluster(p)),
        ("ecs", ecs_service(p)),
        ("ecs", task_family(p)),
        ("logs", app_log_group(p)),
        ("logs", flow_log_group(p)),
        ("logs", waf_log_group(p)),
        ("logs", db_log_group(p, "postgresql")),
        ("secret", master_secret(p)),
        ("waf", waf_acl(p)),
        ("kms_alias", f"{p}-waf-logs"),
        # Monitoring (components/monitoring.py): the longest of each kind.
        ("sns", f"{p}-alarms"),
        ("alarm", f"{p}-alb-target-5xx-rate"),
        ("events", f"{p}-ecs-deployment-failed"),
        ("rds_events", f"{p}-db-events"),
        ("iam_prefix", f"{p}-"),
    ]


def name_problems(app_name: str, stack: str, region: str) -> list[str]:
    """Each planned name AWS would reject, as 'the <what> name <name> is N chars (max M)' or
    '... has characters outside <allowed>'. Empty when every name is acceptable."""
    problems: list[str] = []
    for key, name in planned_names(app_name, stack, region):
        rule = RULES[key]
        if len(name) > rule.max_length:
            problems.append(f"the {rule.what} name {name!r} is {len(name)} chars (max {rule.max_length})")
        elif not re.fullmatch(rule.pattern, name):
            problems.append(f"the {rule.what} name {name!r} has characters AWS rejects (allowed: {rule.allowed})")
    return list(dict.fromkeys(problems))
