"""The config loader: defaults, typing, validation and unknown keys, before any resource exists."""

from __future__ import annotations

import ipaddress
import json

import pytest

from config.load import ConfigError, load_settings
from config.schema import project_schema
from config.settings import Environment, NatStrategy
from config.stack_file import stack_config
from tests.helpers import assert_config_error


def test_dev_and_prod_settings_parse_to_typed_values():
    dev = load_settings(stack_config("dev"), stack="dev")
    prod = load_settings(stack_config("prod"), stack="prod")
    assert dev.environment is Environment.DEV and prod.environment is Environment.PROD
    assert dev.network.cidr == ipaddress.IPv4Network("10.20.0.0/16")
    assert (dev.network.az_count, prod.network.az_count) == (2, 3)
    assert (dev.network.nat_strategy, prod.network.nat_strategy) == (NatStrategy.SINGLE, NatStrategy.PER_AZ)
    # prod is the stricter, bigger, more durable stack
    assert prod.database.multi_az and not dev.database.multi_az
    assert prod.database.deletion_protection and prod.database.protect
    assert prod.database.backup_retention_days > dev.database.backup_retention_days >= 7
    assert prod.service.min_capacity > dev.service.min_capacity
    assert prod.service.https and not dev.service.https
    assert dev.tags["Stack"] == "dev" and dev.tags["Team"] == "platform"


def test_defaults_from_pulumi_yaml_apply_when_the_stack_is_silent():
    raw = {"aws:region": "us-east-1", "pghome:environment": "dev"}
    s = load_settings(raw, stack="scratch")
    schema = project_schema()
    assert s.network.cidr == ipaddress.IPv4Network(schema.keys["vpcCidr"].default)
    assert s.network.az_count == schema.keys["azCount"].default
    assert s.app_name == schema.keys["appName"].default
    assert s.database.master_username == schema.keys["dbMasterUsername"].default


def test_cli_text_forms_are_parsed_by_declared_type():
    raw = stack_config("dev", {"azCount": "3", "interfaceEndpoints": "true", "dbAdminCidrs": '["10.20.9.0/24"]'})
    s = load_settings(raw, stack="dev")
    assert s.network.az_count == 3 and s.network.interface_endpoints is True
    assert s.database.admin_cidrs == ("10.20.9.0/24",)


def test_every_declared_key_has_a_type_and_description():
    for key, spec in project_schema().keys.items():
        assert spec.type in {"string", "integer", "boolean", "array"}, key
        assert len(spec.description) > 15, f"{key} needs a real description"


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as exc:
        load_settings(stack_config("dev", {"azCount": "0", "natStrategy": "many"}), stack="dev")
    assert len(exc.value.problems) == 2
    assert "pghome:azCount" in str(exc.value) and "pghome:natStrategy" in str(exc.value)


