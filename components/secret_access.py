"""Who may read the master secret: a resource policy that denies every principal but the named ones.

IAM alone lets anyone in the account with `secretsmanager:GetSecretValue` on `*` (an admin, a
broad CI role) read the RDS master password. The secret's own policy narrows that to the rotation
function, the deploy role and a break-glass role, whatever their IAM policies say elsewhere; the
DB key's policy adds that the account may decrypt only through Secrets Manager and RDS
(components/kms.py `via_services`). A pure function beside the thin method that applies it
(Database.restrict_master_secret), like components/registry.py's lifecycle_policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# Reading the value, writing a new one, moving its stages, starting a rotation, and lifting this
# very policy or the secret itself: everything that reveals or replaces the password, or opens the
# way to. Describe/List stay open (they show no value).
GUARDED_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RotateSecret",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:DeleteSecret",
)


def master_secret_policy(reader_arns: Sequence[str]) -> str:
    """The resource policy (JSON): deny GUARDED_ACTIONS to any principal whose ARN is not listed.
    `aws:PrincipalArn` is the role's ARN for an assumed-role session, so sessions of a listed role pass."""
    if not reader_arns:
        raise ValueError("a master secret policy needs at least one reader (the rotation function's role)")
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyNamedReaders",
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(GUARDED_ACTIONS),
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(set(reader_arns))}},
        }],
    })
