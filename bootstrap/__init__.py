"""What runs around the Pulumi program, one sub-package per concern:

  cli/       the command line (argparse glue and real seams); nothing imports it
  deploy/    Automation API: workspace, phased deployer, confirmation, preflight, release
  rotation/  local rotator, the rotation function driven from the CLI, its archive, audit
  access/    the tunnel to the private database (access task, SSM session, SOCKS5)
  plan/      the offline plan under Pulumi mocks, rendered and checked
  cost/      the offline monthly cost estimate (no Pulumi import)
  progress   what the user sees while work runs (shared by deploy and rotation)

docs/architecture.md holds the dependency direction; tests/test_architecture.py enforces it."""


def tune_collector() -> None:
    """How a `python -m bootstrap` process runs its cyclic collector (bootstrap/__main__.py, and
    benchmarks/plan_time.py so its figures are the command's). One command per process, over ~1,000
    SDK modules that live until it ends: the default pace walked that heap again and again during
    the imports, and once more at exit, about a third of `plan`'s CPU. Collect less often, and skip
    the final walk: what is still alive at exit is freed with the process."""
    import atexit
    import gc

    gc.set_threshold(10_000, 10, 10)
    atexit.register(gc.freeze)
