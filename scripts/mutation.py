"""Mutation testing of the security-critical modules with mutmut (docs/testing.md, "Mutation testing").

    venv/bin/python scripts/mutation.py                 # every group, one after the other
    venv/bin/python scripts/mutation.py naming rotation  # only these groups
    venv/bin/python scripts/mutation.py --list           # the groups, their modules and tests

Each group mutates a few modules and runs only the test files that cover them (never the golden
plans, which would catch a change to a plan by comparing it with a recording, not by proving a
property). mutmut reads its settings from the pyproject.toml of the directory it runs in, so each
group runs in its own scratch directory, build/mutation/<group>/, holding links to the project and
a generated pyproject.toml; mutmut then copies the project into <group>/mutants/ and runs pytest
there in-process (-n 0), once for coverage ("stats") and then per mutant, only the tests that
reach the mutated function. Results stay in the scratch directory, so a second run only retests
what changed; `--fresh` starts over. Prints killed/survived per module and the survivors' names
(`cd build/mutation/<group> && ../../../venv/bin/mutmut show <name>` shows a diff).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / "build" / "mutation"

# group -> (modules mutated, test files run). Golden plans are never in a test list.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "naming": (["config/naming.py", "config/limits.py"], ["tests/test_naming.py", "tests/test_config.py"]),
    # config and pgmodel run their fast files only: mutmut orders a mutant's tests by the durations of the
    # coverage run, where a session fixture (a mocked graph, a PostgreSQL server) is charged to the first
    # test that used it, so a later graph or server test looks instant and runs first, paying the fixture.
    "config": (
        ["config/sections.py", "config/reader.py", "config/appdb_section.py"],
        ["tests/test_config_reader.py", "tests/test_config_rules.py", "tests/test_config_sentences.py", "tests/test_config.py"],
    ),
    "pgmodel": (
        ["components/pgmodel.py", "components/pgsql.py"],
        ["tests/test_pgsql_render.py"],
    ),
    "confirm": (["bootstrap/deploy/confirm.py"], ["tests/test_confirm.py", "tests/test_deploy.py"]),
    # rotation, iam: their fast unit tests only; the moto/PostgreSQL and graph tests kill no survivor (docs/testing.md)
    "rotation": (["rotation_function/steps.py"], ["tests/test_rotation_steps_unit.py"]),
    "iam": (["components/iam.py", "components/service_iam.py"], ["tests/test_iam_statements.py", "tests/test_service_iam.py"]),
}

# What the tests need besides Python packages (copied into mutants/ by mutmut: also_copy).
NOT_LINKED = {".git", "build", "venv", "mutants", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}


def packages() -> list[str]:
    """Top-level Python packages and modules of the project (mutmut copies these as sources)."""
    found = []
    for p in sorted(REPO.iterdir()):
        if p.name in NOT_LINKED or p.name.startswith(".") or p.name == "tests":
            continue
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py":
            found.append(p.name)
    return found


def prepare(group: str, fresh: bool, deselect: list[str] | None = None) -> Path:
    modules, tests = GROUPS[group]
    work = SCRATCH / group
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for p in REPO.iterdir():
        if p.name in NOT_LINKED or p.name == "pyproject.toml":
            continue
        link = work / p.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(p)
    srcs = packages()
    # Everything else a test may read by path (stack files, data/, docs/ ...), but never the venv.
    also = [p.name for p in REPO.iterdir() if p.name not in NOT_LINKED and p.name not in srcs and p.name != "pyproject.toml"
            and not p.name.startswith(".")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pytest_opts = project["tool"]["pytest"]["ini_options"]
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in pytest_opts.items()]
    lines += [
        "",
        "[tool.mutmut]",
        f"source_paths = {json.dumps(srcs)}",
        f"only_mutate = {json.dumps(modules)}",
        f"also_copy = {json.dumps(also + ['tests', 'pyproject.toml'])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        # in-process, no xdist workers; the golden plans stay out even if a test file imports them
        "pytest_add_cli_args = " + json.dumps(["-n", "0", "-p", "no:cacheprovider", "--ignore=tests/test_golden_plan.py",
                                               *(f"--deselect={d}" for d in deselect or [])]),
        "",
    ]
    (work / "pyproject.toml").write_text("\n".join(lines))
    # The PostgreSQL binaries cache is a link in the checkout; the copy must find it too.
    (work / "mutants").mkdir(exist_ok=True)
    pg = work / "mutants" / ".pg-binaries"
    if (REPO / ".pg-binaries").exists() and not pg.is_symlink():
        pg.symlink_to((REPO / ".pg-binaries").resolve())
    return work


def mutmut() -> str:
    exe = Path(sys.executable).parent / "mutmut"
    if not exe.exists():
        sys.exit("scripts/mutation.py: mutmut is not installed in this venv; run venv/bin/pip install -r requirements.txt.")
    return str(exe)


def results(work: Path) -> dict[str, dict[str, list[str] | int]]:
    """Per module: mutant counts by status and the survivors' names (from `mutmut results --all`)."""
    out = subprocess.run([mutmut(), "results", "--all", "true"], cwd=work, capture_output=True, text=True, check=True).stdout
    per: dict[str, dict[str, list[str] | int]] = {}
    for line in out.splitlines():
        if ":" not in line:
            continue
        name, status = (s.strip() for s in line.rsplit(":", 1))
        module = name.split(".x_")[0].split(".xǁ")[0]
        entry = per.setdefault(module, {"killed": 0, "survived": 0, "other": 0, "survivors": [], "unchecked": 0})
        if status == "not checked":  # left out by --only, or a run stopped early
            entry["unchecked"] += 1  # type: ignore[operator]
        elif status in ("killed", "timeout"):
            entry["killed"] += 1  # type: ignore[operator]
        elif status == "survived":
            entry["survived"] += 1  # type: ignore[operator]
            entry["survivors"].append(name)  # type: ignore[union-attr]
        else:
            entry["other"] += 1  # type: ignore[operator]
            entry["survivors"].append(f"{name} ({status})")  # type: ignore[union-attr]
    return per


