"""The shapes a pricing rule works with: what it reads from a resource, what it returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bootstrap.cost.tables import Prices


class Res(Protocol):
    """What a rule reads from a recorded resource (bootstrap.plan.mockgraph.Resource satisfies it)."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]

    def get(self, path: str, default: Any = None) -> Any: ...


@dataclass(frozen=True)
class Line:
    kind: str  # what is charged, e.g. "NAT gateway hours"; lines of one kind add up in the summary
    fixed: float
    usage: float
    basis: str  # the arithmetic, with the usage assumption next to the figure
    drivers: tuple[str, ...] = ()  # config keys that set this line
    driver_note: str = ""


@dataclass(frozen=True)
class Unpriced:
    kind: str
    reason: str


@dataclass
class Context:
    prices: Prices
    usage: Mapping[str, float]
    config: Mapping[str, str]  # '<namespace>:<key>' -> CLI string
    project: str
    resources: list[Any]
    counts: dict[str, int] = field(default_factory=dict)

    def cfg(self, key: str, default: str = "") -> str:
        return self.config.get(f"{self.project}:{key}", default)

    def u(self, key: str) -> float:
        return float(self.usage.get(key, 0.0))


Rule = Callable[[Res, Context], list[Line | Unpriced]]


def money(x: float) -> str:
    return f"${x:,.2f}"
