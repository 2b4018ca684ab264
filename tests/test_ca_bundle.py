"""Issue 28 item 6: verify-full is the default in every stack, against an RDS CA bundle our tooling
obtains (`python -m bootstrap ca-bundle fetch`) and judges (`ca-bundle check`, the deploy preflight).

Bundles are generated (tests/fake_rds_ca.py), named and shaped like AWS's; no test touches the
network: the commands download through `bootstrap.cli.ca_bundle.download`, reached here with a
file:// URL (as a mirror would be) or replaced in-process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.error
from pathlib import Path
from typing import TypedDict

import psycopg
import pytest

from config.ca_bundle import GLOBAL_URL, BundleError, check_bundle, region_url
from config.load import load_settings
from config.stack_file import stack_config
from tests import fake_rds_ca as fake
from tests.helpers import assert_config_error, run_bootstrap


class Validity(TypedDict):
    """not_before/not_after of fake_rds_ca.root()."""

    not_before: dt.datetime
    not_after: dt.datetime


EXPIRED: Validity = {"not_before": fake.NOW - dt.timedelta(days=400), "not_after": fake.NOW - dt.timedelta(days=1)}


def _settings(stack: str, **overrides: str):  # noqa: ANN202 (Settings)
    return load_settings(stack_config(stack, overrides), stack=stack, check_credentials=False)


# --- config: the default, dev's opt-out, prod's refusal -----------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_stack_verifies_the_server_by_default(stack: str) -> None:
    app = _settings(stack).app_database
    assert (app.ssl_mode.value, app.ssl_root_cert) == ("verify-full", "certs/rds-global-bundle.pem")


def test_dev_may_opt_out_to_require_only_explicitly() -> None:
    assert _settings("dev", appDbSslMode="require").app_database.ssl_mode.value == "require"


def test_prod_refuses_require_and_verify_full_needs_a_bundle() -> None:
    assert_config_error("prod", {"appDbSslMode": "require"}, "pghome:appDbSslMode = 'require' is invalid: must be verify-full in prod")
    assert_config_error("dev", {"appDbSslRootCert": ""}, "pghome:appDbSslRootCert", "ca-bundle fetch")


def test_the_provider_of_a_dev_stack_verifies_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from bootstrap.plan.mockgraph import run_stack

    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    (provider,) = run_stack("dev", {"appDbEnabled": "true"}).of_type("pulumi:providers:postgresql")
    assert provider.inputs["sslmode"] == "verify-full" and provider.inputs["sslrootcert"] == "certs/rds-global-bundle.pem"


# --- the checks, on bytes ------------------------------------------------------------------------

def test_a_bundle_shaped_like_aws_passes_and_reports_its_earliest_expiry() -> None:
    soon = fake.root("Amazon RDS us-east-1 Root CA ECC384 G1", not_after=fake.NOW + dt.timedelta(days=90))
    data = fake.good_bundle(("eu-west-1",)) + fake.pem(soon)
    bundle = check_bundle(data, region="eu-west-1", ca_identifier="rds-ca-rsa4096-g1")
    assert bundle.count == 4 and bundle.regions == ("eu-west-1", "us-east-1")
    assert bundle.earliest_name == "Amazon RDS us-east-1 Root CA ECC384 G1"
    assert bundle.earliest_expiry == soon.not_valid_after_utc and bundle.sha256 == hashlib.sha256(data).hexdigest()
    assert f"earliest expiry {soon.not_valid_after_utc:%Y-%m-%d}" in bundle.summary()


@pytest.mark.parametrize("data,fragment", [
    (b"", "holds no PEM certificate"),
    (b"<html><body>Access Denied</body></html>", "holds no PEM certificate"),
    (b"-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!\n-----END CERTIFICATE-----\n", "certificate 1 is not a valid X.509 certificate"),
    (fake.pem(fake.root()) + b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", "holds text that is not a PEM certificate"),
    (fake.pem(fake.root()) + b"-----BEGIN CERTIFICATE-----\nMIIB", "holds text that is not a PEM certificate"),
    (fake.pem(fake.root(), fake.root("Amazon RDS eu-west-1 Root CA ECC384 G1", **EXPIRED)),
     "certificate 2 (Amazon RDS eu-west-1 Root CA ECC384 G1) expired on"),
    (fake.pem(fake.root(not_before=fake.NOW + dt.timedelta(days=3))), "is not valid before"),
    (fake.pem(fake.root("Amazon RDS eu-west-1 Root CA RSA2048 G1", ca=False)), "is not a CA certificate"),
    (fake.pem(fake.root("Totally Legit Root CA")), "(Totally Legit Root CA) is not an Amazon RDS root CA"),
    (fake.pem(fake.root(name=fake.rds_name("Amazon RDS eu-west-1 Root CA RSA2048 G1", org="Evil Corp"))), "is not an Amazon RDS root CA"),
])
def test_a_bad_bundle_is_refused_in_one_sentence(data: bytes, fragment: str) -> None:
    with pytest.raises(BundleError) as excinfo:
        check_bundle(data)
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_a_forged_self_signature_is_refused() -> None:
    """The right name over a signature that does not verify: a tampered certificate."""
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(fake.root().public_bytes(Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value; the signed part and the structure stay intact
    forged = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bytes(der)) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(BundleError, match="self-signature that does not verify"):
        check_bundle(forged)


def test_the_stack_region_root_must_be_there_and_a_pin_must_match() -> None:
    data = fake.good_bundle(("us-east-1",))
    with pytest.raises(BundleError, match="has no 'Amazon RDS eu-west-1 Root CA RSA2048 G1'"):
        check_bundle(data, region="eu-west-1", ca_identifier="rds-ca-rsa2048-g1")
    check_bundle(data, region="us-east-1", ca_identifier="rds-ca-ecc384-g1")
    with pytest.raises(BundleError, match=f"its sha256 is {hashlib.sha256(data).hexdigest()}, not the pinned 00ff"):
        check_bundle(data, expect_sha256="00FF")
    assert check_bundle(data, expect_sha256=hashlib.sha256(data).hexdigest().upper()).count == 3


def test_the_preflight_judges_structure_not_names() -> None:
    """A test CA (tests/pgserver.py) is a usable bundle for the deploy; an expired one is not."""
    check_bundle(fake.pem(fake.root("pghome test CA")), rds_names=False)
    with pytest.raises(BundleError, match="expired"):
        check_bundle(fake.pem(fake.root("pghome test CA", **EXPIRED)), rds_names=False)


# --- the command, through python -m bootstrap ---------------------------------------------------

def _err_line(result) -> str:  # noqa: ANN001
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_fetch_writes_a_checked_bundle_and_check_agrees(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "global-bundle.pem"
    source.parent.mkdir()
    source.write_bytes(fake.good_bundle())
    target = tmp_path / "certs" / "rds-global-bundle.pem"
    fetched = run_bootstrap("ca-bundle", "fetch", "--stack", "prod", "--url", source.as_uri(), "--file", str(target))
    assert fetched.returncode == 0, fetched.stderr
    assert target.read_bytes() == source.read_bytes()
    assert f"downloading {source.as_uri()}" in fetched.stdout and "6 CA certificates for 2 regions" in fetched.stdout
    checked = run_bootstrap("ca-bundle", "check", "--stack", "prod", "--file", str(target),
                            "--sha256", hashlib.sha256(source.read_bytes()).hexdigest())
    assert checked.returncode == 0 and "earliest expiry" in checked.stdout, checked.stderr


# Bundles both `fetch` (as a download) and `check` (as the file) refuse, with what they say.
BAD_BUNDLES = {
    "expired": (lambda: fake.pem(fake.root(**EXPIRED)), "is refused: certificate 1 (Amazon RDS eu-west-1 Root CA RSA2048 G1) expired on"),
    "non-ca": (lambda: fake.pem(fake.root(ca=False)), "is refused: certificate 1 (Amazon RDS eu-west-1 Root CA RSA2048 G1) is not a CA certificate"),
    "garbage": (lambda: b"\x00\x01this is not a certificate\n", "is refused: it holds no PEM certificate"),
}


@pytest.mark.parametrize("case,fragment", [(case, says) for case, (_, says) in BAD_BUNDLES.items()] + [
    ("other-region", "is refused: it has no 'Amazon RDS eu-west-1 Root CA RSA2048 G1'"),
    ("unreachable", "could not download file://"),
])
def test_fetch_refuses_a_bad_download_and_keeps_the_old_bundle(tmp_path: Path, case: str, fragment: str) -> None:
    source = tmp_path / "served.pem"
    source.write_bytes(BAD_BUNDLES[case][0]() if case in BAD_BUNDLES else fake.good_bundle(("us-east-1",)))
    if case == "unreachable":
        source.unlink()
    target = tmp_path / "rds-global-bundle.pem"
    target.write_bytes(b"the previous bundle")
    result = run_bootstrap("ca-bundle", "fetch", "--stack", "dev", "--url", source.as_uri(), "--file", str(target))
    assert result.returncode == 1 and fragment in _err_line(result) and f"{target} was not changed" in result.stderr, result.stderr
    assert target.read_bytes() == b"the previous bundle"


@pytest.mark.parametrize("case,fragment", [(case, says) for case, (_, says) in BAD_BUNDLES.items()] + [
    ("missing", "does not exist; run `python -m bootstrap ca-bundle fetch --stack dev`"),
    ("pinned", "its sha256 is"),
])
def test_check_refuses_in_one_sentence(tmp_path: Path, case: str, fragment: str) -> None:
    target = tmp_path / "bundle.pem"
    if case != "missing":
        target.write_bytes(BAD_BUNDLES[case][0]() if case in BAD_BUNDLES else fake.good_bundle(("eu-west-1",)))
    pin = ["--sha256", "ab" * 32] if case == "pinned" else []
    result = run_bootstrap("ca-bundle", "check", "--stack", "dev", "--file", str(target), *pin)
    assert result.returncode == 1 and fragment in _err_line(result), result.stderr
    assert result.stderr.startswith(f"error: the RDS CA bundle {target} ")


def test_the_urls_are_aws_trust_store_and_plain_http_is_refused(tmp_path: Path) -> None:
    assert GLOBAL_URL == "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
    assert region_url("eu-west-1") == "https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem"
    result = run_bootstrap("ca-bundle", "fetch", "--url", "http://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
                           "--file", str(tmp_path / "b.pem"))
    assert result.returncode == 1 and "is not an https:// (or file://) URL" in _err_line(result)
    assert not (tmp_path / "b.pem").exists()
    usage = run_bootstrap("ca-bundle", "fetch", "--region-bundle")
    assert usage.returncode == 2 and "--region-bundle needs --stack" in usage.stderr


def test_fetch_asks_aws_for_the_stack_region_bundle_through_the_one_seam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli import ca_bundle
    from bootstrap.cli.main import main

    asked: list[str] = []

    def served(url: str) -> bytes:
        asked.append(url)
        return fake.good_bundle(("eu-west-1",))

    monkeypatch.setattr(ca_bundle, "download", served)
    target = tmp_path / "eu.pem"
    assert main(["ca-bundle", "fetch", "--stack", "dev", "--region-bundle", "--file", str(target)]) == 0
    assert main(["ca-bundle", "fetch", "--stack", "dev", "--file", str(target)]) == 0
    assert asked == [region_url("eu-west-1"), GLOBAL_URL] and target.is_file()

    def unavailable(url: str) -> bytes:  # what urllib raises on a 503, turned into the command's sentence
        try:
            raise urllib.error.HTTPError(url, 503, "Service Unavailable", {}, None)  # type: ignore[arg-type]
        except urllib.error.HTTPError as exc:
            raise ca_bundle.DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None

    monkeypatch.setattr(ca_bundle, "download", unavailable)
    capsys.readouterr()
    assert main(["ca-bundle", "fetch", "--stack", "dev", "--file", str(target)]) == 1
    assert capsys.readouterr().err == f"error: could not download {GLOBAL_URL}: HTTP 503 Service Unavailable; {target} was not changed\n"


def test_download_turns_http_failures_into_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam itself, with urllib's opener replaced: an HTTP error and a DNS failure."""
    import urllib.request

    from bootstrap.cli import ca_bundle

    def http_404(url: str, timeout: float) -> None:
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib.request, "urlopen", http_404)
    with pytest.raises(ca_bundle.DownloadError, match=r"could not download https://x/b.pem: HTTP 404 Not Found$"):
        ca_bundle.download("https://x/b.pem")

    def no_dns(url: str, timeout: float) -> None:
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    with pytest.raises(ca_bundle.DownloadError, match="could not download https://x/b.pem: .*Name or service not known"):
        ca_bundle.download("https://x/b.pem")


