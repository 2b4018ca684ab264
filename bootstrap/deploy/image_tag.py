"""Which image tag a `deploy`/`up`/`preview`/`refresh`/`drift` runs, so that a release is never
silently undone by a checkout whose stack file does not carry it.

`release` writes `imageTag` into the stack file of the runner's checkout; when CI does not commit
that file, the next deploy from a fresh clone would send an empty tag and stop the service. The
program therefore records the tag it runs as the `imageTag` stack output (plain text: the same
value is in the task definition's image in the state), and the deploy commands use:

  1. the stack file's `imageTag` when it sets one (the user's explicit choice, even when it differs
     from the state's: the run says the tag changes);
  2. else the tag recorded in the state, passed with `--config-file` (a temporary copy of the stack
     file, as for `appDbEnabled`; the stack file itself is never edited);
  3. else none (no image yet: the service runs no task until the first release).

An empty `imageTag: ""` in the stack file counts as not set (the placeholder `pulumi config set`
leaves); the way to run an older image is to release that tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.limits import IMAGE_TAG_RE
from config.stack_file import InputError, StackFile

IMAGE_TAG_KEY = "pghome:imageTag"
IMAGE_TAG_OUTPUT = "imageTag"  # the stack output __main__.py exports

FROM_FILE, FROM_STATE, NONE = "stack file", "state", "none"


@dataclass(frozen=True)
class TagChoice:
    tag: str  # what this run deploys ('' = no image; '<encrypted>' when the file's value is secure)
    deployed: str  # what the state records ('' = nothing recorded)
    source: str  # FROM_FILE | FROM_STATE | NONE

    @property
    def overrides(self) -> dict[str, str]:
        """The config to add to the `--config-file` copy (only a tag carried from the state)."""
        return {IMAGE_TAG_KEY: self.tag} if self.source == FROM_STATE else {}

    @property
    def changes(self) -> bool:
        return self.source == FROM_FILE and self.tag != self.deployed

    def describe(self, file_name: str) -> str:
        if self.source == FROM_STATE:
            return f"imageTag {self.tag}: from the stack's state (the last release; {file_name} sets none)"
        if self.source == NONE:
            return "imageTag: none (no image yet: the service runs no task until the first release)"
        if not self.deployed:
            return f"imageTag {self.tag}: from {file_name}"
        if self.changes:
            return f"imageTag changes: {self.deployed} (deployed) -> {self.tag} ({file_name})"
        return f"imageTag {self.tag}: from {file_name}, as deployed"


def _file_value(value: Any) -> str:
    if isinstance(value, dict) and "secure" in value:
        return "<encrypted>"
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def choose(sf: StackFile, outputs: Mapping[str, Any]) -> TagChoice:
    """The tag for this run from the stack file and the stack's outputs (Automation API
    OutputValues or plain values). A state value that is no image tag is refused."""
    raw = outputs.get(IMAGE_TAG_OUTPUT)
    deployed = getattr(raw, "value", raw)
    deployed = "" if deployed is None else str(deployed)
    if deployed and not re.fullmatch(IMAGE_TAG_RE, deployed):
        raise InputError(f"the stack's state records the {IMAGE_TAG_OUTPUT} output {deployed[:140]!r}, which is not an image tag; "
                         f"set {IMAGE_TAG_KEY} in {sf.path.name} to the tag to run")
    explicit = _file_value(sf.explicit(IMAGE_TAG_KEY))
    if explicit:
        return TagChoice(explicit, deployed, FROM_FILE)
    if deployed:
        return TagChoice(deployed, deployed, FROM_STATE)
    return TagChoice("", "", NONE)
