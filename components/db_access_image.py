"""The access task's image, served from this account's registry: an ECR pull-through cache of ECR Public.

The task has no route to the internet (issue 28 item 7), so it cannot pull from public.ecr.aws. A
pull-through cache rule (`<prefix>` -> public.ecr.aws) lets it pull the same image, pinned by
the same digest, from `<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<upstream path>`
through the ecr.api/ecr.dkr endpoints and the S3 gateway endpoint. ECR Public needs no credential.

The cache repository is created here rather than by the first pull (`ecr:CreateRepository`), so it
is encrypted with a customer managed key, scans on push, keeps tags immutable and has a lifecycle
policy (the ECR guide: a repository the cache creates has KMS encryption off; "create the repository
manually prior to the first image pull"), it goes with the stack, and the execution role needs no
CreateRepository. The pure functions (names, URI, IAM statements, lifecycle policy) sit beside the
thin `pull_through_cache`, as components/registry.py keeps `lifecycle_policy` beside its component.

What to watch on the first real run: the ECR guide says the first pull of an image through a
pull-through cache rule over an interface endpoint needs a NAT route from the private subnet (the
stack always has one: natStrategy none is refused), without saying which side makes that request.
If the first `tunnel` stops with CannotPullContainerError, fill the cache once from outside the VPC
(docs/access-model.md, "The access task's image"); later pulls come from the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import statement
from config.naming import pull_through_prefix

UPSTREAM_REGISTRY = "public.ecr.aws"
# Expire beyond this many images: one pinned multi-arch image is an index, one manifest per
# platform and their attestations (alpine: about 15); the bound only matters once the pin moved.
CACHE_KEEP_IMAGES = 50


def cache_prefix(prefix: str) -> str:
    """The repository namespace of this stack's pull-through cache (config/naming.py, which also checks
    it against ECR's 30-character limit before anything is created)."""
    return pull_through_prefix(prefix)


@dataclass(frozen=True)
class PublicImage:
    """An ECR Public image reference split into what the cache needs: 'public.ecr.aws/<path>:<tag>@<digest>'."""

    path: str  # e.g. docker/library/alpine
    tag: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> PublicImage:
        registry, _, rest = reference.partition("/")
        name, _, digest = rest.partition("@")
        path, _, tag = name.partition(":")
        if registry != UPSTREAM_REGISTRY or not path or not tag or not digest.startswith("sha256:"):
            raise ValueError(f"the access image {reference!r} must be {UPSTREAM_REGISTRY}/<repository>:<tag>@sha256:<digest> (pinned, from ECR Public)")
        return cls(path, tag, digest)

    def cache_repository(self, prefix: str) -> str:
        """The private repository the cache fills: '<cache prefix>/<path>'."""
        return f"{cache_prefix(prefix)}/{self.path}"

    def private_uri(self, repository_url: str) -> str:
        """The reference the task pulls: the cache repository's URL, the same tag and digest (the digest decides)."""
        return f"{repository_url}:{self.tag}@{self.digest}"


def pull_statements(repository_arn: pulumi.Input[str]) -> list[aws.iam.GetPolicyDocumentStatementArgs]:
    """What the execution role needs to pull through the cache: log in (account-wide only), read the
    cache repository, and let ECR import the upstream image into it on the first pull
    (ecr:BatchImportUpstreamImage, the ECR guide's pull through cache IAM page). No
    ecr:CreateRepository: the repository exists before the first pull."""
    return [
        statement(["ecr:BatchGetImage", "ecr:BatchImportUpstreamImage", "ecr:GetDownloadUrlForLayer"], [repository_arn], sid="PullAccessImage"),
        # GetAuthorizationToken is account-wide: AWS supports no resource-level ARN for it.
        statement(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
    ]


def cache_lifecycle_policy() -> dict[str, Any]:
    """Plain data: bound the cache by count (never by age: an expired pinned image would need another first pull)."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep the {CACHE_KEEP_IMAGES} newest cached images (the pinned access image and its platforms)",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": CACHE_KEEP_IMAGES},
                "action": {"type": "expire"},
            }
        ]
    }


def pull_through_cache(name: str, prefix: str, image: PublicImage, key_arn: pulumi.Input[str],
                       parent: pulumi.Resource) -> tuple[aws.ecr.PullThroughCacheRule, aws.ecr.Repository]:
    """The rule (`<cache prefix>` -> public.ecr.aws) and the cache repository for `image`, children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    rule = aws.ecr.PullThroughCacheRule(f"{name}-cache-rule", ecr_repository_prefix=cache_prefix(prefix), upstream_registry_url=UPSTREAM_REGISTRY, opts=child)
    repo = aws.ecr.Repository(
        f"{name}-cache-repo",
        name=image.cache_repository(prefix),
        # The pin is a digest, so the cache never needs to move a tag; immutable tags keep ECR.2.
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key_arn)],
        force_delete=True,  # a cache: destroy may drop it, the next pull fills it again
        tags={"Name": image.cache_repository(prefix)},
        opts=child,
    )
    aws.ecr.LifecyclePolicy(f"{name}-cache-lifecycle", repository=repo.name, policy=json.dumps(cache_lifecycle_policy()), opts=child)
    return rule, repo
