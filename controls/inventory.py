"""A neutral view of resources, built from a mock graph or from the policy engine's resources."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class Unknown:
    """A value the engine does not know yet (preview). Reading it makes the check undecided."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


class UndecidedError(Exception):
    """Raised by `Res.get` when the value needed is unknown until apply."""

    def __init__(self, resource: Res, path: str):
        super().__init__(f"{resource.name}: input {path} is not known until apply")
        self.resource = resource
        self.path = path


def contains_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def dotted_get(value: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path ('a.b.0.c': dict keys and list indexes); `default` when absent.

    Stops at an Unknown on the way and returns it, so the caller decides what unknown means.
    """
    for part in path.split("."):
        if isinstance(value, Unknown):
            return value
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
    return value


@dataclass(frozen=True)
class Res:
    """One resource: its type, names and recorded inputs, plus which resources each input came from."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    id: str = ""
    arn: str = ""
    parent: str = ""
    deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    protect: bool = False
    """Pulumi's `protect` option: `destroy` (and a replace) refuses to delete the resource."""
    retain_on_delete: bool | None = False
    """Pulumi's `retainOnDelete` option; None where the caller cannot see it (the policy SDK)."""

    def option(self, name: str) -> bool:
        """A resource option ('protect', 'retain_on_delete'); UndecidedError when it is not visible."""
        value = getattr(self, name)
        if value is None:
            raise UndecidedError(self, f"option {name}")
        return bool(value)

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted path (e.g. 'accessLogs.enabled'); raises UndecidedError if unknown."""
        value = dotted_get(self.inputs, path, default)
        if contains_unknown(value):
            raise UndecidedError(self, path)
        return value

    @property
    def keys(self) -> set[str]:
        """Strings other resources may use to refer to this one (id, ARN, physical name)."""
        names = {self.id, self.arn}
        for k in ("name", "bucket", "identifier"):
            v = self.inputs.get(k)
            if isinstance(v, str):
                names.add(v)
        names.discard("")
        return names


class Inventory:
    """All resources of one stack, with lookups by type and by reference."""

    def __init__(self, resources: Iterable[Res]):
        self.resources = [r for r in resources]
        self.by_urn = {r.urn: r for r in self.resources}

    def __iter__(self) -> Iterator[Res]:
        return iter(self.resources)

    def of_type(self, *types: str) -> list[Res]:
        return [r for r in self.resources if r.type in types]

    def has_component(self, token: str) -> bool:
        return any(r.type == token for r in self.resources)

    def refers_to(self, source: Res, prop: str, target: Res) -> bool:
        """True if `source.<prop>` was built from `target` (dependency) or holds its id/ARN/name."""
        if target.urn in source.deps.get(prop, ()):
            return True
        value = source.inputs.get(prop)
        values = value if isinstance(value, list) else [value]
        return any(isinstance(v, str) and v in target.keys for v in values)

    def referenced(self, source: Res, prop: str, *types: str) -> list[Res]:
        """The resources of `types` that `source.<prop>` refers to."""
        return [t for t in self.of_type(*types) if self.refers_to(source, prop, t)]

    def referring(self, target: Res, prop: str, *types: str) -> list[Res]:
        """The resources of `types` whose `<prop>` refers to `target`."""
        return [s for s in self.of_type(*types) if self.refers_to(s, prop, target)]
