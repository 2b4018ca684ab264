"""Keep a released image out of reach of the ECR lifecycle policy (issue 23 item 6).

The repository's lifecycle policy (components/registry.py) trims tagged images by count, and its
first rule keeps every image tagged `released-*`. The release command adds that tag to the image
it is about to put into service, before the stack update: with immutable tags, `n` unreleased CI
pushes would otherwise expire the image prod runs, and the next scale-out or task replacement would
fail with CannotPullContainerError.

Adding a tag is ECR's PutImage with the image's own manifest (no layer moves); with immutable tags
an existing tag cannot move, so a re-release of the same tag finds it already there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from config.naming import RELEASED_TAG_PREFIX

MAX_TAG_LENGTH = 128  # ECR's limit on an image tag


def released_tag(tag: str) -> str:
    """`released-<tag>`, or `released-<sha256 prefix>` when that would pass ECR's 128 characters."""
    name = RELEASED_TAG_PREFIX + tag
    if len(name) <= MAX_TAG_LENGTH:
        return name
    return RELEASED_TAG_PREFIX + hashlib.sha256(tag.encode("utf-8")).hexdigest()[:32]


def keep_released_image(ecr: Any, repository: str, tag: str, *, say: Callable[[str], None] = print,
                        error: type[Exception] = RuntimeError) -> str:
    """Tag `repository:tag` as released (idempotent); returns the tag added. `error` carries the
    one sentence when the image is gone."""
    keep = released_tag(tag)
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}]).get("images") or []
    if not images:
        raise error(f"image {repository}:{tag} vanished before it could be marked released; push it again")
    image = images[0]
    extra = {"imageManifestMediaType": image["imageManifestMediaType"]} if image.get("imageManifestMediaType") else {}
    try:
        ecr.put_image(repositoryName=repository, imageManifest=image["imageManifest"], imageTag=keep, **extra)
    except (ecr.exceptions.ImageAlreadyExistsException, ecr.exceptions.ImageTagAlreadyExistsException):
        say(f"{repository}:{tag} was already marked {keep}")
        return keep
    say(f"{repository}:{tag} marked {keep}: the lifecycle policy keeps released images")
    return keep
