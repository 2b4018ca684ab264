"""The command tree of `python -m bootstrap`: one parser, each command registered by its glue module
in this package, and one place that turns a bad input into one sentence and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from config.load import ConfigError


class UsageError(ValueError):
    """A bad command-line argument; reported as one line, exit status 2."""


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r} is invalid: use --set <key>=<value>, e.g. --set azCount=3")
        out[key.strip()] = value
    return out


# Exit status of `plan` when a security control fails (see docs/security-controls.md).
EXIT_CONTROLS_FAILED = 3
# Exit status of `plan --strict` when the stack would be refused by preview/up/deploy's prerequisites
# (bootstrap/deploy/preflight.py: a placeholder certificate, one from another region, a missing CA
# bundle, an unbuilt rotation archive). Without --strict the plan lists them loudly and exits 0: it
# is the offline review a fresh clone runs first, before any archive is built or certificate issued.
EXIT_PREREQUISITES = 4


def cmd_plan(args: argparse.Namespace) -> int:
    from bootstrap.cli import cost as cost_cli
    from bootstrap.deploy.preflight import prerequisites
    from bootstrap.plan import alarms
    from bootstrap.plan import report as plan
    from bootstrap.plan.mockgraph import run_stack
    from config.load import load_settings

    overrides = _overrides(args.set)
    usage = cost_cli.usage_overrides(args)
    if args.with_app_db:
        overrides["appDbEnabled"] = "true"
    # The program refuses to enable the app database (--with-app-db, or a stack file that enables
    # it) without a credential for the postgresql provider: a real `up` would fail half-way.
    # Under mocks nothing connects.
    if not os.environ.get("PGPASSWORD"):
        os.environ["PGPASSWORD"] = "offline-plan-connects-nowhere"
    graph = run_stack(args.stack, overrides)
    report = plan.check_graph(graph)
    # The same judgement preview/up/deploy make before any cloud call, so a plan never passes what they refuse.
    unmet = prerequisites(load_settings(graph.config, stack=graph.stack, check_credentials=False))
    cost = cost_cli.plan_estimate(graph, args, usage)
    if args.json:
        doc = {"schemaVersion": plan.JSON_SCHEMA_VERSION, **plan.as_json(graph), "monitoring": alarms.as_json(graph), "controls": report.as_json(),
               "prerequisites": unmet, "cost": cost_cli.plan_json(cost)}
        print(json.dumps(doc, indent=2, default=str))  # docs/plan-json.md, docs/plan-json.schema.json
    else:
        print(plan.render_table(graph))
        print()
        print(plan.render_outputs(graph))
        print()
        print(alarms.render(graph))
        print()
        print(report.render(full=args.controls))
        print()
        print(cost_cli.plan_text(cost, args))
        if unmet:
            print()
            print(f"Deploy prerequisites: {len(unmet)} not met (preview, up and deploy refuse this stack until they are):")
            print("\n".join(f"  - {problem}" for problem in unmet))
    if report.failed:
        return EXIT_CONTROLS_FAILED
    return EXIT_PREREQUISITES if unmet and args.strict else 0


def cmd_sql(args: argparse.Namespace) -> int:
    from components.pgsql import render_sql
    from config.load import load_settings
    from config.stack_file import settings_name, stack_config

    settings = load_settings(stack_config(args.stack, _overrides(args.set)), stack=settings_name(args.stack), check_credentials=False)
    print(render_sql(settings.app_database.model()), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bootstrap.cli import cost as cost_cli

    parser = argparse.ArgumentParser(prog="python -m bootstrap", description="Offline plan, deploy, rotation and audit for this Pulumi project.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="run the program under mocks and print the resources it would create (no CLI, no cloud)")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value for this plan (repeatable)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--with-app-db", action="store_true", help="plan with the app database enabled (roles, grants; deploy phase 3)")
    p.add_argument("--strict", action="store_true", help="exit 4 when a deploy prerequisite is not met (what preview/up/deploy refuse), e.g. in CI")
    p.add_argument("--controls", action="store_true", help="print every security control (default: only those not passing, then the summary)")
    cost_cli.add_plan_arguments(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("sql", help="print the app database model (roles, grants, default privileges) as an idempotent psql script")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.set_defaults(func=cmd_sql)

    from bootstrap.cli import deploy as deploy_cli  # rotate, deploy, preview/up/refresh/destroy/drift, audit

    deploy_cli.register(sub)
    cost_cli.register(sub, _overrides)  # cost --stack S [--compare S2] [--set k=v] [--usage FILE]
    from bootstrap.cli import tunnel as tunnel_cli  # tunnel: ECS access task + SSM port forwarding until Ctrl-C

    tunnel_cli.register(sub)
    from bootstrap.cli import release  # release --image-tag: scan gate, up, wait for ECS steady state

    release.register(sub)
    from bootstrap.cli import ops  # rollback, status, logs

    ops.register(sub)
    from bootstrap.cli import rotation  # build-rotation

    rotation.register(sub)
    from bootstrap.cli import restore  # restore --stack S (--to-time T | --latest | --snapshot ID) [--drill]

    restore.register(sub)
    from bootstrap.cli import ca_bundle  # ca-bundle fetch|check [--stack S]: the RDS CA bundle verify-full trusts

    ca_bundle.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bootstrap.cost import CostError
    from config.stack_file import InputError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, InputError, UsageError, CostError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

