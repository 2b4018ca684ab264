"""Account, partition and region of the stack's AWS provider, looked up once per program run.

Every component needs them for ARNs and policies. Each look-up is a blocking invoke, so they are
asked once and kept for the run (keyed by the run's root stack resource). The program has one AWS
provider, inherited by every component, so one answer serves all of them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AwsFacts:
    account_id: str
    partition: str
    region: str


_FACTS: weakref.WeakKeyDictionary[pulumi.Resource, AwsFacts] = weakref.WeakKeyDictionary()


def aws_facts(parent: pulumi.Resource) -> AwsFacts:
    """The facts as seen through `parent`'s provider (asked on first use in this run)."""
    root = pulumi.runtime.get_root_resource()
    if root is not None and root in _FACTS:
        return _FACTS[root]
    opts = pulumi.InvokeOptions(parent=parent)
    facts = AwsFacts(
        account_id=aws.get_caller_identity(opts=opts).account_id,
        partition=aws.get_partition(opts=opts).partition,
        region=aws.get_region(opts=opts).region,
    )
    if root is not None:
        _FACTS[root] = facts
    return facts
