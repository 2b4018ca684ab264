"""ECR repository: immutable tags, scan on push, its own CMK, an ordered lifecycle policy."""

from __future__ import annotations

import json

import pulumi
import pytest

from bootstrap.plan.mockgraph import Graph, run_program, run_stack
from components.registry import Registry, RegistryArgs, lifecycle_policy
from config.settings import RegistrySettings
from config.stack_file import stack_config
from tests.helpers import assert_config_error

REPO = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _registry_children(graph: Graph):
    component = graph.one("pghome:registry:Registry")
    return component, graph.children(component)


def test_repository_is_immutable_scanned_and_kms_encrypted(graph: Graph) -> None:
    component, children = _registry_children(graph)
    repo = graph.one(REPO, f"shop-{graph.stack}-registry-repo")
    assert repo.parent == component.urn
    assert repo.inputs["name"] == f"shop-{graph.stack}"
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repo.get("imageScanningConfiguration.scanOnPush") is True
    enc = repo.get("encryptionConfigurations.0")
    assert enc["encryptionType"] == "KMS"
    keys = [r for r in children if r.type == "aws:kms/key:Key"]
    assert len(keys) == 1, "the registry owns exactly one CMK"
    assert enc["kmsKey"] == keys[0].state["arn"]
    assert keys[0].inputs["enableKeyRotation"] is True
    aliases = [r for r in children if r.type == "aws:kms/alias:Alias"]
    assert [a.inputs["name"] for a in aliases] == [f"alias/shop-{graph.stack}-ecr"]


def test_force_delete_only_in_dev(dev_graph: Graph, prod_graph: Graph) -> None:
    assert dev_graph.one(REPO, f"shop-{dev_graph.stack}-registry-repo").inputs["forceDelete"] is True
    assert prod_graph.one(REPO, f"shop-{prod_graph.stack}-registry-repo").inputs["forceDelete"] is False


def test_lifecycle_policy_rules_follow_config_and_are_ordered(graph: Graph) -> None:
    policy = json.loads(graph.one(LIFECYCLE, f"shop-{graph.stack}-registry-lifecycle").inputs["policy"])
    assert graph.one(LIFECYCLE, f"shop-{graph.stack}-registry-lifecycle").inputs["repository"] == graph.one(REPO, f"shop-{graph.stack}-registry-repo").inputs["name"]
    rules = policy["rules"]
    priorities = [r["rulePriority"] for r in rules]
    assert priorities == sorted(set(priorities)), "priorities must be unique and in ascending order"
    statuses = [r["selection"]["tagStatus"] for r in rules]
    assert statuses == ["tagged", "untagged", "tagged"]
    assert "any" not in statuses[:-1], "a tagStatus=any rule must come last"
    released, untagged, tagged = rules
    assert released["selection"]["tagPatternList"] == ["released-*"] and released["selection"]["countNumber"] == 9999
    assert untagged["selection"] == {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}
    assert tagged["selection"]["countType"] == "imageCountMoreThan"
    assert tagged["selection"]["countNumber"] == 30
    assert tagged["selection"]["tagPatternList"] == ["*"]
    assert all(r["action"] == {"type": "expire"} for r in rules)


def test_lifecycle_policy_follows_overrides() -> None:
    graph = run_stack("dev", {"ecrUntaggedExpiryDays": 3, "ecrKeepTaggedCount": 7})
    rules = json.loads(graph.one(LIFECYCLE, f"shop-{graph.stack}-registry-lifecycle").inputs["policy"])["rules"]
    assert rules[1]["selection"]["countNumber"] == 3
    assert rules[2]["selection"]["countNumber"] == 7


def test_lifecycle_policy_function_is_plain_json() -> None:
    doc = lifecycle_policy(1, 1000)
    assert json.loads(json.dumps(doc)) == doc
    assert [r["rulePriority"] for r in doc["rules"]] == [1, 2, 3]


def test_registry_outputs_exported(graph: Graph) -> None:
    repo = graph.one(REPO, f"shop-{graph.stack}-registry-repo")
    assert graph.outputs["repositoryUrl"] == repo.state["repositoryUrl"]
    assert graph.outputs["repositoryUrl"].endswith(f".dkr.ecr.eu-west-1.amazonaws.com/shop-{graph.stack}")


def test_registry_in_isolation_with_literal_inputs() -> None:
    seen: dict[str, object] = {}

    def program() -> None:
        reg = Registry("r", RegistryArgs(settings=RegistrySettings(prefix="demo-x", untagged_expiry_days=2, keep_tagged_count=5, force_delete=False)))
        pulumi.export("url", reg.repository_url)
        pulumi.export("arn", reg.repository_arn)
        pulumi.export("name", reg.repository_name)
        seen["ok"] = True

    graph = run_program(program, stack="dev", config=stack_config("dev"))
    assert seen["ok"]
    assert graph.outputs["name"] == "demo-x"
    assert graph.outputs["arn"].startswith("arn:aws:ecr:eu-west-1:123456789012:")
    assert json.loads(graph.one(LIFECYCLE).inputs["policy"]) == lifecycle_policy(2, 5)
    assert graph.one(REPO).inputs["forceDelete"] is False


@pytest.mark.parametrize(
    ("stack", "overrides", "fragments"),
    [
        ("prod", {"ecrForceDelete": True}, ("pghome:ecrForceDelete", "must be false in prod")),
        ("dev", {"ecrUntaggedExpiryDays": 0}, ("pghome:ecrUntaggedExpiryDays", "1")),
        ("dev", {"ecrKeepTaggedCount": 1001}, ("pghome:ecrKeepTaggedCount", "1000")),
        ("dev", {"ecrKeepTaggedCount": "many"}, ("pghome:ecrKeepTaggedCount", "integer")),
    ],
)
def test_registry_config_errors(stack: str, overrides: dict, fragments: tuple[str, ...]) -> None:
    assert_config_error(stack, overrides, *fragments)
