"""Entry point of the pghome-fsbp policy pack: `pulumi preview --policy-pack policy`."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # this pack's adapter, and the project whose rules it runs
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pghome_fsbp  # noqa: E402
from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

PolicyPack(
    name="pghome-fsbp",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=pghome_fsbp.policies(),
    description=pghome_fsbp.__doc__,
)
