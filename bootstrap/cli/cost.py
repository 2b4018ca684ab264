"""The cost estimate on the command line: `plan` options and the `cost` command (see docs/cost.md)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from bootstrap.cost import Estimate, compare, estimate
from bootstrap.cost.tables import NoPricesError, load_prices, read_usage_file


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cost", action="store_true", help="print the monthly cost estimate per resource too (see docs/cost.md)")
    p.add_argument("--usage", metavar="FILE", help="usage assumptions for the cost estimate (JSON or YAML mapping, e.g. nat_gb: 100)")


def usage_overrides(args: argparse.Namespace) -> dict[str, float] | None:
    """Read --usage before anything runs, so a bad file stops the command first."""
    return read_usage_file(args.usage) if getattr(args, "usage", None) else None


def plan_estimate(graph: Any, args: argparse.Namespace, overrides: dict[str, float] | None) -> Estimate | str:
    """The estimate for `plan`, or the sentence saying why there is none (plain plan keeps going)."""
    try:
        return estimate(graph, overrides)
    except NoPricesError as exc:  # a bad usage value is still an error
        if args.cost:
            raise
        return str(exc)


def plan_text(result: Estimate | str, args: argparse.Namespace) -> str:
    if isinstance(result, str):
        return f"Cost estimate: not available: {result}"
    text = result.render_summary()
    if args.cost:
        text = result.render_resources() + "\n\n" + text
    return text


def plan_json(result: Estimate | str) -> dict[str, Any]:
    return {"error": result} if isinstance(result, str) else result.as_json()


def cmd_cost(args: argparse.Namespace, parse_overrides: Callable[[Sequence[str]], dict[str, str]]) -> int:
    from bootstrap.plan.mockgraph import run_stack
    from config.stack_file import stack_config

    overrides = parse_overrides(args.set)
    usage = usage_overrides(args)
    other = args.compare or args.stack
    for stack, extra in ((args.stack, {}), (other, overrides)):
        load_prices(stack_config(stack, extra).get("aws:region", ""))  # an unknown region stops here, before any run
    base = estimate(run_stack(args.stack), usage)
    if not args.compare and not overrides:
        if args.json:
            print(json.dumps(base.as_json(), indent=2))
        else:
            print(base.render_resources() + "\n\n" + base.render_summary())
        return 0
    changed = estimate(run_stack(other, overrides), usage)
    label = other + "".join(f" +{k}={v}" for k, v in overrides.items())
    if args.json:
        print(json.dumps({"a": {"label": args.stack, **base.as_json()}, "b": {"label": label, **changed.as_json()}, "difference": round(changed.total - base.total, 2)}, indent=2))
    else:
        print(compare(base, changed, args.stack, label))
    return 0


def register(sub: Any, parse_overrides: Callable[[Sequence[str]], dict[str, str]]) -> None:
    """Add the `cost` command; `parse_overrides` reads --set pairs the way every other command does."""
    p = sub.add_parser("cost", help="monthly cost estimate of a stack from list prices, offline; --compare/--set show the difference")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    p.add_argument("--compare", metavar="STACK", help="compare with this stack (e.g. prod)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value on the compared side (repeatable)")
    p.add_argument("--usage", metavar="FILE", help="usage assumptions (JSON or YAML mapping, e.g. nat_gb: 100), applied to both sides")
    p.add_argument("--json", action="store_true", help="print the estimate(s) as JSON")
    p.set_defaults(func=lambda args: cmd_cost(args, parse_overrides))


