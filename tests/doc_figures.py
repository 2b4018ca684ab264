"""The figures README.md and docs/cost.md quote (costs, deltas, the control summary), computed by
the tool itself. tests/test_doc_figures.py checks the docs against them; with PGHOME_UPDATE_FIGURES=1
it rewrites them (the blocks between `<!-- figures:NAME -->` and `<!-- /figures -->`, and the
lines matched by PATTERNS), as PGHOME_UPDATE_GOLDEN does for the plans."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What single changes cost (docs/cost.md): (stack, --set overrides, what it is).
CHANGES = (
    ("dev", {"natStrategy": "per_az"}, "dev `natStrategy=per_az` (a second NAT gateway and its address)"),
    ("dev", {"dbMultiAz": "true"}, "dev `dbMultiAz=true` (standby instance and storage)"),
    ("prod", {"interfaceEndpoints": "true"}, "prod `interfaceEndpoints=true` (secretsmanager and sts beside the access task's five, x 3 AZs: hours and data)"),
    ("prod", {"aws:region": "us-east-1"}, "prod in `us-east-1` instead of `eu-west-1`"),
)
COMPONENTS = {"network": "network", "service": "service", "database": "database", "registry": "registry",
              "appdatabase": "app database secrets", "dbaccess": "database access task", "rotationfunction": "rotation function"}
SUMMARIES = {"dev": "1 NAT, the access task's 5 endpoints in 1 AZ, db.t4g.micro single-AZ, 1 Spot task 0.25 vCPU/0.5 GB",
             "prod": "3 NATs, the access task's 5 endpoints x 3 AZs, db.m7g.large Multi-AZ, 3 tasks 1 vCPU/2 GB"}


def money(x: float) -> str:
    return f"${x:,.2f}"


def signed(x: float) -> str:
    return f"+{money(x)}" if x >= 0 else f"−{money(-x)}"


@functools.cache
def estimate(stack: str, overrides: tuple[tuple[str, str], ...] = ()) -> Any:
    from bootstrap.cost import estimate as cost_estimate
    from bootstrap.plan.mockgraph import run_stack

    return cost_estimate(run_stack(stack, dict(overrides)))


def delta(stack: str, overrides: dict[str, str]) -> float:
    return float(estimate(stack, tuple(sorted(overrides.items()))).total - estimate(stack).total)


def control_summary(stack: str) -> str:
    from bootstrap.plan.mockgraph import run_stack
    from bootstrap.plan.report import check_graph

    return str(check_graph(run_stack(stack)).summary())


def blocks() -> dict[str, str]:
    """Generated blocks by name."""
    dev, prod = estimate("dev"), estimate("prod")
    as_of = dev.as_of
    readme_rows = [f"| stack ({dev.region}, prices as of {as_of}) | idle | with default usage |", "|---|---:|---:|"]
    readme_rows += [f"| {s}: {SUMMARIES[s]} | {money(e.idle)}/month | {money(e.total)}/month |" for s, e in (("dev", dev), ("prod", prod))]
    cost_rows = ["| stack | idle | with default usage | biggest lines |", "|---|---:|---:|---|"]
    for s, e in (("dev", dev), ("prod", prod)):
        biggest = ", ".join(f"{kind} {money(amount)}" + (f" ({count})" if count > 1 else "") for kind, amount, count, _note, _keys in e.biggest(4))
        cost_rows.append(f"| {s} | **{money(e.idle)}** | **{money(e.total)}** | {biggest} |")
    cost_rows.append("")
    parts = []
    for s, e in (("dev", dev), ("prod", prod)):
        comps = sorted(e.by_component().items(), key=lambda kv: -kv[1][1])
        parts.append(f"{s} — " + ", ".join(f"{COMPONENTS.get(k, k)} {money(a)} / {money(b)}" for k, (a, b) in comps))
    cost_rows.append("Per component (idle / with usage): " + ". ".join(parts) + ".")
    cost_rows += ["", "What single changes cost (from `cost --set`):", "", "| change | monthly difference |", "|---|---:|"]
    cost_rows += [f"| {what} | {signed(delta(s, o))} |" for s, o, what in CHANGES]
    return {"readme-cost": "\n".join(readme_rows), "cost-figures": "\n".join(cost_rows)}


# Single figures quoted in running text: (file, pattern whose group 1 is the figure, the figure).
def patterns() -> list[tuple[str, str, str]]:
    return [
        ("README.md", r"--set natStrategy=per_az # what one change costs \((\S+)\)", signed(delta("dev", {"natStrategy": "per_az"}))),
        ("README.md", r"^(Security controls for stack dev: .*)$", control_summary("dev")),
        ("docs/cost.md", r"^## The figures \((.*)\)$", f"{estimate('dev').region}, list prices as of {estimate('dev').as_of}"),
    ]


BLOCK = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n<!-- /figures -->)", re.S)


def render(text: str, generated: dict[str, str], singles: list[tuple[str, str]]) -> str:
    """`text` with its figure blocks and single figures replaced by the tool's."""
    text = BLOCK.sub(lambda m: m.group(1) + generated[m.group("name")] + m.group(4), text)
    for pattern, value in singles:

        def single(m: re.Match[str], v: str = value) -> str:
            return m.group(0).replace(m.group(1), v)

        text = re.sub(pattern, single, text, flags=re.M)
    return text
