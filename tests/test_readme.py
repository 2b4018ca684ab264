"""The README's two commands stay true: CI runs exactly the documented test command, and the
documented plan command is the one the CLI accepts."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _two_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found is not None, "README.md: no bash block in the section"
    block = found.group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_exactly_two_commands_setup_plan_and_tests():
    setup, tests = _two_commands()
    assert "pip install -r requirements.txt" in setup and "-m bootstrap plan --stack dev" in setup
    assert "pytest" in tests


def _ci_lines() -> list[str]:
    return [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_exactly_the_readme_commands_in_order():
    """.ci/run runs the README's first command as written, then (its last line) the test command:
    when either drifts from the README, this fails."""
    setup, tests = _two_commands()
    ci = _ci_lines()
    assert setup.strip() in ci, "the README's first command is not a line of .ci/run"
    assert ci[-1] == tests.strip()
    assert ci.index(setup.strip()) < len(ci) - 1
    # nothing else installs or fetches: the set-up lives in the two commands (tests/pgbinaries.py)
    others = [line for line in ci if line != setup.strip() and ("pip install" in line or "pg-binaries" in line or "apt-get" in line)]
    assert not others, others


def test_the_readme_test_command_needs_nothing_run_before_it():
    """The README promises two commands: its test command must not point at a set-up step."""
    section = (ROOT / "README.md").read_text().split("## The two commands", 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found is not None, "README.md: no bash block in the section"
    block = found.group(1)
    assert "pg-binaries.sh" not in block and ".ci/run does it" not in block


def requirement_lines() -> list[str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def test_every_requirement_is_pinned_with_a_lower_bound():
    for line in requirement_lines():
        assert ">=" in line, f"{line} has no lower bound"


def test_every_requirement_is_locked_to_one_version_inside_its_range():
    """constraints.txt is what a fresh clone installs; a stale lock outside a range would make pip fail."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text()
    locked = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not name==version"
            locked[canonicalize_name(name)] = version.strip()
    for line in requirement_lines():
        req = Requirement(line)
        version = locked.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not locked in constraints.txt"
        assert req.specifier.contains(version), f"{req.name}=={version} is outside {req.specifier}"
