"""The audit score: five dimensions of 20 points, each counting what it names (the rubric: docs/audit-rubric.md).

- gates passed: the head's gate checks (ruff, tests, deps, audit-deps, ledger, …) that passed, of those that reached
  a verdict;
- coverage: 10 points when the total meets the project's floor, 10 when the lines the milestone changed do;
- invariants verified: invariants verified at the head, of those that ran;
- model outputs: golden cases as the milestone claims them (identical to the baseline, or changed as declared);
- surfaces: snapshot surfaces as claimed (rendered identically at baseline and head, or changed as declared).

A check or an item that could not reach a verdict (inconclusive, skipped, not run) is never a pass and never a
silent deduction: it is left out of its dimension's count, named, and the points it would have carried leave the
total's denominator. The score is 100 × earned / available, rounded; "available" is shown beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DIMENSION_POINTS = 20.0
# not gates: scored by their own dimensions, or records rather than checks
NOT_GATES = frozenset({"golden", "invariants", "coverage", "coverage-diff", "env"})


@dataclass(frozen=True)
class Dimension:
    name: str
    earned: float
    available: float  # DIMENSION_POINTS, less the share of items without a verdict
    measured: str
    inconclusive: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "earned": round(self.earned, 2),
            "available": round(self.available, 2),
            "measured": self.measured,
            "inconclusive": list(self.inconclusive),
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class AuditScore:
    dimensions: tuple[Dimension, ...]

    @property
    def earned(self) -> float:
        return sum(d.earned for d in self.dimensions)

    @property
    def available(self) -> float:
        return sum(d.available for d in self.dimensions)

    @property
    def total(self) -> int:
        if self.available == 0:
            return 0
        return math.floor(100 * self.earned / self.available + 0.5)

    @property
    def inconclusive(self) -> tuple[str, ...]:
        return tuple(item for d in self.dimensions for item in d.inconclusive)

    def describe(self) -> str:
        return " + ".join(f"{d.name} {d.earned:.1f}/{d.available:.1f}" for d in self.dimensions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "earned": round(self.earned, 2),
            "available": round(self.available, 2),
            "dimensions": {d.name: d.to_dict() for d in self.dimensions},
        }


def _share(
    name: str, passed: int, counted: int, measured: str, inconclusive: list[str], sources: tuple[str, ...]
) -> Dimension:
    """`passed` of `counted` items with a verdict; the items without one (`inconclusive`) leave the denominator."""
    total = counted + len(inconclusive)
    if total == 0:
        return Dimension(name, 0.0, 0.0, f"nothing to measure ({measured})", (f"{name}: nothing measured",), sources)
    available = DIMENSION_POINTS * counted / total
    earned = DIMENSION_POINTS * passed / total
    return Dimension(name, earned, available, measured, tuple(inconclusive), sources)


def gates_dimension(run_results: dict[str, dict[str, Any]]) -> Dimension:
    gates = {
        check: result
        for check, result in sorted(run_results.items())
        if check not in NOT_GATES and not check.startswith(("golden", "invariant", "milestone"))
    }
    decided = {c: r for c, r in gates.items() if r.get("outcome") in ("passed", "failed")}
    undecided = [
        f"gate {c} {r.get('outcome')}: {r.get('reason') or r.get('summary')}"
        for c, r in gates.items()
        if c not in decided
    ]
    passed = [c for c, r in decided.items() if r["outcome"] == "passed"]
    failed = [c for c in decided if c not in passed]
    measured = f"{len(passed)}/{len(decided)} gates passed" + (f" (failed: {', '.join(failed)})" if failed else "")
    if undecided:
        measured += f"; without a verdict: {', '.join(c for c in gates if c not in decided)}"
    return _share("gates passed", len(passed), len(decided), measured, undecided, ("summary.json",))


def coverage_dimension(coverage: dict[str, Any]) -> Dimension:
    half = DIMENSION_POINTS / 2
    total, floor = coverage.get("total"), coverage.get("floor")
    if not isinstance(total, int | float) or not isinstance(floor, int | float):
        return Dimension("coverage", 0.0, 0.0, "no coverage at the head", ("coverage: not measured at the head",))
    earned = half if total >= floor else 0.0
    measured = f"total {total:.2f}% (floor {floor:.2f}%)"
    changed = coverage.get("changed_lines")
    if changed is None:
        measured += "; changed lines not measured"
        inconclusive = ("coverage of the changed lines: no coverage.xml in the evidence",)
        return Dimension("coverage", earned, half, measured, inconclusive, ("summary.json",))
    percent = changed.get("percent")
    if percent is None:
        earned += half
        measured += "; no measured line changed"
    else:
        earned += half if percent >= floor else 0.0
        measured += f"; changed lines {changed['covered']}/{changed['changed_measured_lines']} = {percent:.1f}%"
    return Dimension("coverage", earned, DIMENSION_POINTS, measured, (), ("coverage.xml", "summary.json"))


def invariants_dimension(invariants: dict[str, Any]) -> Dimension:
    statuses: dict[str, str] = invariants.get("statuses") or {}
    if not statuses:
        return Dimension(
            "invariants verified", 0.0, 0.0, "no invariants result", ("invariants: not measured at the head",)
        )
    undecided = [f"invariant {i} {s}" for i, s in sorted(statuses.items()) if s == "not run"]
    counted = [s for s in statuses.values() if s != "not run"]
    verified = counted.count("verified")
    measured = f"{verified}/{len(counted)} invariants verified at the head"
    return _share("invariants verified", verified, len(counted), measured, undecided, ("summary.json",))


def _claims(name: str, entries: list[dict[str, Any]], key: str, noun: str) -> Dimension:
    ok = ("unchanged", "changed as declared", "added")
    undecided = [f"{noun} {e[key]} {e.get('claim')}" for e in entries if e.get("claim") == "inconclusive"]
    counted = [e for e in entries if e.get("claim") != "inconclusive"]
    good = [e for e in counted if e.get("claim") in ok]
    unchanged = sum(1 for e in counted if e.get("claim") == "unchanged")
    declared = sum(1 for e in counted if e.get("claim") == "changed as declared")
    added = sum(1 for e in counted if e.get("claim") == "added")
    parts = [f"{unchanged} identical to the baseline" if noun == "case" else f"{unchanged} unchanged"]
    if declared:
        parts.append(f"{declared} changed as declared")
    if added:
        parts.append(f"{added} new")
    measured = f"{len(good)}/{len(counted)} {noun}s as claimed ({', '.join(parts)})"
    return _share(name, len(good), len(counted), measured, undecided, ("milestone-verify.json",))


def compute_audit_score(verify_document: dict[str, Any], run_results: dict[str, dict[str, Any]]) -> AuditScore:
    parts = verify_document["parts"]
    return AuditScore(
        (
            gates_dimension(run_results),
            coverage_dimension(parts.get("coverage", {})),
            invariants_dimension(parts.get("invariants", {})),
            _claims("model outputs", parts["model-outputs"].get("cases", []), "case", "case"),
            _claims("surfaces", parts["surfaces"].get("surfaces", []), "surface", "surface"),
        )
    )
