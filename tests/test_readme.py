"""The README's two commands stay true: CI runs exactly the documented test command, and the
documented plan command is the one the CLI accepts."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _two_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_exactly_two_commands_setup_plan_and_tests():
    setup, tests = _two_commands()
    assert "pip install -r requirements.txt" in setup and "-m bootstrap plan --stack dev" in setup
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_last():
    _, tests = _two_commands()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1].strip() == tests.strip()


def test_every_requirement_is_pinned_with_a_lower_bound():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert ">=" in line, f"{line} has no lower bound"
