"""Rules: KMS keys and IAM policies."""

from __future__ import annotations

import re
from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, NETWORK, WAIVABLE, control, must_be_true
from controls.inventory import Inventory, Res
from controls.readers import (
    all_resources,
    allows,
    as_list,
    iam_documents,
    policy_statements,
)

MANAGED_POLICY = "aws:iam/policy:Policy"
INLINE_POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy", "aws:iam/role:Role")


def _kms_decrypt_on_all(r: Res) -> Iterator[str]:
    for label, doc in iam_documents(r):
        for st in policy_statements(doc):
            if all_resources(st) and (allows(st, "kms:Decrypt") or allows(st, "kms:ReEncryptFrom")):
                yield f"{label} allows {st.get('Action')} on Resource '*' (statement {st.get('Sid', '?')})"


@control("KMS.1", "IAM customer managed policies should not allow decryption actions on all KMS keys", MUST_HOLD, MANAGED_POLICY)
def _kms1(r: Res, inv: Inventory) -> Iterator[str]:
    yield from _kms_decrypt_on_all(r)


@control("KMS.2", "IAM principals should not have IAM inline policies that allow decryption actions on all KMS keys", MUST_HOLD, INLINE_POLICY_TYPES, component=NETWORK)
def _kms2(r: Res, inv: Inventory) -> Iterator[str]:
    yield from _kms_decrypt_on_all(r)


control("KMS.4", "AWS KMS key rotation should be enabled", MUST_HOLD, "aws:kms/key:Key", component=NETWORK,
        applies=lambda r, inv: (r.get("customerMasterKeySpec") or r.get("keySpec") or "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT")(must_be_true("enableKeyRotation"))


@control("IAM.1", "IAM policies should not allow full '*' administrative privileges", MUST_HOLD, (MANAGED_POLICY, *INLINE_POLICY_TYPES), component=NETWORK,
         note="FSBP checks customer managed policies; inline policies are checked too")
def _iam1(r: Res, inv: Inventory) -> Iterator[str]:
    for label, doc in iam_documents(r):
        for st in policy_statements(doc):
            if st.get("Effect", "Allow") == "Allow" and all_resources(st) and any(str(a) in ("*", "*:*") for a in as_list(st.get("Action"))):
                yield f"{label} allows Action '*' on Resource '*' (statement {st.get('Sid', '?')})"


@control("IAM.21", "IAM policies should not allow wildcard actions for services (e.g. s3:*)", WAIVABLE, (MANAGED_POLICY, *INLINE_POLICY_TYPES), component=NETWORK,
         note="FSBP checks customer managed policies; inline policies are checked too")
def _iam21(r: Res, inv: Inventory) -> Iterator[str]:
    for label, doc in iam_documents(r):
        for st in policy_statements(doc):
            if st.get("Effect", "Allow") != "Allow":
                continue
            wild = [str(a) for a in as_list(st.get("Action")) if re.fullmatch(r"[A-Za-z0-9-]+:\*", str(a))]
            if wild:
                yield f"{label} allows {', '.join(wild)} (statement {st.get('Sid', '?')})"


