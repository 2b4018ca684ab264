"""Fake RDS CA bundles for tests: self-signed roots named like AWS's, generated per run.

The shape follows the published global bundle (https://truststore.pki.rds.amazonaws.com/global/
global-bundle.pem; docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html, "Certificate
authorities"): PEM blocks with CRLF line ends, each a self-signed root with CN `Amazon RDS <region>
Root CA RSA2048 G1` (or RSA4096 / ECC384), O=Amazon Web Services, Inc., OU=Amazon RDS, L=Seattle,
ST=WA, C=US, basicConstraints CA:TRUE. The keys are P-256 whatever the name says: key generation
stays fast, and nothing we check reads the key type.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


def rds_name(cn: str, org: str = "Amazon Web Services, Inc.", unit: str = "Amazon RDS") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
    ])


def root(cn: str = "Amazon RDS eu-west-1 Root CA RSA2048 G1", *, ca: bool = True, not_before: dt.datetime | None = None,
         not_after: dt.datetime | None = None, name: x509.Name | None = None) -> x509.Certificate:
    """One self-signed certificate; `ca=False` leaves basicConstraints CA:FALSE (a leaf)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name or rds_name(cn)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365 * 40))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def pem(*certs: x509.Certificate) -> bytes:
    """A bundle as AWS publishes it: the PEM blocks one after the other, CRLF line ends."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs).replace(b"\n", b"\r\n")


def good_bundle(regions: tuple[str, ...] = ("eu-west-1", "us-east-1")) -> bytes:
    kinds = ("RSA2048 G1", "RSA4096 G1", "ECC384 G1")
    return pem(*(root(f"Amazon RDS {r} Root CA {k}") for r in regions for k in kinds))


_CACHED: list[bytes] = []


def write_good_bundle(path: Path) -> Path:
    """A bundle `ca-bundle check` and the deploy preflight accept (the stacks' region, eu-west-1),
    as `ca-bundle fetch` would leave it in a project copy; generated once per test process."""
    if not _CACHED:
        _CACHED.append(good_bundle(("eu-west-1",)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_CACHED[0])
    return path
