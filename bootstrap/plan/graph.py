"""The graph a program run under mocks records (bootstrap/plan/mockgraph.py makes it): resources
with their inputs, options and computed state, the invokes, the stack outputs; lookups for tests
and the plan, and the security controls' view of it (`Graph.inventory()`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from controls.inventory import Inventory, Res, dotted_get


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    secret_paths: frozenset[str]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    custom: bool
    provider: str
    protect: bool
    ignore_changes: list[str]
    additional_secret_outputs: list[str]
    replace_on_changes: list[str]
    delete_before_replace: bool
    retain_on_delete: bool
    id: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    def is_secret(self, path: str) -> bool:
        """True if the input at `path` (dotted, e.g. 'password') was a Pulumi secret."""
        return path in self.secret_paths or any(path.startswith(p + ".") for p in self.secret_paths)

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted path, e.g. 'accessLogs.enabled' or 'ingress.0.fromPort'."""
        return dotted_get(self.inputs, path, default)


@dataclass
class Invoke:
    token: str
    args: dict[str, Any]


@dataclass
class Graph:
    stack: str
    project: str
    config: dict[str, str]
    resources: list[Resource]
    invokes: list[Invoke]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]

    def __len__(self) -> int:
        return len(self.resources)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected exactly one {type_}{f' named {name}' if name else ''}, found {len(found)}: {names}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def components(self) -> list[Resource]:
        return [r for r in self.resources if not r.custom]

    def by_id(self, id_: str) -> Resource | None:
        for r in self.resources:
            if r.id == id_:
                return r
        return None

    def inventory(self) -> Inventory:
        """The graph as the security controls see it (controls/ knows nothing of this harness)."""
        return Inventory(
            Res(
                urn=r.urn,
                type=r.type,
                name=r.name,
                inputs=r.inputs,
                id=r.id,
                arn=str(r.state.get("arn", "")) if isinstance(r.state, dict) else "",
                parent=r.parent,
                deps={k: tuple(v) for k, v in r.property_dependencies.items()},
                protect=r.protect,
                retain_on_delete=r.retain_on_delete,
            )
            for r in self.resources
        )