# --- verify-full against a real server -----------------------------------------------------------

def test_verify_full_trusts_the_cas_in_the_bundle_and_no_other(pg, tmp_path: Path) -> None:  # noqa: ANN001
    """The server's certificate is signed by a test CA inside a bundle of RDS-like roots: the
    connection succeeds. The same roots plus another CA: certificate verify failed (libpq checks
    the certificate during the TLS handshake, before any authentication message)."""
    from dbcore import pgconn
    from tests.pgserver import _write_tls_files, encrypted

    user, password = "cabundle_probe", "cabundle-probe-password-1"
    with pg.connect_super() as conn:
        conn.execute(f"DROP ROLE IF EXISTS {user}")
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    roots = fake.good_bundle(("eu-west-1",))
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(roots + pg.ca_file.read_bytes())
    check_bundle(trusted.read_bytes(), rds_names=False)  # what the preflight accepts
    ep = pgconn.Endpoint(host="localhost", port=pg.port, sslmode="verify-full", sslrootcert=str(trusted), connect_timeout=5)
    with pgconn.connect(ep, user, password) as conn:
        assert encrypted(conn)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    _write_tls_files(other_dir)
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_bytes(roots + (other_dir / "ca.crt").read_bytes())
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        pgconn.connect(pgconn.Endpoint(host="localhost", port=pg.port, sslmode="verify-full", sslrootcert=str(untrusted), connect_timeout=5),
                       user, password)
