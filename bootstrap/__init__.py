"""What runs around the Pulumi program, one sub-package per concern:

  cli/       the command line (argparse glue and real seams); nothing imports it
  deploy/    Automation API: workspace, phased deployer, confirmation, preflight, release
  rotation/  local rotator, the rotation function driven from the CLI, its archive, audit
  access/    the tunnel to the private database (access task, SSM session, SOCKS5)
  plan/      the offline plan under Pulumi mocks, rendered and checked
  cost/      the offline monthly cost estimate (no Pulumi import)
  progress   what the user sees while work runs (shared by deploy and rotation)

docs/architecture.md holds the dependency direction; tests/test_architecture.py enforces it."""
