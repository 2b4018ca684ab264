"""One stack-file reader with one behaviour for every command (config/stack_file.py), each case
run through `python -m bootstrap` as a user would: plan, sql and cost read stack files exactly as
the deploy commands do."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fake_rds_ca
from tests.helpers import run_bootstrap

ROOT = Path(__file__).resolve().parent.parent
DEV = (ROOT / "Pulumi.dev.yaml").read_text()
PROD = (ROOT / "Pulumi.prod.yaml").read_text()


def bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return run_bootstrap(*args)


@pytest.fixture
def stack_file() -> Iterator[object]:
    """Write Pulumi.<unique>.yaml in the project for one test (the CLI reads the project's files)."""
    written: list[Path] = []

    def write(content: str | bytes) -> str:
        name = f"t{uuid.uuid4().hex[:10]}"
        path = ROOT / f"Pulumi.{name}.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        written.append(path)
        return name

    yield write
    for path in written:
        path.unlink(missing_ok=True)


def _one_sentence(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("qualified", ["myorg/dev", "myorg/pghome/dev"])
def test_fully_qualified_names_read_the_bare_stack_file(qualified: str) -> None:
    plain, full = bootstrap("plan", "--stack", "dev", "--json"), bootstrap("plan", "--stack", qualified, "--json")
    assert full.returncode == 0, full.stderr
    assert full.stdout == plain.stdout  # the same stack: Pulumi.dev.yaml, stack name dev inside the program
    assert bootstrap("sql", "--stack", qualified).returncode == 0


@pytest.mark.parametrize("command", ["plan", "sql", "cost"])
def test_a_duplicate_key_is_refused_by_every_command(stack_file, command: str) -> None:
    name = stack_file(DEV + "  pghome:azCount: 3\n")  # azCount is already in the dev file
    _one_sentence(bootstrap(command, "--stack", name), "duplicate key 'pghome:azCount'")


@pytest.mark.parametrize("command", ["plan", "sql", "cost"])
def test_a_non_utf8_stack_file_is_one_sentence(stack_file, command: str) -> None:
    name = stack_file(DEV.encode() + b"  # caf\xe9\n")
    _one_sentence(bootstrap(command, "--stack", name), "is not UTF-8 text")


@pytest.mark.parametrize("command", ["plan", "sql"])
def test_bad_yaml_is_one_sentence(stack_file, command: str) -> None:
    name = stack_file("config: [1, 2\n")
    _one_sentence(bootstrap(command, "--stack", name), "is not valid YAML")


def test_a_secure_value_is_judged_after_the_overrides(stack_file) -> None:
    assert "  pghome:appName: shop\n" in DEV
    name = stack_file(DEV.replace("  pghome:appName: shop\n", "  pghome:appName:\n    secure: v1:abc:def\n"))
    refused = bootstrap("plan", "--stack", name)
    _one_sentence(refused, "pghome:appName is an encrypted value that this command cannot decrypt; override it with --set appName=<value>")
    followed = bootstrap("plan", "--stack", name, "--set", "appName=shop")  # the advice works
    assert followed.returncode == 0, followed.stderr
    assert "shop-" in followed.stdout


def test_prod_prerequisites_are_judged_in_plan_as_in_preview(stack_file, tmp_path: Path) -> None:
    """The placeholder certificate that stops preview (bootstrap/deploy/preflight.py) stops plan too,
    in the same words; a real-looking certificate from the stack's region passes."""
    from bootstrap.deploy.preflight import prerequisites
    from config.load import load_settings
    from config.stack_file import stack_config

    name = stack_file(PROD)
    planned = bootstrap("plan", "--stack", name, "--strict")
    assert planned.returncode == 4, planned.stderr
    listed = bootstrap("plan", "--stack", name)  # without --strict: the same sentences, exit 0 (an offline review)
    assert listed.returncode == 0 and "Deploy prerequisites:" in listed.stdout
    expected = prerequisites(load_settings(stack_config(name), stack=name, check_credentials=False))
    assert any("is a placeholder" in p for p in expected)
    for sentence in expected:
        assert f"  - {sentence}" in planned.stdout
    foreign = bootstrap("plan", "--stack", name, "--strict", "--set", "certificateArn=arn:aws:acm:us-east-1:210987654321:certificate/5f0c6e2a-1b2c-4d3e-8f90-123456789abc")
    assert foreign.returncode == 4 and "an ALB needs a certificate from its own region" in foreign.stdout
    bundle = tmp_path / "rds-ca.pem"  # the check is that the configured bundle exists and is usable
    bundle.write_bytes(fake_rds_ca.good_bundle(("eu-west-1",)))
    ca_args = ["--set", f"appDbSslRootCert={bundle}"]
    own = ["--set", "dbDeployRoleArn=arn:aws:iam::210987654321:role/shop-prod-deploy", "--set", "dbBreakGlassRoleArn=arn:aws:iam::210987654321:role/break-glass",
           "--set", 'alarmEmails=["oncall@shop.io"]', "--set", 'alarmHttpsEndpoints=["https://hooks.shop.io/pager"]']
    real = bootstrap("plan", "--stack", name, "--strict", "--set", "certificateArn=arn:aws:acm:eu-west-1:210987654321:certificate/5f0c6e2a-1b2c-4d3e-8f90-123456789abc",
                     *ca_args, *own)
    assert real.returncode == 0, real.stdout[-2000:] + real.stderr
    assert "Deploy prerequisites" not in real.stdout


def test_dev_verifies_the_server_too_and_a_fresh_clone_still_plans(tmp_path: Path) -> None:
    """Issue 28 item 6: verify-full is dev's default, so dev's bundle is judged as prod's. A clone
    without one still plans (exit 0, the prerequisite listed with the command that fetches it);
    --strict exits 4; `appDbSslMode=require`, dev's explicit opt-out, needs no bundle."""
    missing = tmp_path / "none.pem"
    ca = ["--set", f"appDbSslRootCert={missing}"]
    listed = bootstrap("plan", "--stack", "dev", *ca)
    assert listed.returncode == 0, listed.stderr
    assert f"  - appDbSslRootCert {missing} does not exist; run `python -m bootstrap ca-bundle fetch --stack dev`" in listed.stdout
    assert bootstrap("plan", "--stack", "dev", "--strict", *ca).returncode == 4
    missing.write_text("<html>503 Service Unavailable</html>\n")  # what a proxy may hand back instead of the bundle
    broken = bootstrap("plan", "--stack", "dev", "--strict", *ca)
    assert broken.returncode == 4 and f"appDbSslRootCert {missing} is not a usable CA bundle: it holds no PEM certificate" in broken.stdout
    missing.write_bytes(fake_rds_ca.good_bundle(("eu-west-1",)))
    good = bootstrap("plan", "--stack", "dev", "--strict", *ca)
    assert good.returncode == 0 and "Deploy prerequisites" not in good.stdout, good.stdout[-1500:]
    opted_out = bootstrap("plan", "--stack", "dev", "--strict", "--set", "appDbSslMode=require", "--set", f"appDbSslRootCert={tmp_path / 'absent.pem'}")
    assert opted_out.returncode == 0 and "Deploy prerequisites" not in opted_out.stdout, opted_out.stdout[-1500:]


def test_values_left_from_the_example_stack_file_are_prerequisites_in_prod(stack_file) -> None:
    """The shipped prod file's reader roles (account 123456789012) and on-call address
    (example.com) pass validation but cannot work: each is named, with its key, in plan as in
    preview; a webhook at a reserved domain too. Mutation tried: dropping example_values' role loop
    or its email loop fails this test."""
    name = stack_file(PROD)
    listed = bootstrap("plan", "--stack", name, "--set", 'alarmHttpsEndpoints=["https://hooks.example.net/x"]')
    assert listed.returncode == 0, listed.stderr
    for sentence in ("dbDeployRoleArn arn:aws:iam::123456789012:role/shop-prod-deploy is in the example account 123456789012; set the ARN of your own role",
                     "dbBreakGlassRoleArn arn:aws:iam::123456789012:role/shop-break-glass is in the example account 123456789012",
                     "alarmEmails oncall@example.com is at a reserved example domain, so alarms would reach nobody",
                     "alarmHttpsEndpoints https://hooks.example.net/x is at a reserved example domain"):
        assert f"  - {sentence}" in listed.stdout, listed.stdout[-2500:]
    mixed = bootstrap("plan", "--stack", name, "--set", 'alarmEmails=["oncall@shop.io", "ops@mail.example"]',
                      "--set", "dbBreakGlassRoleArn=arn:aws:iam::210987654321:role/break-glass")
    listed_now = mixed.stdout.split("Deploy prerequisites:", 1)[1]
    assert "alarmEmails ops@mail.example is at a reserved example domain" in listed_now
    assert "oncall@shop.io" not in listed_now and "role/break-glass" not in listed_now
    assert "dbDeployRoleArn arn:aws:iam::123456789012:role/shop-prod-deploy" in listed_now
