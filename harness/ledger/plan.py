"""A milestone's claim, as its plan declares it: TOML front matter between `+++` lines at the top of MNN_plan.md.

    +++
    milestone = "M08"
    title = "ProcessingRunner: prepare → execute → finalize"
    posture = "behavior-preserving"          # or "behavior-changing", "additive"
    baseline = "f4eb98c"                     # a git ref or sha: what the head is compared with
    invariants = ["INV-001", "INV-004"]      # ids it must keep, or ["all"]

    [[changes]]                              # behavior-changing (any surface) and additive (snapshots) only
    surface = "golden:t2i-ddim*"             # golden:<case id or glob> or snapshot:<name>
    reason = "DDIM now honours eta"

    [[exit_criteria]]
    criterion = "Every golden case identical to the baseline"
    evidence = "verify:model-outputs"        # see EVIDENCE_KINDS
    +++

Every problem is one line naming the file, the field and the value; `ledger check` and `milestone verify` stop on
it with exit 2. Which invariants, cases and snapshots exist is passed in, so this module reads nothing but the plan.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import LedgerError

FENCE = "+++"
POSTURES = ("behavior-preserving", "behavior-changing", "additive")
SURFACE_KINDS = ("golden", "snapshot")
# what an exit criterion's evidence can name; `milestone verify` evaluates each
EVIDENCE_KINDS = {
    "verify": "a part of `milestone verify`: model-outputs, surfaces, invariants, coverage, verdict",
    "golden": "golden cases (id or glob) as the milestone claims: identical to the baseline unless declared",
    "snapshot": "a surface (snapshot name) as the milestone claims: unchanged unless declared",
    "invariant": "an invariant id verified at the head (the run evidence's invariants.json)",
    "check": "a check of the run evidence (summary.json and the other reports) that passed: tests, coverage, ruff…",
    "command": "a shell command run from the repository root by `milestone verify`; met on exit 0",
}
VERIFY_PARTS = ("model-outputs", "surfaces", "invariants", "coverage", "verdict")
_FIELDS = {"milestone", "title", "posture", "baseline", "invariants", "changes", "exit_criteria"}
_REQUIRED = ("milestone", "title", "posture", "baseline")
_INVARIANT_ID = re.compile(r"^INV-\d{3}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^-]{0,199}$")


class PlanError(LedgerError):
    """A plan whose front matter is missing or malformed: one line naming file, field and value (exit 2)."""


@dataclass(frozen=True)
class DeclaredChange:
    kind: str  # golden | snapshot
    target: str  # case id or glob, or snapshot name
    reason: str

    @property
    def surface(self) -> str:
        return f"{self.kind}:{self.target}"

    def covers(self, kind: str, name: str) -> bool:
        return kind == self.kind and fnmatch.fnmatchcase(name, self.target)


@dataclass(frozen=True)
class ExitCriterion:
    criterion: str
    kind: str
    target: str

    @property
    def evidence(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class Plan:
    path: Path
    milestone: str
    title: str
    posture: str
    baseline: str
    invariants: tuple[str, ...]  # ("all",) keeps every invariant of the registry
    changes: tuple[DeclaredChange, ...]
    exit_criteria: tuple[ExitCriterion, ...]
    body: str  # the Markdown after the front matter

    def declared(self, kind: str, name: str) -> DeclaredChange | None:
        return next((change for change in self.changes if change.covers(kind, name)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "milestone": self.milestone,
            "title": self.title,
            "posture": self.posture,
            "baseline": self.baseline,
            "invariants": list(self.invariants),
            "changes": [{"surface": c.surface, "reason": c.reason} for c in self.changes],
            "exit_criteria": [{"criterion": c.criterion, "evidence": c.evidence} for c in self.exit_criteria],
        }


def split_front_matter(text: str) -> tuple[str, str] | None:
    """(front matter TOML, Markdown body) when `text` starts with a `+++` fence; None when it has no front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]).lstrip("\n")
    raise PlanError("the front matter opened with +++ on line 1 is never closed by a +++ line")


def has_front_matter(text: str) -> bool:
    return bool(text.splitlines()) and text.splitlines()[0].strip() == FENCE


