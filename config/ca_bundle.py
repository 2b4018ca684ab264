"""The RDS CA bundle: where it comes from, where it lives, and what a good one looks like.

Every connection we open to the database uses sslmode=verify-full against this bundle (the
postgresql provider, deploy, rotate, audit, tunnel, restore, the rotation function's archive), so
a wrong file either breaks every connection or, worse, trusts a server it should not. AWS publishes
the bundle over HTTPS (docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html,
"Certificate bundles"): a global one, and one per region with that region's roots only. Copies of
the global bundle published in 2025 hold about a hundred self-signed roots named
`Amazon RDS <region> Root CA {RSA2048,RSA4096,ECC384} G1` (O=Amazon Web Services, Inc., OU=Amazon
RDS), each valid until 2061 or 2121; the rds-ca-2019 certificates, which expired in August 2024,
are gone from it.

`check_bundle` judges the bytes; it never touches the network (`python -m bootstrap ca-bundle`
downloads through one seam in bootstrap/cli/ca_bundle.py). The names are a sanity check that the
file is the RDS bundle and not another one: its authenticity comes from HTTPS to AWS's trust store
host, and from `--sha256` when a team pins a reviewed copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

# The default path of the bundle, relative to the project (Pulumi.yaml's appDbSslRootCert default).
DEFAULT_PATH = "certs/rds-global-bundle.pem"
GLOBAL_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
REGION_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
MAX_BYTES = 4 * 1024 * 1024  # the global bundle is about 160 KB; anything far larger is not it

ORGANIZATION = "Amazon Web Services, Inc."
ORGANIZATIONAL_UNIT = "Amazon RDS"
# `Amazon RDS eu-west-1 Root CA RSA2048 G1`; AWS's Beta and Preview endpoints have roots of their own.
ROOT_CN = re.compile(r"Amazon RDS (?:(?:Beta|Preview) )?(?P<region>[a-z]{2,4}(?:-[a-z]+)+-\d+) Root CA (?P<kind>RSA2048|RSA4096|ECC384) G(?P<gen>\d+)")
# dbCaCertIdentifier (config/limits.py RDS_CA_RE) -> the root that signs the instance's certificate.
CA_KIND = {"rds-ca-rsa2048-g1": "RSA2048 G1", "rds-ca-rsa4096-g1": "RSA4096 G1", "rds-ca-ecc384-g1": "ECC384 G1"}
_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.DOTALL)


class BundleError(ValueError):
    """The bundle is not usable; the message is one sentence naming what is wrong."""


@dataclass(frozen=True)
class Bundle:
    """What a checked bundle holds, for the one-line summary the commands print."""

    count: int
    sha256: str
    earliest_expiry: dt.datetime
    earliest_name: str
    regions: tuple[str, ...]

    def summary(self) -> str:
        where = f" for {len(self.regions)} regions" if len(self.regions) > 1 else (f" for {self.regions[0]}" if self.regions else "")
        return (f"{self.count} CA certificates{where}, earliest expiry {self.earliest_expiry:%Y-%m-%d} ({self.earliest_name}), "
                f"sha256 {self.sha256}")


def region_url(region: str) -> str:
    return REGION_URL.format(region=region)


def check_bundle(
    data: bytes,
    *,
    now: dt.datetime | None = None,
    rds_names: bool = True,
    region: str = "",
    ca_identifier: str = "",
    expect_sha256: str = "",
) -> Bundle:
    """Judge a PEM bundle: only certificates, each a CA, each currently valid; with `rds_names`,
    each a self-signed Amazon RDS root whose signature verifies; with `region`, the root that
    signs that region's instances (`ca_identifier`, default rds-ca-rsa2048-g1) is among them.
    Raises BundleError with one sentence; returns what the summary line shows."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    now = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(data).hexdigest()
    if expect_sha256 and digest != expect_sha256.strip().lower():
        raise BundleError(f"its sha256 is {digest}, not the pinned {expect_sha256.strip().lower()}")
    if len(data) > MAX_BYTES:
        raise BundleError(f"it is {len(data)} bytes, far larger than an RDS bundle (at most {MAX_BYTES})")
    blocks = list(_BLOCK.finditer(data))
    if not blocks:
        raise BundleError("it holds no PEM certificate (-----BEGIN CERTIFICATE----- block)")
    rest = _BLOCK.sub(b"", data).strip()
    if rest:  # a private key, an HTML error page, a truncated block: never part of a CA bundle
        snippet = rest[:40].decode("ascii", "replace").splitlines()[0]
        raise BundleError(f"it holds text that is not a PEM certificate (starting {snippet!r})")
    certs = []
    for n, block in enumerate(blocks, 1):
        try:
            certs.append(x509.load_pem_x509_certificate(block.group(0)))
        except ValueError:
            raise BundleError(f"certificate {n} is not a valid X.509 certificate") from None
    names: list[str] = []
    regions: set[str] = set()
    for n, cert in enumerate(certs, 1):
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else cert.subject.rfc4514_string()
        label = f"certificate {n} ({cn})"
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise BundleError(f"{label} is not a CA certificate (basicConstraints CA:TRUE missing)")
        if cert.not_valid_after_utc <= now:
            raise BundleError(f"{label} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        if cert.not_valid_before_utc > now:
            raise BundleError(f"{label} is not valid before {cert.not_valid_before_utc:%Y-%m-%d} (check this machine's clock)")
        if rds_names:
            regions.add(_rds_root(cert, cn, label))
        names.append(cn)
    if region:
        kind = CA_KIND.get(ca_identifier or "rds-ca-rsa2048-g1", "RSA2048 G1")
        wanted = f"Amazon RDS {region} Root CA {kind}"
        if wanted not in names:
            raise BundleError(f"it has no {wanted!r}, the root that signs {region}'s database certificates "
                              f"({ca_identifier or 'rds-ca-rsa2048-g1'}); fetch the global bundle or {region}'s own")
    first = min(range(len(certs)), key=lambda i: certs[i].not_valid_after_utc)
    return Bundle(len(certs), digest, certs[first].not_valid_after_utc, names[first], tuple(sorted(regions)))


def _rds_root(cert: Any, cn: str, label: str) -> str:
    """The region of an Amazon RDS root CA, or BundleError when the certificate is not one."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import NameOID

    m = ROOT_CN.fullmatch(cn)
    org = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    unit = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if not m or org != [ORGANIZATION] or unit != [ORGANIZATIONAL_UNIT]:
        raise BundleError(f"{label} is not an Amazon RDS root CA (expected CN 'Amazon RDS <region> Root CA RSA2048 G1' or "
                          f"RSA4096/ECC384, O={ORGANIZATION}, OU={ORGANIZATIONAL_UNIT})")
    if cert.issuer != cert.subject:
        raise BundleError(f"{label} is not self-signed: the RDS bundles hold root CAs only")
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        raise BundleError(f"{label} carries a self-signature that does not verify (a damaged or forged certificate)") from None
    return str(m["region"])
