"""Rules: Secrets Manager, CloudWatch Logs and S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controls.catalogue import DATABASE, MUST_HOLD, NETWORK, SERVICE, control
from controls.inventory import Inventory, Res
from controls.readers import (
    policy_statements,
)

SECRET = "aws:secretsmanager/secret:Secret"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


@control("PGH.1", "Secrets Manager secrets should be encrypted with a customer managed KMS key", MUST_HOLD, SECRET, component=DATABASE)
def _pgh1(r: Res, inv: Inventory) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "kmsKeyId is not set (aws/secretsmanager key)"


@control("PGH.2", "CloudWatch log groups should be encrypted with a KMS key", MUST_HOLD, "aws:cloudwatch/logGroup:LogGroup", component=NETWORK)
def _pgh2(r: Res, inv: Inventory) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "kmsKeyId is not set"


def _rotations(secret: Res, inv: Inventory) -> list[Res]:
    return inv.referring(secret, "secretId", ROTATION)


def _rotation_waits_for_login_roles(r: Res, inv: Inventory) -> bool:
    """A login secret (child of the app database) in a program that declares no database roles yet
    (app database off, deploy phase 1): its rotation is created with the roles in phase 3, since an
    immediate rotation before them fails (components/rotation_function.py)."""
    return "pghome:appdb:AppDatabase" in r.parent and not inv.of_type("postgresql:index/role:Role") \
        and not _rotations(r, inv)


@control(
    "SecretsManager.1",
    "Secrets Manager secrets should have automatic rotation enabled",
    MUST_HOLD,
    SECRET,
    component=DATABASE,
    context=True,
    note="the rotation function (components/rotation_function.py) rotates every DB secret on a schedule",
)
def _sm1(r: Res, inv: Inventory) -> Iterator[str]:
    if _rotation_waits_for_login_roles(r, inv):
        return
    rotations = [x for x in _rotations(r, inv) if x.get("rotationEnabled") is not False]
    if not rotations:
        yield f"no {ROTATION}"
    for x in rotations:
        if not x.get("rotationLambdaArn"):
            yield "its SecretRotation names no rotation function"


SM4_MAX_DAYS = 90  # Security Hub's default maxDaysSinceRotation


@control(
    "SecretsManager.4",
    f"Secrets Manager secrets should be rotated within {SM4_MAX_DAYS} days",
    MUST_HOLD,
    SECRET,
    component=DATABASE,
    context=True,
    note="checked against the configured schedule (dbSecretRotationDays); the live check also needs the rotations to succeed",
)
def _sm4(r: Res, inv: Inventory) -> Iterator[str]:
    if _rotation_waits_for_login_roles(r, inv):
        return
    rotations = _rotations(r, inv)
    if not rotations:
        yield "not rotated on a schedule"
    for x in rotations:
        days = x.get("rotationRules.automaticallyAfterDays")
        if days is None:
            yield "its rotation schedule is not a number of days (automaticallyAfterDays)"
        elif int(days) > SM4_MAX_DAYS:
            yield f"rotated every {days} days (more than {SM4_MAX_DAYS})"


def _bucket_children(inv: Inventory, bucket: Res, type_: str) -> list[Res]:
    return inv.referring(bucket, "bucket", type_)


def _denies_insecure_transport(doc: Any) -> bool:
    for st in policy_statements(doc):
        if st.get("Effect") != "Deny":
            continue
        for test, pairs in (st.get("Condition") or {}).items():
            if test.startswith("Bool") and isinstance(pairs, dict) and str(pairs.get("aws:SecureTransport", "")).lower() == "false":
                return True
    return False


@control("S3.5", "S3 general purpose buckets should require requests to use SSL", MUST_HOLD, BUCKET_TYPES, component=SERVICE, context=True,
         condition="only stacks with a bucket (the ALB access-log bucket) have one")
def _s3_5(r: Res, inv: Inventory) -> Iterator[str]:
    docs = [r.get("policy")] + [p.get("policy") for p in _bucket_children(inv, r, "aws:s3/bucketPolicy:BucketPolicy")]
    if not any(_denies_insecure_transport(d) for d in docs if d):
        yield "no bucket policy denies requests with aws:SecureTransport false"


@control("S3.8", "S3 general purpose buckets should block public access", MUST_HOLD, BUCKET_TYPES, component=SERVICE, context=True,
         condition="only stacks with a bucket (the ALB access-log bucket) have one")
def _s3_8(r: Res, inv: Inventory) -> Iterator[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    blocks = _bucket_children(inv, r, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    if not blocks:
        yield "no aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock for this bucket"
    for block in blocks:
        off = [f for f in flags if block.get(f) is not True]
        if off:
            yield f"{block.name}: {', '.join(off)} not true"


