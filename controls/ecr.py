"""Rules: ECR repositories."""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, REGISTRY, WAIVABLE, control
from controls.inventory import Inventory, Res
from controls.readers import (
    as_list,
    json_value,
    policy_statements,
)

ECR_REPO = "aws:ecr/repository:Repository"


@control("ECR.1", "ECR private repositories should have image scanning configured (scan on push)", MUST_HOLD, ECR_REPO, component=REGISTRY, context=True)
def _ecr1(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("imageScanningConfiguration.scanOnPush") is True:
        return
    for reg in inv.of_type("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"):
        if reg.get("scanType") == "ENHANCED" or any(
            isinstance(rule, dict) and rule.get("scanFrequency") in ("SCAN_ON_PUSH", "CONTINUOUS_SCAN") for rule in as_list(reg.get("rules"))
        ):
            return
    yield "imageScanningConfiguration.scanOnPush is not true and no registry scanning configuration scans on push"


@control("ECR.2", "ECR private repositories should have tag immutability configured", MUST_HOLD, ECR_REPO, component=REGISTRY)
def _ecr2(r: Res, inv: Inventory) -> Iterator[str]:
    mutability = r.get("imageTagMutability") or "MUTABLE"
    if not str(mutability).startswith("IMMUTABLE"):
        yield f"imageTagMutability is {mutability}"


@control("ECR.3", "ECR repositories should have at least one lifecycle policy configured", WAIVABLE, ECR_REPO, component=REGISTRY, context=True)
def _ecr3(r: Res, inv: Inventory) -> Iterator[str]:
    policies = [p for p in inv.referring(r, "repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy") if policy_statements(p.get("policy")) or json_value(p.get("policy"))]
    if not policies:
        yield "no aws:ecr/lifecyclePolicy:LifecyclePolicy refers to this repository"


@control("ECR.5", "ECR repositories should be encrypted with customer managed AWS KMS keys", MUST_HOLD, ECR_REPO, component=REGISTRY)
def _ecr5(r: Res, inv: Inventory) -> Iterator[str]:
    configs = [c for c in as_list(r.get("encryptionConfigurations")) if isinstance(c, dict)]
    if not any(c.get("encryptionType") == "KMS" and c.get("kmsKey") for c in configs):
        yield "encryptionConfigurations has no KMS entry with a kmsKey (customer managed key)"


