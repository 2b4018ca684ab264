"""`python -m bootstrap restore --stack S (--to-time T | --latest | --snapshot ID) [--drill]`:
argparse glue over bootstrap/restore/ (docs/restore.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from config.ca_bundle import DEFAULT_PATH

RDS_CA_BUNDLE = DEFAULT_PATH  # `ca-bundle fetch` writes it (config/ca_bundle.py)


def register(sub: Any) -> None:
    p = sub.add_parser("restore", help="restore the stack's database into a new instance (point in time or snapshot), verify it through "
                       "the access path; --drill deletes it afterwards")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml and the stack's outputs)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--to-time", default="", metavar="T", help="restore to this time, ISO 8601 with a zone (2026-12-04T15:30:00Z); must lie in the restorable window")
    when.add_argument("--latest", action="store_true", help="restore to the latest restorable time (typically 5 minutes ago)")
    when.add_argument("--snapshot", default="", metavar="ID", help="restore this DB snapshot (identifier or ARN) of the same engine major and KMS key")
    p.add_argument("--drill", action="store_true", help="a restore drill: verify, then delete the new instance (no final snapshot) whatever happened; "
                   "exit 1 when a check failed")
    p.add_argument("--tunnel", choices=["auto", "always", "never"], default="auto",
                   help="reach the databases through the stack's access task and SSM: auto (default) when they do not answer directly, always, or never")
    p.add_argument("--ca-file", default="", help=f"CA bundle for verify-full (default: appDbSslRootCert, else {RDS_CA_BUNDLE})")
    p.add_argument("--timeout", type=int, default=5400, metavar="S", help="seconds to wait for each RDS step (default 5400)")
    p.add_argument("--outputs-file", default="", metavar="F", help="the stack outputs as JSON (`pulumi stack output --json`) instead of reading the stack")
    p.add_argument("-C", "--cwd", default="", help="project directory (default: this repository)")
    p.add_argument("--backend", default="", help="state backend URL (default as for deploy)")
    p.add_argument("--secrets-provider", default="", help="passphrase (default) or awskms://alias/<name>?region=<r>")
    p.add_argument("--profile", default="", help="AWS profile (default: the environment's credentials)")
    p.set_defaults(func=cmd_restore)


def utcnow() -> dt.datetime:
    """The clock that names the new instance and measures the data age (a seam for tests)."""
    return dt.datetime.now(dt.UTC)


def make_seams(region: str, profile: str | None) -> Any:
    """RDS, Secrets Manager, ECS and the SSM session: the one seam tests replace."""
    import boto3

    from bootstrap.access.ssm_session import AwsCliSessionStarter
    from bootstrap.access.tunnel import reachable
    from bootstrap.restore.run import Seams

    session = boto3.session.Session(region_name=region, profile_name=profile)
    return Seams(rds=session.client("rds"), secrets=session.client("secretsmanager"), ecs=session.client("ecs"),
                 sessions=AwsCliSessionStarter(profile=profile), probe=reachable)


def cmd_restore(args: argparse.Namespace) -> int:
    from bootstrap.access.tunnel import TunnelError
    from bootstrap.cli.tunnel import read_outputs
    from bootstrap.restore.rds import RestoreError, RestoreInputError, Restorer
    from bootstrap.restore.run import Options, Run
    from config.load import load_settings
    from config.stack_file import PROJECT_DIR, settings_name, stack_config

    def fail(message: str, status: int) -> int:
        print(f"error: {message}", file=sys.stderr)
        return status

    if not 300 <= args.timeout <= 14400:
        return fail(f"--timeout {args.timeout} is invalid: use 300-14400 seconds", 2)
    project = Path(args.cwd).resolve() if args.cwd else PROJECT_DIR
    settings = load_settings(stack_config(args.stack, project_dir=project), stack=settings_name(args.stack), check_credentials=False)
    ca = Path(args.ca_file or settings.app_database.ssl_root_cert or RDS_CA_BUNDLE)
    ca = ca if ca.is_absolute() else project / ca
    if not ca.is_file():
        return fail(f"CA bundle {ca} does not exist: run `python -m bootstrap ca-bundle fetch --stack {args.stack}` or pass --ca-file", 2)
    seams = make_seams(settings.region, args.profile or None)
    opts = Options(stack=args.stack, to_time=args.to_time, latest=args.latest, snapshot=args.snapshot, drill=args.drill,
                   tunnel=args.tunnel, ca_file=str(ca), region=settings.region)
    try:
        outputs = read_outputs(args)
    except TunnelError as exc:  # an unreadable --outputs-file, or no such stack in the backend
        return fail(str(exc), 2)
    try:
        restorer = Restorer(seams.rds, seams.backups, timeout_s=float(args.timeout))
        return Run(settings, outputs, opts, seams, restorer=restorer, now=utcnow).run()
    except RestoreInputError as exc:
        return fail(str(exc), 2)
    except (RestoreError, TunnelError) as exc:
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return fail("interrupted (a drill's instance was deleted on the way out; a restore's is left running)", 1)
