"""Command-line glue of the operations commands: rollback, status, logs (release's gate: bootstrap/cli/release.py).

Each handler reads the stack file first (settings, names), then reaches AWS through boto3 clients
made here: the one place tests replace (moto, or botocore's Stubber where moto cannot serve).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bootstrap.cli.release import aws_session, gated_release
from bootstrap.deploy.ledger import Ledger, LedgerError


def cmd_rollback(args: argparse.Namespace) -> int:
    from bootstrap.cli import deploy as deploy_cli
    from bootstrap.deploy.rollback import RollbackError, confirm_rollback, plan_rollback

    settings = deploy_cli._session(args, cli=False).settings  # noqa: SLF001
    try:
        ledger = Ledger(aws_session(settings.region).client("dynamodb"), settings.prefix)
        plan = plan_rollback(ledger.history(), args.to, allow_newer_schema=args.allow_newer_schema)
        confirm_rollback(plan, args.stack, assume_yes=args.yes)
    except (RollbackError, LedgerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return gated_release(args, kind="rollback", tag=plan.target.tag, expected_digest=plan.target.digest)


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from bootstrap.cli import deploy as deploy_cli
    from bootstrap.ops.status import gather, render

    settings = deploy_cli._session(args, cli=False).settings  # noqa: SLF001
    report = gather(settings, aws_session(settings.region))
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from bootstrap.cli import deploy as deploy_cli
    from bootstrap.ops.logs import LogsError, parse_since, tail

    settings = deploy_cli._session(args, cli=False).settings  # noqa: SLF001
    try:
        since = parse_since(args.since)
        return tail(aws_session(settings.region).client("logs"), settings.prefix, args.source, since_seconds=since, pattern=args.filter,
                    follow=args.follow)
    except LogsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    from bootstrap.cli.deploy import _backend_args, _common, _db_args, _yes, guarded
    from bootstrap.deploy.release import SEVERITIES

    p = sub.add_parser("rollback", help="back to the previous (or --to) released image through release's verified path, without migrating")
    _common(p)
    p.add_argument("--to", default="", metavar="TAG", help="the released tag to go back to (default: the release before the current one)")
    p.add_argument("--allow-newer-schema", action="store_true", help="roll back even though a migration ran after the target release "
                   "(only when those migrations are backward compatible)")
    p.add_argument("--fail-on-severity", default="CRITICAL", type=str.upper, help=f"as for release ({', '.join(SEVERITIES)})")
    p.add_argument("--scan-timeout", type=float, default=600, help="seconds to wait for a running scan (default 600)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for steady state (default 1800)")
    _yes(p)
    _backend_args(p)
    _db_args(p)
    p.set_defaults(func=guarded(cmd_rollback))

    p = sub.add_parser("status", help="one screen: service, targets, database, rotations, releases, alarms (each part degrades to one line)")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=guarded(cmd_status))

    from bootstrap.ops.logs import SOURCES

    p = sub.add_parser("logs", help="CloudWatch Logs of the stack, newest last, with task ids")
    _common(p)
    p.add_argument("source", nargs="?", default="app", choices=sorted(SOURCES), help="which logs (default app)")
    p.add_argument("--since", default="10m", help="how far back: 30s, 10m, 2h, 1d (default 10m)")
    p.add_argument("--filter", default="", metavar="PATTERN", help="a CloudWatch Logs filter pattern, e.g. ERROR or '{ $.level = \"error\" }'")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    p.set_defaults(func=guarded(cmd_logs))
