"""What AWS and PostgreSQL accept: the limit tables and patterns the section rules check against."""

from __future__ import annotations

from collections.abc import Mapping

APP_NAME_RE = r"[a-z][a-z0-9-]{0,18}[a-z0-9]"
AWS_REGION_RE = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
TAG_KEY_RE = r"[\w .:/=+\-@]{1,128}"
TAG_VALUE_RE = r"[\w .:/=+\-@]{0,256}"

# RDS instance families that run PostgreSQL, and the sizes AWS sells. A typo in either is an error.
DB_INSTANCE_FAMILIES = frozenset(
    "t3 t4g m5 m5d m6g m6gd m6i m6id m6idn m6in m7g m7gd m7i m8g m8gd r5 r5b r5d r6g r6gd r6i r6id r6idn r6in r7g r7gd r7i r8g r8gd x2g x2iedn".split()
)
DB_INSTANCE_SIZES = frozenset(
    ["micro", "small", "medium", "large", "xlarge"] + [f"{n}xlarge" for n in (2, 4, 8, 12, 16, 24, 32, 48)]
)
RESERVED_MASTER_USERNAMES = frozenset(
    "postgres admin administrator root rdsadmin rds_superuser rdsrepladmin master sa user superuser public".split()
)
# RDS standard support (release calendar, Nov 2026): 15 until Feb 2028, 16 2029, 17 2030, 18 2031. 13 is in
# paid Extended Support; 14 leaves standard support in Feb 2027 and keeps PUBLIC's CREATE on the public
# schema, which a non-superuser master cannot revoke. .ci/run tests every major here.
PG_MAJOR_VERSIONS = range(15, 19)
# RDS API reference (PerformanceInsightsRetentionPeriod): 7, month * 31 for 1-23 months, or 731 (two years).
PI_RETENTION_OK = "7, 731, or a multiple of 31 from 31 to 713 (1 to 23 months)"
RDS_CA_RE = r"rds-ca-(rsa2048-g1|rsa4096-g1|ecc384-g1)"

# Fargate's valid task CPU units -> allowed memory (MiB).
FARGATE_SIZES: Mapping[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
# registry/repository[:tag][@sha256:digest] (the reference grammar of the OCI distribution spec, simplified).
IMAGE_RE = (
    r"(?:(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(?::\d+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
IMAGE_TAG_RE = r"[\w][\w.-]{0,127}"
CERT_ARN_RE = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"
DOMAIN_RE = r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"

PG_IDENTIFIER_RE = r"[a-z_][a-z0-9_]{0,62}"
ALLOWED_EXTENSIONS = frozenset("pgcrypto uuid-ossp citext pg_trgm btree_gin btree_gist hstore unaccent".split())

IAM_ROLE_ARN_RE = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
CONTROL_ID_RE = r"[A-Za-z0-9]+\.\d+"

