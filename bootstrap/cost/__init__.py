"""Offline monthly cost estimate of a recorded resource graph (issue 17). See docs/cost.md.

    estimate(graph, usage_overrides) -> Estimate   # per resource, per component, per stack
    compare(a, b) -> str                           # the difference between two estimates

Pure: reads data/prices.json and data/usage.json, never Pulumi or the network. A resource type
with no rule and no FREE entry is listed as not priced, never counted as zero.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bootstrap.cost.rules import FREE, RULES, Context, Line, Unpriced
from bootstrap.cost.tables import (
    HOURS,
    PRICES_FILE,
    CostError,
    default_usage,
    load_prices,
    parse_usage_pairs,
    price_regions,
    read_usage_file,
    usage_keys,
)

__all__ = ["CostError", "Estimate", "compare", "estimate", "price_regions", "read_usage_file", "usage_keys", "FREE", "RULES", "HOURS"]


@dataclass(frozen=True)
class Item:
    resource: str
    type: str
    component: str
    line: Line


@dataclass(frozen=True)
class NotPriced:
    resource: str
    type: str
    component: str
    kind: str
    reason: str


@dataclass
class Estimate:
    stack: str
    region: str
    as_of: str
    environment: str
    usage: dict[str, float]
    usage_origin: str
    items: list[Item] = field(default_factory=list)
    not_priced: list[NotPriced] = field(default_factory=list)
    free: list[tuple[str, str, str]] = field(default_factory=list)  # (resource, type, reason)

    # ---- sums -------------------------------------------------------------------------------
    @property
    def idle(self) -> float:
        return sum(i.line.fixed for i in self.items)

    @property
    def total(self) -> float:
        return sum(i.line.fixed + i.line.usage for i in self.items)

    def by_component(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for i in self.items:
            idle, total = out.get(i.component, (0.0, 0.0))
            out[i.component] = (idle + i.line.fixed, total + i.line.fixed + i.line.usage)
        return dict(sorted(out.items()))

    def by_kind(self) -> dict[str, tuple[float, int, str, tuple[str, ...]]]:
        """Lines of one kind added up: (amount with usage, count, a driver note, config keys)."""
        out: dict[str, tuple[float, int, str, tuple[str, ...]]] = {}
        for i in self.items:
            amount, count, note, keys = out.get(i.line.kind, (0.0, 0, "", ()))
            out[i.line.kind] = (amount + i.line.fixed + i.line.usage, count + 1, note or i.line.driver_note, keys or i.line.drivers)
        return out

    def biggest(self, n: int = 5) -> list[tuple[str, float, int, str, tuple[str, ...]]]:
        kinds = sorted(self.by_kind().items(), key=lambda kv: -kv[1][0])
        return [(k, a, c, note, keys) for k, (a, c, note, keys) in kinds[:n] if a > 0]

    # ---- output -----------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "region": self.region,
            "pricesAsOf": self.as_of,
            "hoursPerMonth": HOURS,
            "priceTable": str(PRICES_FILE.relative_to(PRICES_FILE.parent.parent)),
            "usage": self.usage,
            "usageOrigin": self.usage_origin,
            "monthlyIdle": round(self.idle, 2),
            "monthlyTotal": round(self.total, 2),
            "components": {k: {"idle": round(a, 2), "total": round(b, 2)} for k, (a, b) in self.by_component().items()},
            "biggest": [{"kind": k, "monthly": round(a, 2), "count": c, "drivers": list(keys), "note": note} for k, a, c, note, keys in self.biggest()],
            "items": [
                {
                    "resource": i.resource,
                    "type": i.type,
                    "component": i.component,
                    "kind": i.line.kind,
                    "fixed": round(i.line.fixed, 4),
                    "usage": round(i.line.usage, 4),
                    "basis": i.line.basis,
                    "drivers": list(i.line.drivers),
                }
                for i in self.items
            ],
            "notPriced": [{"resource": n.resource, "type": n.type, "component": n.component, "kind": n.kind, "reason": n.reason} for n in self.not_priced],
        }

    def render_summary(self) -> str:
        head = (
            f"Estimated monthly cost of stack {self.stack} in {self.region} (USD, AWS list prices as of {self.as_of}, "
            f"{HOURS} h/month, data/prices.json; prices change, check before you rely on a figure):"
        )
        rows = [("COMPONENT", "IDLE", "WITH USAGE")]
        for comp, (idle, total) in self.by_component().items():
            rows.append((comp, _m(idle), _m(total)))
        rows.append(("TOTAL", _m(self.idle), _m(self.total)))
        lines = [head, *_table(rows, rule_before_last=True), "", "Biggest lines, and the config keys that drive them:"]
        for kind, amount, count, note, keys in self.biggest():
            driver = note or (", ".join(f"{k}={self._cfg_value(k)}" for k in keys) if keys else "always on")
            lines.append(f"  {kind:<38} {_m(amount):>10}  {_count(count):<14} {driver}")
        lines.append("")
        lines.extend(textwrap.wrap(f"Usage assumed ({self.usage_origin}; idle = all usage 0): " + self._usage_text(), 140, subsequent_indent="  "))
        lines.extend(self._render_not_priced())
        return "\n".join(lines)

    def render_resources(self) -> str:
        rows = [("RESOURCE", "COMPONENT", "ITEM", "FIXED", "USAGE", "BASIS")]
        for i in sorted(self.items, key=lambda i: (i.component, i.resource, i.line.kind)):
            rows.append((i.resource, i.component, i.line.kind, _m(i.line.fixed), _m(i.line.usage), i.line.basis))
        kinds = sorted({t.split(":")[-1] for _, t, _ in self.free})
        free = f"No charge by themselves ({len(self.free)} resources): " + ", ".join(kinds) + " (reasons: bootstrap/cost/free.py)"
        return "\n".join([*_table(rows), *textwrap.wrap(free, 140, subsequent_indent="  ")])

    def _render_not_priced(self) -> list[str]:
        if not self.not_priced:
            return ["Not priced: nothing (every resource type has a price rule or is free)."]
        out = [f"Not priced ({len(self.not_priced)}; NOT included in the totals above):"]
        for n in self.not_priced:
            out.append(f"  {n.resource} ({n.type}) {n.kind}: {n.reason}")
        return out

    def _usage_text(self) -> str:
        units = usage_keys()
        return ", ".join(f"{k}={v:g} {units[k][0]}" for k, v in sorted(self.usage.items()))

    config: Mapping[str, str] = field(default_factory=dict, repr=False)  # the stack's config, to show driver values
    project: str = ""

    def _cfg_value(self, key: str) -> str:
        return self.config.get(f"{self.project}:{key}", "?")


def _count(n: int) -> str:
    return f"({n} resource{'s' if n != 1 else ''})"


def _m(x: float) -> str:
    return f"${x:,.2f}"


def _table(rows: Sequence[tuple[str, ...]], rule_before_last: bool = False) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    full = min(160, sum(widths) + 2 * len(widths) + max(len(r[-1]) for r in rows))
    out = []
    for n, row in enumerate(rows):
        cells = [f"{c:>{w}}" if c.startswith("$") or c in ("IDLE", "WITH USAGE", "FIXED", "USAGE") else f"{c:<{w}}" for c, w in zip(row, widths, strict=False)]
        if rule_before_last and n == len(rows) - 1:
            out.append("-" * full)
        out.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    out.insert(1, "-" * full)
    return out


def _component_names(graph: Any) -> dict[str, str]:
    """URN -> the name of its top-level component (its type's last word, e.g. 'network')."""
    by_urn = {r.urn: r for r in graph.resources}
    names: dict[str, str] = {}
    for r in graph.resources:
        top, cur = None, r
        while cur is not None:
            if not cur.custom:
                top = cur
            cur = by_urn.get(cur.parent)
        names[r.urn] = top.type.rsplit(":", 1)[-1].lower() if top is not None else "(stack)"
    return names


def resolve_usage(graph: Any, usage_overrides: Mapping[str, float] | None) -> tuple[dict[str, float], str]:
    """Defaults for the stack's environment, then the costUsage config, then --usage."""
    project = graph.project
    environment = graph.config.get(f"{project}:environment", graph.stack)
    usage = default_usage(environment)
    origin = [f"{environment if environment in ('dev', 'staging', 'prod') else 'dev'} defaults"]
    raw = graph.config.get(f"{project}:costUsage", "")
    if raw and raw != "[]":
        try:
            pairs = json.loads(raw)
        except json.JSONDecodeError:
            raise CostError("costUsage must be a list of key=value strings, e.g. [nat_gb=100]") from None
        if not isinstance(pairs, list):
            raise CostError("costUsage must be a list of key=value strings, e.g. [nat_gb=100]")
        usage.update(parse_usage_pairs(pairs, "costUsage"))
        origin.append("costUsage config")
    if usage_overrides:
        usage.update(usage_overrides)
        origin.append("--usage file")
    return usage, " + ".join(origin)


def estimate(graph: Any, usage_overrides: Mapping[str, float] | None = None) -> Estimate:
    """Price every resource of a recorded graph (bootstrap.plan.mockgraph.Graph) for one month."""
    region = graph.config.get("aws:region", "")
    prices = load_prices(region)
    usage, origin = resolve_usage(graph, usage_overrides)
    custom = [r for r in graph.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    ctx = Context(prices=prices, usage=usage, config=graph.config, project=graph.project, resources=custom)
    for r in custom:
        ctx.counts[r.type] = ctx.counts.get(r.type, 0) + 1
        if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint" and r.get("vpcEndpointType") == "Interface":
            ctx.counts["interface endpoints"] = ctx.counts.get("interface endpoints", 0) + 1
    components = _component_names(graph)
    est = Estimate(
        stack=graph.stack,
        region=region,
        as_of=prices.as_of,
        environment=graph.config.get(f"{graph.project}:environment", ""),
        usage=usage,
        usage_origin=origin,
        config=graph.config,
        project=graph.project,
    )
    for r in sorted(custom, key=lambda r: (components[r.urn], r.type, r.name)):
        comp = components[r.urn]
        rule = RULES.get(r.type)
        if rule is None:
            reason = FREE.get(r.type) or ("objects inside the database: no AWS charge" if r.type.startswith("postgresql:") else None)
            if reason is not None:
                est.free.append((r.name, r.type, reason))
            else:
                est.not_priced.append(NotPriced(r.name, r.type, comp, "resource", "no price rule for this type in bootstrap/cost/rules.py"))
            continue
        parts = rule(r, ctx)
        if not parts:  # e.g. a gateway endpoint, a cluster without Container Insights
            est.free.append((r.name, r.type, "no charge in this configuration"))
        for part in parts:
            if isinstance(part, Unpriced):
                est.not_priced.append(NotPriced(r.name, r.type, comp, part.kind, part.reason))
            else:
                est.items.append(Item(r.name, r.type, comp, part))
    return est


def compare(a: Estimate, b: Estimate, label_a: str, label_b: str) -> str:
    """Per component and per kind of charge: a, b and the difference (with usage)."""
    rows = [("COMPONENT", label_a, label_b, "DIFFERENCE")]
    ca, cb = a.by_component(), b.by_component()
    for comp in sorted(set(ca) | set(cb)):
        x, y = ca.get(comp, (0.0, 0.0))[1], cb.get(comp, (0.0, 0.0))[1]
        rows.append((comp, _m(x), _m(y), _signed(y - x)))
    rows.append(("TOTAL (with usage)", _m(a.total), _m(b.total), _signed(b.total - a.total)))
    out = [
        f"Monthly cost, {label_a} vs {label_b} (USD, list prices as of {a.as_of}; usage: {a.usage_origin} / {b.usage_origin}):",
        *_rows(rows),
        f"Idle: {_m(a.idle)} vs {_m(b.idle)} ({_signed(b.idle - a.idle)})",
        "",
        "What changed most:",
    ]
    ka, kb = a.by_kind(), b.by_kind()
    deltas = sorted(((kb.get(k, (0.0,))[0] - ka.get(k, (0.0,))[0], k) for k in set(ka) | set(kb)), key=lambda t: -abs(t[0]))
    for delta, kind in deltas[:8]:
        if abs(delta) < 0.005:
            continue
        na, nb = ka.get(kind, (0.0, 0, "", ()))[1], kb.get(kind, (0.0, 0, "", ()))[1]
        note = kb.get(kind, ka.get(kind, (0.0, 0, "", ())))[2]
        out.append(f"  {kind:<38} {_signed(delta):>11}  ({na} -> {nb} resources){'  ' + note if note else ''}")
    if len(out) and out[-1] == "What changed most:":
        out.append("  nothing")
    for est, label in ((a, label_a), (b, label_b)):
        if est.not_priced:
            out.append(f"Not priced in {label} (not in the totals): " + "; ".join(f"{n.resource} {n.kind}" for n in est.not_priced))
    return "\n".join(out)


def _signed(x: float) -> str:
    return ("+" if x >= 0.005 else "-" if x <= -0.005 else " ") + f"${abs(x):,.2f}"


def _rows(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0 or n == len(rows) - 2:
            out.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return out
