"""Golden plans: the JSON plan of each stack, stored in tests/golden/, compared resource by resource.

A refactoring must change no resource it does not mean to. When a change is intended, regenerate
the files and review the diff like code:

    PGHOME_UPDATE_GOLDEN=1 venv/bin/python -m pytest -q tests/test_golden_plan.py
    git diff tests/golden/
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from bootstrap.plan import report as plan
from bootstrap.plan.mockgraph import run_stack

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
CASES = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "dev-appdb": ("dev", {"appDbEnabled": "true"}),
    "prod-appdb": ("prod", {"appDbEnabled": "true"}),
}


def _render(stack: str, overrides: dict[str, str]) -> str:
    graph = run_stack(stack, overrides)
    return json.dumps(plan.as_json(graph), indent=1, sort_keys=True, default=str) + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, overrides = CASES[case]
    monkeypatch.setenv("PGPASSWORD", "golden-plan-connects-nowhere")
    actual = _render(stack, overrides)
    path = GOLDEN_DIR / f"{case}.json"
    if os.environ.get("PGHOME_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert path.is_file(), f"{path.name} is missing: run PGHOME_UPDATE_GOLDEN=1 venv/bin/python -m pytest -q tests/test_golden_plan.py"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), f"golden/{case}.json", "plan now", n=2))
        pytest.fail(f"the {case} plan differs from tests/golden/{case}.json (regenerate if intended, see module doc):\n{diff[:20000]}")
