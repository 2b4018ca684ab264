"""Benchmark: program evaluation time under mocks vs the time to load the SDK classes it uses.

Each figure is measured in a fresh interpreter (so import caches do not flatter either side) and
the median of --runs is printed. Ratios are what to compare across machines:

* load    importing exactly the SDK modules the program ends up using (pulumi, and the
          pulumi_aws / pulumi_random / pulumi_postgresql submodules it touches);
* eval    the program's first evaluation under mocks in a process where those modules are
          already loaded: our code, the mocks and the SDK's resource registration, nothing else.
          Goal: eval / load <= 1.3.
* cold    first evaluation with only the top-level SDK packages imported (what `plan` pays).

    venv/bin/python benchmarks/plan_time.py [--runs 5] [--stacks dev prod]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORT_ONLY = """
import json, time
t = time.perf_counter()
import pulumi, pulumi_aws, pulumi_random, pulumi_postgresql
print(json.dumps({"import": time.perf_counter() - t}))
"""

EVALUATE = """
import json, sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
import pulumi, pulumi_aws, pulumi_random, pulumi_postgresql
imported = time.perf_counter() - t
from bootstrap.plan.mockgraph import run_stack
t = time.perf_counter()
graph = run_stack({stack!r})
cold = time.perf_counter() - t
t = time.perf_counter()
run_stack({stack!r})
warm = time.perf_counter() - t
print(json.dumps({{"import": imported, "evaluate": cold, "warm": warm, "resources": len(graph.resources)}}))
"""


USED_MODULES = """
import json, os, sys
os.environ.setdefault("PGPASSWORD", "benchmark-connects-nowhere")  # the app database layer loads pulumi_postgresql too
sys.path.insert(0, {root!r})
from bootstrap.plan.mockgraph import run_stack
run_stack({stack!r}, {{"appDbEnabled": "true"}})
sdk = ("pulumi", "pulumi_aws", "pulumi_random", "pulumi_postgresql")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sdk)))
"""

LOAD = """
import importlib, json, time
t = time.perf_counter()
for m in {modules!r}:
    importlib.import_module(m)
print(json.dumps({{"load": time.perf_counter() - t}}))
"""

EVAL_PRELOADED = """
import importlib, json, sys, time
sys.path.insert(0, {root!r})
for m in {modules!r}:
    importlib.import_module(m)
from bootstrap.plan.mockgraph import run_stack
t = time.perf_counter()
graph = run_stack({stack!r})
print(json.dumps({{"eval": time.perf_counter() - t, "resources": len(graph.resources)}}))
"""


def _measure(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stacks", nargs="+", default=["dev", "prod"])
    args = parser.parse_args()

    bare = statistics.median(_measure(IMPORT_ONLY)["import"] for _ in range(args.runs))
    print(f"bare import of pulumi, pulumi_aws, pulumi_random, pulumi_postgresql: {bare * 1000:.0f} ms (median of {args.runs})")
    print(f"{'stack':<8}{'resources':>10}{'load ms':>9}{'eval ms':>9}{'eval/load':>11}{'cold ms':>9}{'cold/bare':>11}")
    for stack in args.stacks:
        modules = json.loads(subprocess.run([sys.executable, "-c", USED_MODULES.format(root=str(ROOT), stack=stack)], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        load = statistics.median(_measure(LOAD.format(modules=modules))["load"] for _ in range(args.runs))
        evals = [_measure(EVAL_PRELOADED.format(root=str(ROOT), stack=stack, modules=modules)) for _ in range(args.runs)]
        ev = statistics.median(r["eval"] for r in evals)
        cold = statistics.median(_measure(EVALUATE.format(root=str(ROOT), stack=stack))["evaluate"] for _ in range(args.runs))
        print(f"{stack:<8}{int(evals[0]['resources']):>10}{load * 1000:>9.0f}{ev * 1000:>9.0f}{ev / load:>11.2f}{cold * 1000:>9.0f}{cold / bare:>11.2f}")


if __name__ == "__main__":
    main()
