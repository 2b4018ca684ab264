"""Rules: ECS (Fargate tasks and services)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, SERVICE, WAIVABLE, control
from controls.inventory import Inventory, Res
from controls.readers import (
    as_list,
    container_definitions,
)

TASKDEF = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
SECRET_NAME_RE = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_KEY|ENGINE_AUTH)", re.I)
REFERENCE_SUFFIX_RE = re.compile(r"_(ARN|ID|NAME|FILE|PATH|REGION|URL_FILE)$", re.I)
URL_WITH_PASSWORD_RE = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
AWS_KEY_RE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


@control("ECS.2", "ECS services should not have public IP addresses assigned to them automatically", MUST_HOLD, ECS_SERVICE, component=SERVICE)
def _ecs2(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("networkConfiguration.assignPublicIp") is True:
        yield "networkConfiguration.assignPublicIp is true"


@control("ECS.3", "ECS task definitions should not share the host's process namespace", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs3(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("pidMode") == "host":
        yield "pidMode is host"


@control("ECS.4", "ECS containers should run as non-privileged", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs4(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        if c.get("privileged") is True:
            yield f"container {c.get('name')!r} is privileged"


@control("ECS.5", "ECS containers should be limited to read-only access to root filesystems", WAIVABLE, TASKDEF, component=SERVICE)
def _ecs5(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        if c.get("readonlyRootFilesystem") is not True:
            yield f"container {c.get('name')!r} has readonlyRootFilesystem {c.get('readonlyRootFilesystem')!r}, not true"


@control("ECS.8", "Secrets should not be passed as container environment variables", MUST_HOLD, TASKDEF, component=SERVICE,
         note="covers AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/ECS_ENGINE_AUTH_DATA (FSBP) plus password/secret/token-like names, AWS keys and URLs with passwords")
def _ecs8(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        for env in as_list(c.get("environment")):
            if not isinstance(env, dict):
                continue
            name, value = str(env.get("name", "")), str(env.get("value", ""))
            if SECRET_NAME_RE.search(name) and not REFERENCE_SUFFIX_RE.search(name) and not value.startswith("arn:"):
                yield f"container {c.get('name')!r} sets secret-like environment variable {name} (use `secrets` with valueFrom)"
            elif URL_WITH_PASSWORD_RE.search(value) or AWS_KEY_RE.search(value):
                yield f"container {c.get('name')!r} environment variable {name} holds a credential"


@control("ECS.9", "ECS task definitions should have a logging configuration", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs9(r: Res, inv: Inventory) -> Iterator[str]:
    defs = container_definitions(r)
    if not defs:
        yield "containerDefinitions is empty or not JSON"
    for c in defs:
        if not (c.get("logConfiguration") or {}).get("logDriver"):
            yield f"container {c.get('name')!r} has no logConfiguration.logDriver"


FARGATE_LATEST = ("LATEST", "1.4.0")


def _is_fargate(r: Res, inv: Inventory) -> bool:
    if r.get("launchType") == "FARGATE":
        return True
    return any(str(s.get("capacityProvider", "")).startswith("FARGATE") for s in as_list(r.get("capacityProviderStrategies")) if isinstance(s, dict))


@control("ECS.10", "ECS Fargate services should run on the latest Fargate platform version", WAIVABLE, ECS_SERVICE, component=SERVICE, applies=_is_fargate)
def _ecs10(r: Res, inv: Inventory) -> Iterator[str]:
    version = r.get("platformVersion")
    if version not in (None, "", *FARGATE_LATEST):
        yield f"platformVersion is {version!r}, not LATEST (1.4.0)"


@control("ECS.12", "ECS clusters should use Container Insights", WAIVABLE, "aws:ecs/cluster:Cluster", component=SERVICE)
def _ecs12(r: Res, inv: Inventory) -> Iterator[str]:
    settings = {s.get("name"): s.get("value") for s in as_list(r.get("settings")) if isinstance(s, dict)}
    if settings.get("containerInsights") not in ("enabled", "enhanced"):
        yield f"settings containerInsights is {settings.get('containerInsights', '<unset>')!r}, not enabled"


