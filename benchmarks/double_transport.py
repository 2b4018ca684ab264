"""Benchmark: one `preview` of the dev stack through the real SDK against the `pulumi` double, per CLI
version the double speaks (events over gRPC vs through a file), with its fork server running.

Prints the median wall time per version and the gRPC/file ratio (compare ratios across machines):
the e2e suite runs on gRPC, so a ratio well above 1 would be time added to every e2e test.

    venv/bin/python benchmarks/double_transport.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pulumi import automation as auto  # noqa: E402

from tests.pulumi_double.backend import VERSIONS  # noqa: E402
from tests.pulumi_double.fixture import COPIED, DOUBLE_DIR, LINKED, rotation_archive  # noqa: E402


def project(tmp: Path) -> Path:
    """A scratch copy of the project, as the pulumi_double fixture makes it."""
    proj = tmp / "project"
    proj.mkdir()
    for name in LINKED:
        if (ROOT / name).exists():
            (proj / name).symlink_to(ROOT / name)
    for name in COPIED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, proj / name)
    return proj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="double-bench-") as name:
        tmp = Path(name)
        sock = str(tmp / "fork.sock")
        server = subprocess.Popen([sys.executable, str(DOUBLE_DIR / "forkserver.py"), "--serve", sock], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            os.environ.update({"PATH": f"{DOUBLE_DIR}{os.pathsep}{os.environ['PATH']}", "PULUMI_DOUBLE_PYTHON": sys.executable,
                               "PULUMI_DOUBLE_SERVER": sock, "PULUMI_HOME": str(tmp / "home"), "PGHOME_ROTATION_ARCHIVE": str(rotation_archive(tmp))})
            medians = {}
            for version in VERSIONS:
                os.environ["PULUMI_DOUBLE_VERSION"] = version
                work = tmp / version
                work.mkdir()
                env = {"PULUMI_BACKEND_URL": f"file://{work / 'state'}", "PULUMI_CONFIG_PASSPHRASE": "bench"}
                stack = auto.create_stack("dev", work_dir=str(project(work)), opts=auto.LocalWorkspaceOptions(env_vars=env))
                times, events = [], 0
                for _ in range(args.runs):
                    seen: list[object] = []
                    start = time.perf_counter()
                    stack.preview(on_event=seen.append)
                    times.append(time.perf_counter() - start)
                    events = len(seen)
                medians[version] = statistics.median(times)
                print(f"{version} ({VERSIONS[version].events}): median {medians[version]:.2f}s over {args.runs} previews, {events} events each")
            grpc = next(v for v in VERSIONS if VERSIONS[v].events == "grpc")
            file_ = next(v for v in VERSIONS if VERSIONS[v].events == "file")
            print(f"grpc/file ratio: {medians[grpc] / medians[file_]:.2f}")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