def main() -> int:
    ap = argparse.ArgumentParser(description="Mutation-test the security-critical modules (mutmut), one group at a time.")
    ap.add_argument("groups", nargs="*", help=f"groups to run (default: all): {', '.join(GROUPS)}")
    ap.add_argument("--list", action="store_true", help="print the groups and exit")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results of these groups")
    ap.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel (default 1: the machine is shared)")
    ap.add_argument("--deselect", action="append", default=[], metavar="NODEID",
                    help="leave out a test that fails without any mutant (mutmut needs a green baseline); say why in the result")
    ap.add_argument("--only", action="append", default=[], metavar="GLOB",
                    help="test only the mutants whose names match, e.g. 'config.sections.x_network__mutmut_*'")
    ap.add_argument("--report", action="store_true", help="print the kept results of the groups without running anything")
    args = ap.parse_args()
    if args.list:
        for g, (mods, tests) in GROUPS.items():
            print(f"{g}: {' '.join(mods)}  <-  {' '.join(tests)}")
        return 0
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        print(f"scripts/mutation.py: unknown group {unknown[0]!r}; the groups are {', '.join(GROUPS)}.", file=sys.stderr)
        return 2
    total_k = total_all = 0
    for group in args.groups or list(GROUPS):
        work = prepare(group, args.fresh and not args.report, args.deselect)
        print(f"== {group}: mutating {' '.join(GROUPS[group][0])}", flush=True)
        t0 = time.monotonic()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        rc = 0 if args.report else subprocess.run([mutmut(), "run", "--max-children", str(args.max_children), *args.only], cwd=work, env=env).returncode
        elapsed = time.monotonic() - t0
        if rc != 0:
            print(f"scripts/mutation.py: mutmut failed in group {group} (exit {rc}); see the output above.", file=sys.stderr)
            return rc
        for module, e in sorted(results(work).items()):
            tested = e["killed"] + e["survived"] + e["other"]  # type: ignore[operator]
            total_k += e["killed"]  # type: ignore[operator]
            total_all += tested
            score = 100.0 * e["killed"] / tested if tested else 100.0  # type: ignore[operator]
            unchecked = f", {e['unchecked']} not checked" if e["unchecked"] else ""
            print(f"{module}: {e['killed']}/{tested} killed ({score:.1f}%){unchecked}")
            for s in e["survivors"]:  # type: ignore[union-attr]
                print(f"    survived: {s}")
        print(f"   {group} took {elapsed:.0f} s", flush=True)
    if total_all:
        print(f"all: {total_k}/{total_all} killed ({100.0 * total_k / total_all:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
