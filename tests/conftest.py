"""Fixtures shared by all tests: the mocked graphs of both stacks and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))



# Fixtures shared by several modules and defined beside the world they build.
pytest_plugins = ["tests.rotation_lambda_world"]


def _stand_in_archive(path: Path) -> Path:
    """A small archive with fixed bytes in place of the rotation function's: the plans must not
    depend on whether this checkout has built the real one (tests that need it build it and point
    PGHOME_ROTATION_ARCHIVE at it), and commands refuse to run without one (issue 22, C)."""
    import zipfile

    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(zipfile.ZipInfo("README", date_time=(1980, 1, 1, 0, 0, 0)), "stand-in for the rotation function's archive in tests\n")
        os.replace(tmp, path)  # workers may race: same bytes, atomic
    return path


os.environ["PGHOME_ROTATION_ARCHIVE"] = str(_stand_in_archive(ROOT / "build" / "tests-rotation-archive.zip"))

from bootstrap.plan.mockgraph import Graph, run_stack  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402
from tests.pulumi_double.backend import VERSIONS  # noqa: E402
from tests.pulumi_double.client import event_collector  # noqa: E402, F401 (a gRPC Events server for --event-log)
from tests.pulumi_double.fixture import kms_endpoint, pulumi_cli_version, pulumi_double, pulumi_double_server  # noqa: E402, F401 (the `pulumi` test double on PATH)


@pytest.fixture(scope="session")
def dev_graph() -> Graph:
    return run_stack("dev")


@pytest.fixture(scope="session")
def prod_graph() -> Graph:
    return run_stack("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def graph(request: pytest.FixtureRequest, dev_graph: Graph, prod_graph: Graph) -> Graph:
    """Each test using this runs once per stack."""
    return dev_graph if request.param == "dev" else prod_graph


def _cgroup_cpus() -> float | None:
    """The CPU quota of this container (cgroup v2 cpu.max, v1 cfs quota), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Provision the PostgreSQL server binaries of the tests' major once, before any worker starts
    (tests/pgbinaries.py: one line when it downloads; nothing when cached). A failure here is left
    to the PostgreSQL tests, which report it; the others run."""
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller did it
    from tests.pgbinaries import ProvisionError, ensure
    from tests.pgserver import server_major

    with contextlib.suppress(ProvisionError, RuntimeError):
        ensure(server_major())


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker per core this process may really use (affinity and a container's CPU
    quota; xdist alone counts the host's cores), each with its own PostgreSQL and fork server."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own reading of the variable
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(cores, int(quota) if quota else cores))


RUN_FIRST = ("tests/test_typecheck.py", "tests/test_deploy_e2e.py", "tests/test_deploy_tunnel_e2e.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `cli_versions` runs against every CLI version the double speaks (the current
    one, events over gRPC, and 3.205.0, events through a file); the others against the current one."""
    if "pulumi_double" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cli_versions"):
        metafunc.parametrize("pulumi_cli_version", sorted(VERSIONS, reverse=True), indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the server (the `pg` fixture, directly or through another fixture)
    is marked `postgres`; every test that drives the CLI through the `pulumi` test double is
    marked `e2e`. The other majors' runs select `postgres and not e2e`: the end-to-end deploys test
    the orchestration, whose PostgreSQL side the `postgres` tests already cover on every major."""
    # The longest single tests start first, so no core is left waiting on one at the end (xdist
    # hands each worker a run of the collection order); a stable sort keeps the rest as collected.
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in RUN_FIRST)
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "pg" in fixtures:
            item.add_marker(pytest.mark.postgres)
        if "pulumi_double" in fixtures:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session, of the major $PGHOME_PG_MAJOR names (default:
    the default engine's); TLS-only over TCP, RDS-like settings."""
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()
