"""Evaluation: run the catalogue on an inventory, apply waivers, and render the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controls.catalogue import ADVISED, ADVISORY, CONTROLS, FAIL, MUST_HOLD, NOT_APPLICABLE, PASS, WAIVABLE, WAIVED, Control
from controls.inventory import Inventory, Res, UndecidedError


@dataclass(frozen=True)
class Finding:
    control_id: str
    resource: str  # resource name
    urn: str
    message: str

    def __str__(self) -> str:
        return f"{self.control_id} {self.resource}: {self.message}"


@dataclass
class ControlResult:
    control: Control
    status: str
    checked: int
    findings: list[Finding]
    undecided: list[str] = field(default_factory=list)
    reason: str = ""  # waiver reason, or the advisory note

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class Report:
    stack: str
    results: list[ControlResult]
    waiver_notes: list[str]  # waivers that are unused or refused

    def result(self, control_id: str) -> ControlResult:
        for r in self.results:
            if r.control.id == control_id:
                return r
        raise KeyError(control_id)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[ControlResult]:
        return [r for r in self.results if r.failed]

    @property
    def must_hold_failed(self) -> list[ControlResult]:
        return [r for r in self.failed if r.control.level == MUST_HOLD]

    def summary(self) -> str:
        return (
            f"Security controls for stack {self.stack}: {self.count(PASS)} passed / {self.count(WAIVED)} waived / "
            f"{self.count(FAIL)} failed / {self.count(ADVISED)} advisory / {self.count(NOT_APPLICABLE)} n/a "
            f"({len(self.must_hold_failed)} must-hold failed)"
        )

    def render(self, full: bool = True) -> str:
        """The table (all controls when `full`, else only those not passing), then the summary."""
        rows = [("CONTROL", "CLASS", "CHECKED", "STATUS", "TITLE / DETAIL")]
        lines: list[str] = []
        for res in self.results:
            if not full and res.status in (PASS, NOT_APPLICABLE):
                continue
            rows.append((res.control.id, res.control.level, str(res.checked), res.status, res.control.title))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        details: dict[str, list[str]] = {}
        for res in self.results:
            extra = []
            if res.status == WAIVED:
                extra.append(f"waived: {res.reason}")
            elif res.status == ADVISED:
                extra.append(f"note: {res.reason}")
            elif res.status == NOT_APPLICABLE:
                extra.append(f"n/a: no {' / '.join(res.control.types)} in this graph" + (f" ({res.control.condition})" if res.control.condition else ""))
            if res.status in (FAIL, WAIVED, ADVISED):
                extra.extend(f"- {f.resource}: {f.message}" for f in res.findings)
            if res.undecided:
                extra.extend(f"? {u}" for u in res.undecided)
            details[res.control.id] = extra
        if len(rows) == 1:  # nothing to list: only the summary
            rows = []
        for i, row in enumerate(rows):
            lines.append("  ".join(f"{cell:<{widths[j]}}" for j, cell in enumerate(row[:4])) + "  " + row[4])
            if i == 0:
                lines.append("-" * min(160, sum(widths) + 60))
                continue
            indent = " " * (sum(widths) + 8)
            lines.extend(indent + d for d in details.get(row[0], []) if full or not d.startswith("n/a"))
        lines.extend(f"note: {n}" for n in self.waiver_notes)
        lines.append(self.summary())
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "controls": [
                {
                    "id": r.control.id,
                    "title": r.control.title,
                    "class": r.control.level,
                    "checked": r.checked,
                    "status": r.status,
                    "reason": r.reason,
                    "findings": [{"resource": f.resource, "message": f.message} for f in r.findings],
                    "undecided": r.undecided,
                }
                for r in self.results
            ],
            "waiverNotes": self.waiver_notes,
            "summary": self.summary(),
        }


def check_resource(ctl: Control, r: Res, inv: Inventory) -> list[Finding]:
    """The findings of one control on one resource (raises UndecidedError if an input is unknown)."""
    return [Finding(ctl.id, r.name, r.urn, msg) for msg in ctl.check(r, inv)]


def evaluate_control(ctl: Control, inv: Inventory, waivers: Mapping[str, str] | None = None) -> ControlResult:
    waivers = waivers or {}
    findings: list[Finding] = []
    undecided: list[str] = []
    checked = 0
    for r in inv.of_type(*ctl.types):
        try:
            if ctl.applies is not None and not ctl.applies(r, inv):
                continue
            checked += 1
            findings.extend(check_resource(ctl, r, inv))
        except UndecidedError as exc:
            undecided.append(str(exc))
    if checked == 0:
        return ControlResult(ctl, NOT_APPLICABLE, 0, [], undecided)
    if not findings:
        return ControlResult(ctl, PASS, checked, [], undecided)
    if ctl.level == ADVISORY:
        return ControlResult(ctl, ADVISED, checked, findings, undecided, ctl.note)
    if ctl.level == WAIVABLE and ctl.id in waivers:
        return ControlResult(ctl, WAIVED, checked, findings, undecided, waivers[ctl.id])
    return ControlResult(ctl, FAIL, checked, findings, undecided)


def waiver_problems(waivers: Mapping[str, str]) -> list[str]:
    """Waivers naming an unknown control or one that may never be waived (used by the config loader)."""
    known = {c.id: c for c in CONTROLS}
    problems = []
    for control_id in sorted(waivers):
        ctl = known.get(control_id)
        if ctl is None:
            problems.append(f"{control_id} is not a control this project checks (known: {', '.join(c.id for c in CONTROLS)})")
        elif ctl.level != WAIVABLE:
            problems.append(f"{control_id} is a {ctl.level} control and cannot be waived")
    return problems


def evaluate(inv: Inventory, *, stack: str = "", waivers: Mapping[str, str] | None = None, controls: Sequence[Control] | None = None) -> Report:
    waivers = dict(waivers or {})
    results = [evaluate_control(c, inv, waivers) for c in (controls or CONTROLS)]
    notes = [f"waiver {p} (ignored)" for p in waiver_problems(waivers)]
    for res in results:
        if res.control.id in waivers and res.control.level == WAIVABLE and res.status != WAIVED:
            why = "the control is n/a in this graph" if res.status == NOT_APPLICABLE else f"the control is {res.status}"
            notes.append(f"waiver {res.control.id} is unused: {why}")
    return Report(stack, results, notes)
