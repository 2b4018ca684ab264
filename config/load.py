"""All stack configuration, read once, validated in one place, into frozen typed settings.

`Pulumi.yaml` declares every project key (type, description, default): `config/stack_file.py`
reads it and merges stack files. This module applies the defaults through `Reader`
(`config/reader.py`), runs the section rules (`config/sections.py`, checked against
`config/limits.py`) and rejects keys it does not know. Every problem found is collected and
raised as one `ConfigError` before any resource is registered, so a bad value never leaves a
half-built graph behind. The result is a `Settings` (`config/settings.py`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable, Mapping
from typing import Any

from config import appdb_section, naming, sections
from config.monitoring import monitoring as monitoring_section
from config.reader import Reader
from config.restore_checks import restore_checks
from config.schema import ProjectSchema, project_schema
from config.settings import Environment, NatStrategy, Settings, stack_prefix
from config.stack_file import InputError, StackFile, settings_name


class ConfigError(ValueError):
    """One or more invalid configuration values; the message names each key and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{len(problems)} invalid configuration values:\n" + "\n".join(
                f"  - {p}" for p in problems
            )
        super().__init__(message)


# Why natStrategy none is refused (issue 23 item 3): even with interfaceEndpoints the stack needs AWS
# APIs that have no endpoint here (rds: the master rotation's ModifyDBInstance, ecs: the redeploy
# after a rotation, ssmmessages from the app's tasks when ECS Exec is on) and the access task's image
# comes from ECR Public through the pull-through cache, whose first pull through an interface
# endpoint needs the VPC's NAT route (the ECR guide, vpc-endpoints.md, considerations).
NO_NAT_PROBLEM = ("cannot work: the rotation (rds, ecs), the app's ECS Exec (ssmmessages) and the access image's first pull from ECR Public "
                  "need internet egress even with interfaceEndpoints; use single or per_az")
# Why dbAccess needs the S3 gateway endpoint (issue 28 item 7): the access task's security group
# reaches S3 only through the gateway endpoint's prefix list, and ECR serves image layers from S3.
NO_S3_ENDPOINT_PROBLEM = ("cannot work with dbAccess true: the access task has no route to the internet and pulls its image "
                          "layers from S3 through the gateway endpoint (free); set s3GatewayEndpoint true or dbAccess false")


def load_settings(
    raw: Mapping[str, Any],
    *,
    stack: str,
    schema: ProjectSchema | None = None,
    environ: Mapping[str, str] | None = None,
    check_credentials: bool = True,
) -> Settings:
    """Parse and validate a full config map ({'<project>:<key>': value, 'aws:region': ...}).

    Values may be the strings the Pulumi CLI passes (numbers, booleans and JSON arrays as text)
    or already-typed YAML values. Raises ConfigError listing every problem. `check_credentials`
    (on for the program) also requires PGPASSWORD when the app database is enabled; tools that
    never connect (the SQL rendering) turn it off.
    """
    schema = schema or project_schema()
    r = Reader(raw, schema)
    unknown = sorted(set(r.values) - set(schema.keys))
    for key in unknown:
        close = _closest(key, schema.keys)
        hint = f"; did you mean {schema.project}:{close}?" if close else ""
        r.problems.append(f"{r.qualified(key)} is not a known key of project {schema.project}{hint} (declared keys are listed in Pulumi.yaml)")
    region, env, app_name, tags = sections.general(r)
    prefix = stack_prefix(app_name, stack)
    if "appName" not in r.failed and region:
        problems = naming.name_problems(app_name, stack, region)
        if problems:
            r.fail("appName", app_name, f"with stack {stack!r} " + "; ".join(problems)
                   + "; choose a shorter appName (or stack name) of lowercase letters, digits and hyphens")
    network = sections.network(r, prefix, env)
    database = sections.database(r, prefix, env, network.az_count)
    registry = sections.registry(r, prefix, env)
    service = sections.service(r, prefix, env)
    app_database = appdb_section.app_database(r, prefix, env, app_name, database, os.environ if environ is None else environ, check_credentials)
    security = sections.security(r, env)
    monitoring = monitoring_section(r, prefix, env is Environment.PROD)
    if env is Environment.PROD:
        r.check(network.nat_strategy is not NatStrategy.SINGLE or network.az_count == 1, "natStrategy", network.nat_strategy.value,
                "prod with more than one AZ needs per_az so one AZ failure cannot cut egress")
        r.check(database.multi_az, "dbMultiAz", database.multi_az, "must be true in prod")
    for cidr in database.admin_cidrs if not r.failed & {"dbAdminCidrs", "vpcCidr"} else ():
        r.check(ipaddress.IPv4Network(cidr).subnet_of(network.cidr), "dbAdminCidrs", cidr,
                f"must lie inside vpcCidr {network.cidr}: the database subnets are isolated (no route out of the VPC), so replies "
                "to an outside range (VPN, office) never get back; from outside use `python -m bootstrap tunnel` (dbAccess: true)")
    if network.nat_strategy is NatStrategy.NONE and "natStrategy" not in r.failed:
        r.fail("natStrategy", "none", NO_NAT_PROBLEM)
    if database.access and not network.s3_gateway_endpoint:
        r.fail("s3GatewayEndpoint", False, NO_S3_ENDPOINT_PROBLEM)
    network = dataclasses.replace(network, access_endpoints=database.access)
    r.strings("costUsage")  # type-checked here; only the offline cost estimate (bootstrap/cost) uses it
    restore = restore_checks(r)  # only `bootstrap restore` uses it
    unread = set(schema.keys) - r.read
    if unread:  # programming error: a declared key nobody reads
        raise KeyError(f"Pulumi.yaml declares keys the loader never reads: {sorted(unread)}")
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        project=schema.project,
        stack=stack,
        region=region,
        environment=env,
        app_name=app_name,
        tags={"Project": schema.project, "Stack": stack, "Environment": env.value, "ManagedBy": "pulumi", **tags},
        network=network,
        database=database,
        registry=registry,
        service=service,
        app_database=app_database,
        security=security,
        monitoring=monitoring,
        restore=restore,
    )


def _closest(key: str, candidates: Iterable[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


def raw_pulumi_config() -> dict[str, Any]:
    """The full config map the Pulumi engine handed this program (all namespaces)."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    return raw


def load_from_pulumi() -> Settings:
    """Settings for the running Pulumi program (the CLI, the Automation API or the mocks)."""
    import pulumi

    return load_settings(raw_pulumi_config(), stack=pulumi.get_stack())


def settings_for(sf: StackFile, stack: str, decrypted: Mapping[str, str] | None = None) -> Any:
    """Typed settings from the stack file, with `secure:` values replaced by their decrypted text.
    The PGPASSWORD check belongs to the program the CLI runs, not here (check_credentials=False)."""
    raw: dict[str, Any] = {}
    for key, value in sf.config.items():
        if isinstance(value, dict) and "secure" in value:
            if decrypted is None or key not in decrypted:
                raise InputError(f"{sf.path.name}: {key} is encrypted and could not be decrypted")
            raw[key] = decrypted[key]
        else:
            raw[key] = value
    return load_settings(raw, stack=settings_name(stack), check_credentials=False)
