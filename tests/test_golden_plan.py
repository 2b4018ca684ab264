"""Golden plans: the JSON plan of each stack, stored in tests/golden/, compared resource by resource.

A refactoring must change no resource it does not mean to. When a change is intended, regenerate
the files and review the diff like code:

    PGHOME_UPDATE_GOLDEN=1 venv/bin/python -m pytest -q tests/test_golden_plan.py   # writes, and fails
    git diff tests/golden/                                                         # review every change
    venv/bin/python -m pytest -q tests/test_golden_plan.py                         # now passes

Update mode always fails (see compare_or_update), so it can never stand in for the check.
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


def compare_or_update(path: Path, actual: str, update: bool) -> str | None:
    """None when the file matches; otherwise the failure message. In update mode the file is
    (re)written and the result is still a failure: a run that rewrites its own expectation and then
    compares against it proves nothing, so the diff must be reviewed and the test re-run without
    PGHOME_UPDATE_GOLDEN. (Mutation tried: returning None after the write, as the test used to
    pass in update mode; test_update_mode_writes_and_fails then failed.)"""
    name = f"tests/golden/{path.name}"
    before = path.read_text() if path.is_file() else None
    if update:
        path.write_text(actual)
        if before == actual:
            return f"{name} is unchanged; PGHOME_UPDATE_GOLDEN=1 never passes: re-run without it"
        return f"rewrote {name}: review `git diff {name}`, commit it if every change is intended, then re-run without PGHOME_UPDATE_GOLDEN"
    if before is None:
        return f"{name} is missing: run PGHOME_UPDATE_GOLDEN=1 venv/bin/python -m pytest -q tests/test_golden_plan.py"
    if actual != before:
        diff = "".join(difflib.unified_diff(before.splitlines(True), actual.splitlines(True), name, "plan now", n=2))
        return f"the plan differs from {name} (regenerate if intended, see module doc):\n{diff[:20000]}"
    return None


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, overrides = CASES[case]
    monkeypatch.setenv("PGPASSWORD", "golden-plan-connects-nowhere")
    problem = compare_or_update(GOLDEN_DIR / f"{case}.json", _render(stack, overrides), os.environ.get("PGHOME_UPDATE_GOLDEN") == "1")
    if problem:
        pytest.fail(problem)


def test_update_mode_writes_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text("old\n")
    assert compare_or_update(path, "new\n", update=True) == (
        "rewrote tests/golden/case.json: review `git diff tests/golden/case.json`, commit it if every change is intended, "
        "then re-run without PGHOME_UPDATE_GOLDEN")
    assert path.read_text() == "new\n"
    assert "never passes" in (compare_or_update(path, "new\n", update=True) or "")
    assert compare_or_update(path, "new\n", update=False) is None
    assert "-new\n+newer" in (compare_or_update(path, "newer\n", update=False) or "")
    assert "is missing" in (compare_or_update(tmp_path / "none.json", "x\n", update=False) or "")
