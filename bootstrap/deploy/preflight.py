"""Checks that run before any cloud call: prod prerequisites that config validation cannot see
(a placeholder certificate, role or alarm subscriber left from the shipped example stack file, a
certificate in another region, a CA bundle that is missing or unusable) and the
security controls evaluated on the program under mocks (a must-hold failure stops the command)."""

from __future__ import annotations

import os
import re
import runpy
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bootstrap.deploy.workspace import DeployError
from config.stack_file import PROJECT_DIR, settings_name

EXAMPLE_ACCOUNTS = frozenset({"123456789012", "000000000000", "111111111111"})
ZERO_UUID = re.compile(r"^0{8}-0{4}-[0-9a-f]0{3}-[0-9a-f]0{3}-0{12}$")
# RFC 2606 / RFC 6761 names that never deliver mail or answer a webhook.
EXAMPLE_DOMAIN = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$", re.I)
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(?P<account>\d{12}):role/")
CERT_ARN = re.compile(r"^arn:aws[\w-]*:acm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):certificate/(?P<id>[0-9a-f-]+)$")


def prerequisites(settings: Any, project_dir: Path = PROJECT_DIR) -> list[str]:
    """One sentence per problem; empty when the stack can go to the cloud."""
    from config.rotation_archive import missing_archive

    problems: list[str] = []
    archive = missing_archive(project_dir)  # the engine hashes it at registration: an `up` would fail half-way
    if archive:
        problems.append(archive)
    cert = str(getattr(settings.service, "certificate_arn", "") or "")
    m = CERT_ARN.match(cert)
    if m:
        if m["account"] in EXAMPLE_ACCOUNTS or ZERO_UUID.match(m["id"]):
            problems.append(f"certificateArn {cert} is a placeholder (example account or all-zero id); set the ARN of your ACM certificate")
        elif m["region"] != settings.region:
            problems.append(f"certificateArn is in {m['region']} but the stack deploys to {settings.region}; an ALB needs a certificate from its own region")
    problems.extend(example_values(settings))
    bundle = ca_bundle_problem(settings, project_dir)
    if bundle:
        problems.append(bundle)
    return problems


def example_values(settings: Any) -> list[str]:
    """Values copied from the shipped example stack file that pass validation but cannot work: a
    master-secret reader role in an example account (the secret's resource and key policies would
    name a principal that is not yours, and lock your deploy role out), and an alarm subscriber at
    a reserved example domain (alarms would reach nobody)."""
    problems = []
    readers = tuple(getattr(settings.database, "master_secret_readers", ()))
    keys = ("dbDeployRoleArn", "dbBreakGlassRoleArn") if len(readers) == 2 else ("dbDeployRoleArn or dbBreakGlassRoleArn",) * len(readers)
    for key, arn in zip(keys, readers):
        m = ROLE_ARN.match(arn)
        if m and m["account"] in EXAMPLE_ACCOUNTS:
            problems.append(f"{key} {arn} is in the example account {m['account']}; set the ARN of your own role")
    monitoring = getattr(settings, "monitoring", None)
    for email in getattr(monitoring, "emails", ()):
        if EXAMPLE_DOMAIN.search(email.rpartition("@")[2]):
            problems.append(f"alarmEmails {email} is at a reserved example domain, so alarms would reach nobody; set your on-call address")
    for url in getattr(monitoring, "https_endpoints", ()):
        host = (urlsplit(url).hostname or "")
        if EXAMPLE_DOMAIN.search(host):
            problems.append(f"alarmHttpsEndpoints {url} is at a reserved example domain, so alarms would reach nobody; set your webhook")
    return problems


def ca_bundle_problem(settings: Any, project_dir: Path = PROJECT_DIR) -> str | None:
    """Every stack verifies the server (verify-full is the default, dev included): the bundle must be
    there and usable, or each connection of the deploy fails. Only the structure is judged here
    (PEM CA certificates, none expired); `ca-bundle check` also wants Amazon RDS roots, which a
    test's own CA is not."""
    from config.ca_bundle import BundleError, check_bundle

    app = settings.app_database
    mode = str(getattr(app.ssl_mode, "value", app.ssl_mode))
    if not (mode.startswith("verify-") and app.ssl_root_cert):
        return None  # require: the dev-only opt-out, nothing to read
    fetch = f"run `python -m bootstrap ca-bundle fetch --stack {settings.stack}`"
    bundle = Path(app.ssl_root_cert)
    bundle = bundle if bundle.is_absolute() else project_dir / bundle
    if not bundle.is_file():
        return f"appDbSslRootCert {app.ssl_root_cert} does not exist; {fetch} to download and check the RDS CA bundle"
    try:
        check_bundle(bundle.read_bytes(), rds_names=False)
    except BundleError as exc:
        return f"appDbSslRootCert {app.ssl_root_cert} is not a usable CA bundle: {exc}; {fetch} to replace it"
    return None


def require_rotation_archive(project_dir: Path = PROJECT_DIR) -> None:
    """Before anything reaches the backend: the program references the archive, and the engine
    hashes it when the resource registers, so a missing one fails half-way through an update."""
    from config.rotation_archive import missing_archive

    problem = missing_archive(project_dir)
    if problem:
        raise DeployError(problem)


def check_prerequisites(settings: Any, project_dir: Path = PROJECT_DIR) -> None:
    problems = prerequisites(settings, project_dir)
    if problems:
        raise DeployError(problems[0] + (f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""))


def program_config(config: Mapping[str, Any], project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """What the CLI hands the program: Pulumi.yaml's defaults under the stack's values, as text."""
    from config.stack_file import cli_string, project_defaults

    return {k: cli_string(v) for k, v in {**project_defaults(project_dir), **config}.items()}


def security_gate(stack: str, config: Mapping[str, Any], out: Callable[[str], None], project_dir: Path = PROJECT_DIR) -> None:
    """Run the program under mocks with the config the CLI will get and evaluate the controls."""
    from bootstrap.plan import report as plan
    from bootstrap.plan.mockgraph import run_program

    project = "pghome"
    saved = os.environ.get("PGPASSWORD")
    os.environ.setdefault("PGPASSWORD", "offline-check-connects-nowhere")  # the program checks it; nothing connects under mocks
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        graph = run_program(lambda: runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__"),
                            stack=settings_name(stack), config=program_config(config, project_dir), project=project)
        report = plan.check_graph(graph)  # re-reads the settings, with the same credential check
    except Exception as exc:
        raise DeployError(f"the program fails before any cloud call: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    finally:
        if saved is None:
            os.environ.pop("PGPASSWORD", None)
    out(report.summary())
    if report.must_hold_failed:
        ids = ", ".join(r.control.id for r in report.must_hold_failed)
        raise DeployError(f"must-hold security controls fail ({ids}); see `python -m bootstrap plan --stack {stack} --controls`; nothing was deployed")


def policy_packs(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The policy pack directory, when its environment exists (policy/venv with pulumi_policy)."""
    pack = project_dir / "policy"
    return [str(pack)] if (pack / "PulumiPolicy.yaml").is_file() and (pack / "venv").is_dir() else []


def policy_pack_configs(packs: list[str], prod: bool) -> list[str]:
    """--policy-pack-config for each pack: prod makes every waivable control mandatory (prod waives nothing)."""
    return [str(Path(p) / "prod-enforcement.json") for p in packs] if prod else []