@pytest.mark.parametrize(
    ("stack", "overrides", "fragments"),
    [
        ("dev", {"vpcCidr": "8.8.0.0/16"}, ["pghome:vpcCidr", "'8.8.0.0/16'", "private range"]),
        ("dev", {"vpcCidr": "10.0.0.1/16"}, ["pghome:vpcCidr", "no host bits"]),
        ("dev", {"vpcCidr": "banana"}, ["pghome:vpcCidr", "CIDR notation"]),
        ("dev", {"vpcCidr": "10.0.0.0/8"}, ["pghome:vpcCidr", "/16 to /24"]),
        ("dev", {"azCount": "0"}, ["pghome:azCount", "from 2 to 6"]),
        ("dev", {"azCount": "7"}, ["pghome:azCount", "from 2 to 6"]),
        ("dev", {"azCount": "two"}, ["pghome:azCount", "must be an integer"]),
        ("dev", {"azCount": "5"}, ["pghome:azCount", "holds 4 subnet(s) per tier"]),
        ("dev", {"subnetPrefixLength": "29"}, ["pghome:subnetPrefixLength", "from 16 to 28"]),
        ("dev", {"natStrategy": "double"}, ["pghome:natStrategy", "one of none, single, per_az"]),
        ("dev", {"natStrategy": "none"}, ["pghome:natStrategy", "interfaceEndpoints"]),
        ("dev", {"flowLogRetentionDays": "10"}, ["pghome:flowLogRetentionDays", "must be one of"]),
        ("dev", {"interfaceEndpoints": "yes"}, ["pghome:interfaceEndpoints", "true or false"]),
        ("dev", {"appName": "My_App"}, ["pghome:appName", "lowercase"]),
        ("dev", {"environment": "production"}, ["pghome:environment", "one of dev, staging, prod"]),
        ("dev", {"tags": '["NoEquals"]'}, ["pghome:tags", "Key=Value"]),
        ("dev", {"tags": "not json"}, ["pghome:tags", "list of strings"]),
        ("dev", {"aws:region": "mars-1"}, ["aws:region", "AWS region"]),
        ("dev", {"azCuont": "3"}, ["pghome:azCuont is not a known key", "did you mean pghome:azCount"]),
        ("dev", {"containerPort": "80"}, ["pghome:containerPort", "from 1024 to 65535"]),
        ("prod", {"natStrategy": "single"}, ["pghome:natStrategy", "per_az"]),
        ("prod", {"securityWaivers": '["RDS.5=we like single AZ in prod"]'}, ["pghome:securityWaivers", "prod cannot waive"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_config_fails_with_a_clear_error_and_registers_nothing(stack, overrides, fragments):
    assert_config_error(stack, overrides, *fragments)


def test_missing_required_environment_is_named():
    raw = {"aws:region": "eu-west-1"}
    with pytest.raises(ConfigError, match=r"pghome:environment is required"):
        load_settings(raw, stack="x")


# --- found by mutation testing (issue 30): checks only the graph tests or nothing reached -------------


@pytest.mark.parametrize("cidr", ["10.1.2.3/16", "not-a-cidr", "8.8.8.0/24", "0.0.0.0/0", "10.0.0.0/33"])
def test_admin_cidrs_must_be_private_networks_without_host_bits(cidr: str) -> None:
    """Mutations that survived before: `IPv4Network(text, strict=True)` -> `strict=False` (a
    host address with a prefix, '10.1.2.3/16', accepted) and the parse-error branch returning True."""
    with pytest.raises(ConfigError) as exc:
        load_settings(stack_config("dev", {"dbAdminCidrs": json.dumps([cidr])}), stack="dev", check_credentials=False)
    assert f"pghome:dbAdminCidrs = {cidr!r} is invalid: each entry must be a private IPv4 CIDR (RFC 1918), never 0.0.0.0/0" in str(exc.value)


def test_a_private_admin_cidr_is_accepted() -> None:
    s = load_settings(stack_config("dev", {"dbAdminCidrs": '["10.20.9.0/24", "10.20.128.0/17"]'}), stack="dev", check_credentials=False)
    assert list(s.database.admin_cidrs) == ["10.20.9.0/24", "10.20.128.0/17"]


def test_secrets_stay_restorable_30_days_in_prod_only() -> None:
    dev = load_settings(stack_config("dev"), stack="dev", check_credentials=False)
    prod = load_settings(stack_config("prod"), stack="prod", check_credentials=False)
    assert (dev.database.secret_recovery_window_days, prod.database.secret_recovery_window_days) == (0, 30)


def test_an_unset_region_is_named_as_unset() -> None:
    raw = {k: v for k, v in stack_config("dev").items() if k != "aws:region"}
    with pytest.raises(ConfigError) as exc:
        load_settings(raw, stack="dev", check_credentials=False)
    assert "aws:region = <unset> is invalid: set it in the stack file to an AWS region such as eu-west-1" in str(exc.value)


def _network_problem(**overrides: object) -> str | None:
    try:
        load_settings(stack_config("dev", {k: str(v) for k, v in overrides.items()}), stack="dev", check_credentials=False)
    except ConfigError as exc:
        return str(exc)
    return None


def test_vpc_cidr_prefix_boundaries() -> None:
    """/16 and /24 are allowed, /15 and /25 are not; host bits and public ranges are refused, each
    with the value and the rule. Mutations that survived before: `<= 24` -> `< 24` and -> `<= 25`,
    and the messages replaced (mutmut's XX...XX); each fails here now."""
    assert _network_problem(vpcCidr="10.20.0.0/16") is None
    assert _network_problem(vpcCidr="10.20.0.0/24", azCount=2, subnetPrefixLength=28) is None
    rule = "must have a prefix length from /16 to /24 (the sizes AWS allows for a VPC we can split)"
    assert f"pghome:vpcCidr = '10.20.0.0/25' is invalid: {rule}" in (_network_problem(vpcCidr="10.20.0.0/25", subnetPrefixLength=28) or "")
    assert f"pghome:vpcCidr = '10.20.0.0/15' is invalid: {rule}" in (_network_problem(vpcCidr="10.20.0.0/15") or "")
    assert ("pghome:vpcCidr = '10.20.0.1/16' is invalid: must be an IPv4 network in CIDR notation with no host bits set, e.g. 10.0.0.0/16"
            in (_network_problem(vpcCidr="10.20.0.1/16") or ""))
    assert ("pghome:vpcCidr = '8.20.0.0/16' is invalid: must lie in a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"
            in (_network_problem(vpcCidr="8.20.0.0/16") or ""))


def test_subnet_prefix_boundary_is_four_tier_blocks() -> None:
    """A /16 VPC splits into four tier blocks of /18: /18 subnets (one per tier) cannot hold two AZs,
    /17 cannot even hold the blocks. Mutations that survived before: `prefix < cidr.prefixlen + 2`
    -> `<=` / `+ 3` / `- 2`."""
    assert "pghome:subnetPrefixLength = 17 is invalid: must be at least /18 for VPC 10.20.0.0/16 (four tier blocks)" in (
        _network_problem(vpcCidr="10.20.0.0/16", subnetPrefixLength=17) or "")
    at_18 = _network_problem(vpcCidr="10.20.0.0/16", subnetPrefixLength=18) or ""
    assert "pghome:subnetPrefixLength = 18" not in at_18
    assert "pghome:azCount = 2 is invalid: VPC 10.20.0.0/16 with /18 subnets holds 1 subnet(s) per tier" in at_18
    assert _network_problem(vpcCidr="10.20.0.0/16", subnetPrefixLength=19) is None
