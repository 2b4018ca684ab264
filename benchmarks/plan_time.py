"""Benchmark: program evaluation time under mocks vs the bare import time of the Pulumi SDKs.

Each figure is measured in a fresh interpreter (so import caches do not flatter either side) and
the median of --runs is printed. The ratio is what to compare across machines; the goal is <= 2.0.

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
from bootstrap.mockgraph import run_stack
t = time.perf_counter()
graph = run_stack({stack!r})
cold = time.perf_counter() - t
t = time.perf_counter()
run_stack({stack!r})
warm = time.perf_counter() - t
print(json.dumps({{"import": imported, "evaluate": cold, "warm": warm, "resources": len(graph.resources)}}))
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
    # cold: first evaluation in the process, including pulumi_aws's lazy loading of the submodules
    # the program touches (ec2 alone is ~0.3 s); warm: a second evaluation in the same process.
    print(f"{'stack':<8}{'resources':>10}{'cold ms':>10}{'ratio':>8}{'warm ms':>10}{'ratio':>8}")
    for stack in args.stacks:
        runs = [_measure(EVALUATE.format(root=str(ROOT), stack=stack)) for _ in range(args.runs)]
        cold = statistics.median(r["evaluate"] for r in runs)
        warm = statistics.median(r["warm"] for r in runs)
        print(f"{stack:<8}{int(runs[0]['resources']):>10}{cold * 1000:>10.0f}{cold / bare:>8.2f}{warm * 1000:>10.0f}{warm / bare:>8.2f}")


if __name__ == "__main__":
    main()
