"""The ECR repository the service pulls from: immutable tags, scan on push, a CMK, a lifecycle policy.

Immutable tags mean a tag names one image forever, so a redeploy of `:v42` can never silently run
different code. Images are encrypted with this component's own KMS key; ECR decrypts through a
grant it creates for itself, so pullers need no KMS permission of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.kms import create_key
from config.naming import RELEASED_TAG_PREFIX
from config.settings import RegistrySettings

# RELEASED_TAG_PREFIX (config/naming.py): `python -m bootstrap release` tags every image it puts into
# service with it (bootstrap/deploy/keep_image.py), so the image a stack runs is never expired by count.
# "Keep" in ECR's vocabulary: a rule that selects images but expires only beyond this many, so no
# lower-priority rule may expire them (the AWS CDK documents the same idiom with 9999).
KEEP_ALL_COUNT = 9999


def lifecycle_policy(untagged_expiry_days: int, keep_tagged_count: int) -> dict[str, Any]:
    """The ECR lifecycle policy as a dict (plain data, so it is testable without Pulumi).

    ECR evaluates rules by ascending `rulePriority`; an image that matches the tag selection of a
    rule cannot be expired by a rule of lower priority. So released images (tagged
    `released-<tag>` by the release command) are claimed first and kept; untagged images (the
    leftovers of re-pushed builds) expire by age; the other tagged images (CI pushes never
    released) are trimmed by count, keeping the newest `keep_tagged_count`. With immutable tags,
    trimming by count alone would expire the image prod runs after that many unreleased pushes.
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep every released image (tagged {RELEASED_TAG_PREFIX}*): the service may run it",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": [f"{RELEASED_TAG_PREFIX}*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": KEEP_ALL_COUNT,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Expire untagged images {untagged_expiry_days} days after push",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 3,
                "description": f"Keep the {keep_tagged_count} most recent unreleased tagged images",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_tagged_count,
                },
                "action": {"type": "expire"},
            },
        ]
    }


@dataclass
class RegistryArgs:
    """Inputs of the registry: its settings section (name, image expiry, force delete)."""

    settings: RegistrySettings
    """Validated registry config (config/settings.py); the repository is named after the stack prefix."""


class Registry(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    repository_name: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:registry:Registry", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        # No service grant in the key policy: ECR creates its own grant with the caller's
        # (account) permissions when the repository is created.
        key, _ = create_key(
            f"{name}-key",
            alias=f"{s.prefix}-ecr",
            description=f"{s.prefix}: ECR images",
            services=[],
            parent=self,
        )
        repo = aws.ecr.Repository(
            f"{name}-repo",
            name=s.prefix,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key.arn)],
            force_delete=s.force_delete,
            tags={"Name": s.prefix},
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repo.name,
            policy=json.dumps(lifecycle_policy(s.untagged_expiry_days, s.keep_tagged_count)),
            opts=child,
        )
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
        self.repository_name = repo.name
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "repository_name": self.repository_name,
            }
        )
