"""Issue 28 item 7: the access task has no way to the internet. Its security group reaches only the
database, the VPC interface endpoints it needs and S3's prefix list; its image comes from this
account's ECR pull-through cache; the endpoints exist whenever dbAccess does (config), in one AZ
outside prod; control PGH.8 holds the rule on the graph."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bootstrap.plan import report as plan
from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from components.db_access import ACCESS_IMAGE
from components.db_access_image import CACHE_KEEP_IMAGES, PublicImage, cache_lifecycle_policy, pull_statements
from config.settings import ACCESS_ENDPOINT_SERVICES
from controls import FAIL, PASS
from tests import control_graphs as cg
from tests.helpers import assert_config_error
from tests.resource_types import EGRESS, ENDPOINT, PTC_RULE, REPO, SG, TASKDEF

COMPONENT = "pghome:dbaccess:DbAccess"
ACCESS_SERVICES = ["ecr.api", "ecr.dkr", "kms", "logs", "ssmmessages"]


def interface_endpoints(g: Graph) -> dict[str, Resource]:
    return {e.inputs["serviceName"].rsplit(".eu-west-1.", 1)[1]: e for e in g.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"}


def access_child(g: Graph, type_: str) -> Resource:
    (found,) = [r for r in g.children(g.one(COMPONENT)) if r.type == type_]
    return found


def access_egress(g: Graph) -> list[Resource]:
    sg = access_child(g, SG)
    return [r for r in g.of_type(EGRESS) if r.inputs["securityGroupId"] == sg.id]


# --- the endpoints come with the access task ----------------------------------------------------


def test_the_access_task_brings_its_five_endpoints_one_az_in_dev(dev_graph: Graph) -> None:
    endpoints = interface_endpoints(dev_graph)
    assert sorted(endpoints) == ACCESS_SERVICES == sorted(ACCESS_ENDPOINT_SERVICES)  # interfaceEndpoints is false in both stack files
    first_private = dev_graph.outputs["privateSubnetIds"][0]
    for e in endpoints.values():
        assert e.inputs["privateDnsEnabled"] is True  # the agents call the standard service names
        assert e.inputs["subnetIds"] == [first_private]  # dev: one AZ (interfaceEndpointAzCount unset)


def test_prod_puts_them_in_every_az(prod_graph: Graph) -> None:
    endpoints = interface_endpoints(prod_graph)
    assert sorted(endpoints) == ACCESS_SERVICES
    for e in endpoints.values():
        assert e.inputs["subnetIds"] == prod_graph.outputs["privateSubnetIds"] and len(e.inputs["subnetIds"]) == 3


def test_without_the_access_task_no_endpoint_is_made_for_it() -> None:
    g = run_stack("dev", {"dbAccess": False})
    assert interface_endpoints(g) == {}
    assert [e.inputs["vpcEndpointType"] for e in g.of_type(ENDPOINT)] == ["Gateway"]  # the free S3 one stays


def test_chosen_endpoints_and_the_access_tasks_add_up() -> None:
    g = run_stack("dev", {"interfaceEndpoints": "true", "interfaceEndpointServices": '["secretsmanager", "logs"]', "interfaceEndpointAzCount": "2"})
    endpoints = interface_endpoints(g)
    assert sorted(endpoints) == sorted({*ACCESS_SERVICES, "secretsmanager"})
    assert all(len(e.inputs["subnetIds"]) == 2 for e in endpoints.values())


def test_endpoint_settings_are_checked() -> None:
    assert_config_error("dev", {"s3GatewayEndpoint": "false"}, "pghome:s3GatewayEndpoint", "dbAccess true", "set s3GatewayEndpoint true or dbAccess false")
    run_stack("dev", {"s3GatewayEndpoint": "false", "dbAccess": "false"})  # without the access task the choice is free
    assert_config_error("dev", {"interfaceEndpointAzCount": "3"}, "pghome:interfaceEndpointAzCount", "1 to 2")
    assert_config_error("dev", {"interfaceEndpointAzCount": "0"}, "pghome:interfaceEndpointAzCount")
    assert_config_error("prod", {"interfaceEndpointAzCount": "1"}, "pghome:interfaceEndpointAzCount", "must equal azCount (3) in prod")
    assert_config_error("dev", {"interfaceEndpoints": "true", "interfaceEndpointServices": '["rds"]'},
                        "pghome:interfaceEndpointServices", "ecr.api, ecr.dkr, kms, logs, secretsmanager, ssmmessages, sts")


# --- egress: no address range -------------------------------------------------------------------


def test_egress_names_the_endpoints_the_s3_prefix_list_and_the_database_only(graph: Graph) -> None:
    rules = access_egress(graph)
    assert rules and not [r for r in rules if r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")], "no 0.0.0.0/0, no range at all"
    (endpoints_sg,) = [s for s in graph.of_type(SG) if s.name.endswith("-endpoints-sg")]
    (s3,) = [e for e in graph.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Gateway"]
    peers = {(r.inputs.get("referencedSecurityGroupId") or r.inputs.get("prefixListId"), r.inputs["fromPort"]) for r in rules}
    assert peers == {(endpoints_sg.id, 443), (s3.state["prefixListId"], 443), (graph.outputs["dbSecurityGroupId"], 5432)}
    # every access endpoint sits behind that group, which admits HTTPS from inside the VPC only
    assert all(e.inputs["securityGroupIds"] == [endpoints_sg.id] for e in interface_endpoints(graph).values())


# --- the image: a pull-through cache of ECR Public --------------------------------------------------


def test_the_image_comes_from_the_pull_through_cache(graph: Graph) -> None:
    rule = access_child(graph, PTC_RULE)
    prefix = f"shop-{graph.stack}"
    assert rule.inputs["ecrRepositoryPrefix"] == prefix and rule.inputs["upstreamRegistryUrl"] == "public.ecr.aws"
    assert not rule.inputs.get("credentialArn")  # ECR Public needs none
    repo = access_child(graph, REPO)
    upstream = PublicImage.parse(ACCESS_IMAGE)
    assert repo.inputs["name"] == f"{prefix}/{upstream.path}" == f"{prefix}/docker/library/alpine"
    # made before the first pull, so it is ours: CMK (the access key), immutable, scanned, bounded, deleted with the stack
    key = access_child(graph, "aws:kms/key:Key")
    assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key.state["arn"]}]
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE" and repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["forceDelete"] is True
    (lifecycle,) = [r for r in graph.children(graph.one(COMPONENT)) if r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy"]
    assert json.loads(lifecycle.inputs["policy"]) == cache_lifecycle_policy()
    td = access_child(graph, TASKDEF)
    (container,) = json.loads(td.inputs["containerDefinitions"])
    assert container["image"] == f"{repo.state['repositoryUrl']}:{upstream.tag}@{upstream.digest}"
    assert container["image"].startswith(f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{prefix}/") and "public.ecr.aws" not in container["image"]
    assert rule.urn in td.dependencies  # no task before the rule exists


def test_cache_lifecycle_keeps_by_count_never_by_age() -> None:
    (only,) = cache_lifecycle_policy()["rules"]
    assert only["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": CACHE_KEEP_IMAGES}
    assert CACHE_KEEP_IMAGES >= 16  # one multi-arch alpine (index, platforms, attestations) fits with room for a re-pin


def test_only_pinned_ecr_public_images_are_accepted() -> None:
    image = PublicImage.parse("public.ecr.aws/docker/library/alpine:3.20.3@sha256:" + "a" * 64)
    assert (image.path, image.tag) == ("docker/library/alpine", "3.20.3")
    assert image.private_uri("1.dkr.ecr.r.amazonaws.com/p/docker/library/alpine") == "1.dkr.ecr.r.amazonaws.com/p/docker/library/alpine:3.20.3@sha256:" + "a" * 64
    for bad in ("docker.io/library/alpine:3.20.3@sha256:" + "a" * 64, "public.ecr.aws/docker/library/alpine:3.20.3", "public.ecr.aws/docker/library/alpine@sha256:" + "a" * 64):
        with pytest.raises(ValueError, match="must be public.ecr.aws/<repository>:<tag>@sha256:<digest>"):
            PublicImage.parse(bad)


def test_pull_permissions_are_the_cache_repository_only() -> None:
    arn = "arn:aws:ecr:eu-west-1:123456789012:repository/shop-dev/docker/library/alpine"
    got: dict[str | None, Any] = {s.sid: (sorted(s.actions or []), s.resources) for s in pull_statements(arn)}
    assert got == {
        "PullAccessImage": (["ecr:BatchGetImage", "ecr:BatchImportUpstreamImage", "ecr:GetDownloadUrlForLayer"], [arn]),
        "EcrLogin": (["ecr:GetAuthorizationToken"], ["*"]),
    }
    assert not [a for _, (actions, _) in got.items() for a in actions if a in ("ecr:CreateRepository", "ecr:*")]


# --- the control ------------------------------------------------------------------------------------


def test_pgh8_holds_on_both_stacks_and_ecr_controls_cover_the_cache(dev_graph: Graph, prod_graph: Graph) -> None:
    for g in (dev_graph, prod_graph):
        report = plan.check_graph(g)
        result = report.result("PGH.8")
        assert result.status == PASS and result.checked == 1 + len(access_egress(g)), (result.status, result.checked)
        for cid in ("ECR.1", "ECR.2", "ECR.3", "ECR.5"):
            assert report.result(cid).status == PASS and report.result(cid).checked == 2, cid  # the app's repository and the cache


def test_pgh8_fails_when_the_access_task_may_reach_the_internet(prod_graph: Graph) -> None:
    def open_up(g: Graph) -> None:
        rule = next(r for r in access_egress(g) if r.inputs.get("prefixListId"))
        del rule.inputs["prefixListId"]
        rule.inputs["cidrIpv4"] = "0.0.0.0/0"

    report = plan.check_graph(cg.mutated(prod_graph, open_up))
    result = report.result("PGH.8")
    assert result.status == FAIL and [f.resource for f in result.findings] == ["shop-prod-dbaccess-out-s3"]
    assert "egress to 0.0.0.0/0" in result.findings[0].message
    # the service's own 443 egress is not the access task's: PGH.8 looks at the access path only
    assert not [f for f in result.findings if "dbaccess" not in f.resource]