def _string(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PlanError(f"{where}: field {name} is {value!r}; expected a non-empty string")
    return value.strip()


def _surface(text: Any, where: str, field: str) -> tuple[str, str]:
    kind, sep, target = str(text).partition(":")
    if not isinstance(text, str) or not sep or kind not in SURFACE_KINDS or not target.strip():
        raise PlanError(f"{where}: field {field} is {text!r}; expected golden:<case id or glob> or snapshot:<name>")
    return kind, target.strip()


def parse_plan(text: str, path: Path, shown: str | None = None) -> Plan:
    """The plan's front matter, checked for shape (not yet against the registry, cases or git)."""
    where = shown or str(path)
    try:
        split = split_front_matter(text)
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from None
    if split is None:
        raise PlanError(
            f"{where}: no front matter; the plan starts with +++, the milestone's TOML claim, and +++ "
            "(`serena-verify milestone new` writes one)"
        )
    front, body = split
    try:
        data = tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{where}: front matter is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise PlanError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(sorted(_FIELDS))}")
    for name in _REQUIRED:
        if name not in data:
            raise PlanError(f"{where}: field {name} is missing")
    milestone = _string(data, "milestone", where)
    title = _string(data, "title", where)
    posture = _string(data, "posture", where)
    if posture not in POSTURES:
        raise PlanError(f"{where}: field posture is {posture!r}; expected one of {', '.join(POSTURES)}")
    baseline = _string(data, "baseline", where)
    if not _REF.match(baseline):
        raise PlanError(f"{where}: field baseline is {baseline!r}; expected a git ref or sha")

    invariants = data.get("invariants", [])
    if not isinstance(invariants, list) or not all(isinstance(i, str) for i in invariants):
        raise PlanError(f'{where}: field invariants is {invariants!r}; expected a list of ids like "INV-001"')
    for inv in invariants:
        if inv != "all" and not _INVARIANT_ID.match(inv):
            raise PlanError(f'{where}: field invariants holds {inv!r}; expected INV-NNN or "all"')

    changes = []
    raw_changes = data.get("changes", [])
    if not isinstance(raw_changes, list):
        raise PlanError(f"{where}: field changes is {raw_changes!r}; expected [[changes]] tables")
    for index, item in enumerate(raw_changes):
        field = f"changes[{index}]"
        if not isinstance(item, dict) or set(item) - {"surface", "reason"}:
            raise PlanError(f"{where}: field {field} is {item!r}; expected surface and reason")
        kind, target = _surface(item.get("surface"), where, f"{field}.surface")
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise PlanError(f"{where}: field {field}.reason is {reason!r}; every declared change says why")
        changes.append(DeclaredChange(kind, target, reason.strip()))
    if changes and posture == "behavior-preserving":
        raise PlanError(
            f"{where}: field changes declares {changes[0].surface!r} but posture is behavior-preserving; "
            "a milestone that changes a surface is behavior-changing"
        )
    golden_changes = [c for c in changes if c.kind == "golden"]
    if golden_changes and posture == "additive":
        raise PlanError(
            f"{where}: field changes declares {golden_changes[0].surface!r} but posture is additive; an additive "
            "milestone adds golden cases and may change snapshots, it never changes an existing case's pixels"
        )
    if posture == "behavior-changing" and not changes:
        raise PlanError(f"{where}: field changes is empty; a behavior-changing milestone declares what it changes")

    criteria = []
    raw_criteria = data.get("exit_criteria", [])
    if not isinstance(raw_criteria, list) or not raw_criteria:
        raise PlanError(f"{where}: field exit_criteria is {raw_criteria!r}; list each criterion with its evidence")
    for index, item in enumerate(raw_criteria):
        field = f"exit_criteria[{index}]"
        if not isinstance(item, dict) or set(item) - {"criterion", "evidence"}:
            raise PlanError(f"{where}: field {field} is {item!r}; expected criterion and evidence")
        criterion = item.get("criterion")
        if not isinstance(criterion, str) or not criterion.strip():
            raise PlanError(f"{where}: field {field}.criterion is {criterion!r}; expected a sentence")
        evidence = item.get("evidence")
        kind, sep, target = str(evidence).partition(":")
        if not isinstance(evidence, str) or not sep or kind not in EVIDENCE_KINDS or not target.strip():
            raise PlanError(
                f"{where}: field {field}.evidence is {evidence!r}; expected one of "
                + ", ".join(f"{k}:…" for k in EVIDENCE_KINDS)
            )
        if kind == "verify" and target.strip() not in VERIFY_PARTS:
            raise PlanError(
                f"{where}: field {field}.evidence is {evidence!r}; verify parts are {', '.join(VERIFY_PARTS)}"
            )
        criteria.append(ExitCriterion(" ".join(criterion.split()), kind, target.strip()))
    return Plan(path, milestone, title, posture, baseline, tuple(invariants), tuple(changes), tuple(criteria), body)


def check_references(
    plan: Plan,
    where: str,
    *,
    milestone: str,
    invariant_ids: Collection[str] | None,
    case_ids: Collection[str] | None,
    snapshot_names: Collection[str] | None,
) -> None:
    """The plan against what exists: its folder's id, known invariants, cases and snapshots (None: not checked)."""
    if plan.milestone != milestone:
        raise PlanError(f"{where}: field milestone is {plan.milestone!r} but the plan belongs to {milestone}")
    if invariant_ids is not None:
        named = [i for i in plan.invariants if i != "all"]
        named += [c.target for c in plan.exit_criteria if c.kind == "invariant"]
        for inv in named:
            if inv not in invariant_ids:
                raise PlanError(f"{where}: field invariants names {inv!r}, which the invariant registry does not hold")
    targets = [("changes", c.kind, c.target) for c in plan.changes]
    targets += [("exit_criteria", c.kind, c.target) for c in plan.exit_criteria if c.kind in SURFACE_KINDS]
    for field, kind, target in targets:
        known = case_ids if kind == "golden" else snapshot_names
        if known is not None and not fnmatch.filter(list(known), target):
            what = "golden case" if kind == "golden" else "snapshot"
            raise PlanError(f"{where}: field {field} names {kind}:{target!r}, which matches no {what}")


def read_plan(path: Path, shown: str | None = None) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{shown or path}: no plan here; `serena-verify milestone new` writes one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{shown or path}: cannot read the plan ({exc})") from None
    return parse_plan(text, path, shown)
