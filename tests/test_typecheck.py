"""mypy over every product package (the program, config, dbcore, components, bootstrap, the policy pack,
the rotation function) and the tests themselves, as part of the one test command."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "controls", "config", "dbcore", "components", "bootstrap", "policy", "rotation_function", "__main__.py", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_pulumi_aws_service_the_code_uses_is_type_checked():
    """pyproject.toml lets mypy follow only the pulumi_aws services listed (a cold run of all ~250
    took 70 s of CI); a service missing from the list would be checked as Any, silently."""
    import re
    import tomllib

    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    followed = {m for o in overrides if o.get("follow_imports") == "normal" for m in o["module"]}
    code = "\n".join(p.read_text() for d in ("controls", "config", "dbcore", "components", "bootstrap", "policy", "rotation_function") for p in (ROOT / d).rglob("*.py"))
    code += (ROOT / "__main__.py").read_text()
    services = set(re.findall(r"\baws\.([a-z][a-z0-9_]*)\.", code))
    packages = {s for s in services if _is_subpackage(s)}
    assert packages, "the code uses pulumi_aws services"
    missing = sorted(s for s in packages if f"pulumi_aws.{s}" not in followed or f"pulumi_aws.{s}.*" not in followed)
    assert not missing, f"add pulumi_aws.<service> and pulumi_aws.<service>.* to the follow_imports=normal list of pyproject.toml: {missing}"


def _is_subpackage(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"pulumi_aws.{name}") is not None
