"""The control catalogue: classes, statuses, component tokens and the `@control` registry."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from controls.inventory import Inventory, Res

MUST_HOLD = "must-hold"
WAIVABLE = "waivable"
ADVISORY = "advisory"

PASS = "PASS"
FAIL = "FAIL"
WAIVED = "WAIVED"
NOT_APPLICABLE = "n/a"
ADVISED = "ADVISORY"  # an advisory control that does not pass (shown with its note)

# Component tokens: a control names the component whose resources it needs, so a test can say
# "the database is wired but no RDS instance was checked".
NETWORK = "pghome:network:Network"
DATABASE = "pghome:database:Database"
REGISTRY = "pghome:registry:Registry"
SERVICE = "pghome:service:Service"
APP_DATABASE = "pghome:appdb:AppDatabase"
DB_ACCESS = "pghome:dbaccess:DbAccess"



Check = Callable[[Res, Inventory], Iterable[str]]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    level: str  # MUST_HOLD | WAIVABLE | ADVISORY
    types: tuple[str, ...]  # resource types evaluated (each one "checked")
    check: Check  # yields one problem per violation; nothing means the resource passes
    component: str | None = None  # the component whose wiring must produce `types`
    applies: Callable[[Res, Inventory], bool] | None = None
    needs_context: bool = False  # looks at other resources (stack policy) vs. one resource
    note: str = ""  # shown in the table (rationale of advisory controls, deviations from FSBP)
    condition: str = ""  # when the stack legitimately has none of `types` (then n/a is expected)

    def resources(self, inv: Inventory) -> list[Res]:
        return [r for r in inv.of_type(*self.types) if self.applies is None or self.applies(r, inv)]


CONTROLS: list[Control] = []


def control(
    id: str,  # noqa: A002 - FSBP vocabulary
    title: str,
    level: str,
    types: str | Sequence[str],
    *,
    component: str | None = None,
    applies: Callable[[Res, Inventory], bool] | None = None,
    context: bool = False,
    note: str = "",
    condition: str = "",
) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CONTROLS.append(
            Control(id, title, level, (types,) if isinstance(types, str) else tuple(types), fn, component, applies, context, note, condition)
        )
        return fn

    return register


def must_be_true(key: str) -> Check:
    """The check of a control that asks one input to be true (unset fails too): register it with
    `control(...)(must_be_true("multiAz"))`."""

    def check(r: Res, inv: Inventory) -> Iterator[str]:
        if r.get(key) is not True:
            yield f"{key} is not true"

    return check


def by_id(control_id: str) -> Control:
    for c in CONTROLS:
        if c.id == control_id:
            return c
    raise KeyError(control_id)

