"""`python -m bootstrap plan`: the newcomer's main job, run as a real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_bootstrap

ROOT = Path(__file__).resolve().parent.parent


def bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return run_bootstrap(*args)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_prints_a_table_and_a_count(stack, request, tmp_path):
    from tests.fake_rds_ca import write_good_bundle

    graph = request.getfixturevalue(f"{stack}_graph")
    # the RDS CA bundle `ca-bundle fetch` writes (not whatever this clone has in certs/)
    bundle = write_good_bundle(tmp_path / "rds-global-bundle.pem")
    result = bootstrap("plan", "--stack", stack, "--set", f"appDbSslRootCert={bundle}")
    # prod's stack file ships a placeholder certificate: planned and listed (exit 4 only with --strict)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ("Deploy prerequisites:" in out) is (stack == "prod")
    assert out.splitlines()[0].split() == ["TYPE", "NAME", "PARENT", "KEY", "SETTINGS"]
    match = re.search(rf"Plan for stack {stack}: (\d+) to create", out)
    assert match and int(match.group(1)) == len(graph.resources)
    assert "aws:ec2:Vpc" in out and f"cidrBlock={graph.config['pghome:vpcCidr']}" in out
    assert "Traceback" not in result.stderr


def test_plan_json_lists_every_resource(dev_graph):
    result = bootstrap("plan", "--stack", "dev", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert doc["count"] == len(doc["resources"]) == len(dev_graph.resources)
    assert {r["type"] for r in doc["resources"]} == {r.type for r in dev_graph.resources}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "azCount=9"], "pghome:azCount = '9' is invalid: must be an integer from 2 to 6"),
        (["--set", "vpcCidr=8.8.8.0/24"], "pghome:vpcCidr = '8.8.8.0/24' is invalid"),
        (["--set", "natStrategy=double"], "pghome:natStrategy = 'double' is invalid"),
        (["--set", "azCuont=3"], "did you mean pghome:azCount"),
        (["--set", "noequals"], "--set 'noequals' is invalid: use --set <key>=<value>"),
    ],
)
def test_bad_input_is_one_clear_error_without_traceback(args, fragment):
    result = bootstrap("plan", "--stack", "dev", *args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing planned, nothing half-printed


def test_unknown_stack_names_the_missing_file():
    result = bootstrap("plan", "--stack", "qa")
    assert result.returncode == 2
    assert "stack 'qa' has no settings file Pulumi.qa.yaml" in result.stderr


def test_broken_stack_file_is_reported(tmp_path):
    from config.stack_file import StackFileError, stack_config

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [1, 2\n")
    with pytest.raises(StackFileError, match="Pulumi.bad.yaml is not valid YAML"):
        stack_config("bad", project_dir=tmp_path)
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  - a\n")
    with pytest.raises(StackFileError, match="'config' must be a mapping"):
        stack_config("bad", project_dir=tmp_path)


def test_plan_with_app_db_shows_roles_and_grants_without_a_credential():
    base = bootstrap("plan", "--stack", "dev")
    full = bootstrap("plan", "--stack", "dev", "--with-app-db")
    assert base.returncode == 0 and full.returncode == 0, full.stderr
    assert "postgresql:Role" not in base.stdout
    for kind in ("postgresql:Role", "postgresql:Grant", "postgresql:DefaultPrivileges", "postgresql:GrantRole", "postgresql:Extension"):
        assert kind in full.stdout
    count = lambda out: int(re.search(r"Plan for stack dev: (\d+) to create", out).group(1))  # noqa: E731
    assert count(full.stdout) - count(base.stdout) >= 25
    assert "offline-plan-connects-nowhere" not in full.stdout + full.stderr
