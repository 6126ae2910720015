"""MNN_summary.md in the full shape an auditor signs: computed sections from the verify evidence, prose from people.

Computed sections (never typed by hand): Refactor Classification, Work Executed, Invariants & Compatibility,
Validation & Evidence, CI / Automation Impact, Governance Outcomes (what is now provably true), Exit Criteria
Evaluation, Final Verdict and Canonical References. Prose the tool cannot know — Objective, Scope, Issues,
Exceptions & Guardrails, Deferred Work, Authorized Next Step — comes from the plan's sections of the same name, or
stays as a person wrote it in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.ledger.model import EVIDENCE_END, EVIDENCE_START, SUMMARY_SECTIONS_COMPUTED, has_content, sections
from harness.ledger.score import AuditScore

SECTIONS = SUMMARY_SECTIONS_COMPUTED
PROSE = ("Objective", "Scope", "Issues, Exceptions & Guardrails", "Deferred Work", "Authorized Next Step")
REQUIRED_PROSE = ("Objective", "Scope")
COMPUTED_NOTE = "<!-- computed by `serena-verify milestone close`; edits are overwritten -->"
POSTURE_NAMES = {
    "behavior-preserving": "Behavior-Preserving",
    "behavior-changing": "Behavior-Changing",
    "additive": "Additive",
}
VERDICT_NAMES = {"met": "Met", "not met": "Not met", "inconclusive": "Inconclusive"}


@dataclass(frozen=True)
class Closing:
    """What the close knows besides the verify document: the commit, the work since the baseline, references."""

    milestone: str
    title: str
    commit: str
    completed_at: str
    tag: str | None
    ci_runs: tuple[str, ...]
    commits: tuple[str, ...]  # "sha subject", oldest first
    files: tuple[str, ...]  # "M\tpath" lines of git diff --name-status
    evidence_dir: str
    documents: tuple[str, ...]


def _cell(text: Any) -> str:
    return str(text).replace("|", "∣").replace("\n", " ")


def prose(plan_body: str, summary_text: str) -> dict[str, str]:
    """Each prose section: the summary's own words when a person wrote some, else the plan's, else empty."""
    from_plan = sections(plan_body)
    from_summary = sections(summary_text)
    found = {}
    for heading in PROSE:
        own = from_summary.get(heading, "")
        planned = from_plan.get(heading, "")
        found[heading] = own if has_content(own) else planned if has_content(planned) else ""
    return found


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def score_block(
    score: AuditScore, milestone: str, shown_dir: str, when: str, files: tuple[tuple[str, str], ...]
) -> str:
    lines = [
        EVIDENCE_START,
        f"Audit score: **{score.total}/100**, computed by `serena-verify milestone close {milestone}` at {when} from "
        f"`{shown_dir}`: {score.earned:.1f} of {score.available:.1f} available points (rubric: docs/audit-rubric.md).",
        "",
        _table(
            ("Dimension", "Measured", "Points", "Without a verdict"),
            [
                (d.name, d.measured, f"{d.earned:.1f}/{d.available:.1f}", "; ".join(d.inconclusive) or "—")
                for d in score.dimensions
            ],
        ),
    ]
    if files:
        lines += ["", "Evidence files (sha256):", "", *(f"- `{name}` {digest}" for name, digest in files)]
    lines.append(EVIDENCE_END)
    return "\n".join(lines)


def _validation(document: dict[str, Any], run: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    parts = document["parts"]
    rows = [
        ("Golden A/B", "serena-verify golden ab", parts["model-outputs"]["status"], parts["model-outputs"]["summary"]),
        (
            "Surface snapshots",
            "snapshot producers at baseline and head",
            parts["surfaces"]["status"],
            parts["surfaces"]["summary"],
        ),
        ("Invariants", "serena-verify invariants check", parts["invariants"]["status"], parts["invariants"]["summary"]),
        ("Coverage", "pytest-cov, coverage gate", parts["coverage"]["status"], parts["coverage"]["summary"]),
    ]
    tools = {
        "tests": "pytest",
        "ruff": "ruff check, ruff format --check",
        "deps": "serena-verify deps",
        "audit-deps": "pip-audit",
        "ledger": "serena-verify ledger check",
    }
    for check, result in sorted(run.items()):
        if check in ("golden", "invariants", "coverage", "env", "coverage-diff") or check.startswith("milestone"):
            continue
        rows.append(
            (check, tools.get(check, f"serena-verify {check}"), result.get("outcome", "?"), result.get("summary", ""))
        )
    return rows


def _provably_true(document: dict[str, Any]) -> list[str]:
    """Statements the evidence proves, each with its measurement."""
    parts = document["parts"]
    base = document["baseline"]["sha"][:10]
    out = []
    cases = parts["model-outputs"].get("cases", [])
    identical = [c for c in cases if c.get("claim") == "unchanged"]
    declared = [c for c in cases if c.get("claim") == "changed as declared"]
    added = [c for c in cases if c.get("claim") == "added"]
    if identical:
        out.append(
            f"{len(identical)} of {len(cases) - len(added)} golden cases give bit-identical pixels at the head and "
            f"at the baseline {base} on the same machine."
        )
    if declared:
        out.append(
            f"{len(declared)} golden cases changed exactly as declared: {', '.join(c['case'] for c in declared)}."
        )
    if added:
        out.append(
            f"{len(added)} golden cases now protect behaviour no case covered before: "
            + ", ".join(c["case"] for c in added)
            + "."
        )
    surfaces = parts["surfaces"].get("surfaces", [])
    unchanged = [s for s in surfaces if s.get("claim") == "unchanged"]
    if unchanged:
        out.append(
            f"{len(unchanged)} of {len(surfaces)} public surfaces render byte-identically at baseline and head "
            f"({', '.join(s['surface'] for s in unchanged)})."
        )
    changed = [s for s in surfaces if s.get("claim") == "changed as declared"]
    if changed:
        out.append(f"Surfaces changed only as declared: {', '.join(s['surface'] for s in changed)}.")
    statuses = parts["invariants"].get("statuses") or {}
    if statuses:
        verified = sum(1 for s in statuses.values() if s == "verified")
        out.append(f"{verified}/{len(statuses)} invariants are verified at the head {document['head']['sha'][:10]}.")
    met = [r for r in document["exit_criteria"] if r["status"] == "met"]
    out += [f"{r['criterion']} (`{r['evidence']}`)." for r in met]
    return out


def render_summary(
    document: dict[str, Any],
    run: dict[str, dict[str, Any]],
    score: AuditScore,
    closing: Closing,
    prose_sections: dict[str, str],
    score_markdown: str,
) -> str:
    plan = document["plan"]
    parts = document["parts"]
    base = document["baseline"]
    verdict = VERDICT_NAMES[document["verdict"]]
    body: dict[str, str] = {}
    for heading in PROSE:
        body[heading] = prose_sections.get(heading, "").strip() or "None recorded."
    body["Refactor Classification"] = "\n".join(
        [
            f"Change type: **{POSTURE_NAMES[plan['posture']]}**. Baseline: `{base['sha'][:10]}` ({base['ref']}).",
            "",
            "Observability (each row measured by `serena-verify milestone verify` at baseline and head):",
            "",
            _table(
                ("Surface", "Status", "Evidence"),
                [(r["surface"], r["status"], r["evidence"]) for r in document["observability"]],
            ),
        ]
    )
    if plan["changes"]:
        body["Refactor Classification"] += "\n\nDeclared changes:\n\n" + "\n".join(
            f"- `{c['surface']}`: {c['reason']}" for c in plan["changes"]
        )
    files = closing.files
    body["Work Executed"] = "\n".join(
        [
            f"{len(closing.commits)} commit{'' if len(closing.commits) == 1 else 's'} since the baseline "
            f"`{base['sha'][:10]}`, {len(files)} files changed:",
            "",
            *(f"- `{c.split(' ', 1)[0]}` {c.split(' ', 1)[1] if ' ' in c else ''}" for c in closing.commits),
            "",
            "Files (git diff --name-status):",
            "",
            *(f"- {line.split(chr(9))[0]} `{line.split(chr(9))[-1]}`" for line in files[:60]),
            *([f"- … and {len(files) - 60} more"] if len(files) > 60 else []),
        ]
    )
    statuses = parts["invariants"].get("statuses") or {}
    kept = parts["invariants"].get("kept") or []
    body["Invariants & Compatibility"] = "\n".join(
        [
            f"{parts['invariants']['summary']}.",
            "",
            _table(
                ("Invariant", "Kept by the plan", "Status at the head"),
                [
                    (i, "yes" if i in kept else "—", statuses.get(i, "not measured"))
                    for i in sorted(set(statuses) | set(kept))
                ],
            ),
            "",
            f"Compatibility: {parts['surfaces']['summary']}.",
        ]
    )
    body["Validation & Evidence"] = "\n".join(
        [
            _table(("Evidence Type", "Tool", "Result", "Notes"), _validation(document, run)),
            "",
            score_markdown,
        ]
    )
    deps = document["dependencies"]
    ci = document["ci"]
    ci_lines = [
        f"- `{change['path']}` {change['kind']}: " + "; ".join(change.get("details", []))
        for change in ci.get("changes", [])
    ]
    body["CI / Automation Impact"] = "\n".join(
        [
            f"CI: {ci.get('summary', '')}.",
            *(["", *ci_lines] if ci_lines else []),
            "",
            f"Dependencies (requirements.lock, baseline → head): {deps.get('summary', '')}.",
        ]
    )
    issues = [f"- {item}" for item in score.inconclusive]
    if issues:
        body["Issues, Exceptions & Guardrails"] = (
            body["Issues, Exceptions & Guardrails"]
            + "\n\nWithout a verdict at close (left out of the score, never counted as passed):\n\n"
            + "\n".join(issues)
        )
    body["Governance Outcomes"] = "What is now provably true that was not before:\n\n" + "\n".join(
        f"- {line}" for line in _provably_true(document)
    )
    body["Exit Criteria Evaluation"] = _table(
        ("Criterion", "Status", "Evidence"),
        [
            (r["criterion"], VERDICT_NAMES[r["status"]], f"`{r['evidence']}`: {r['detail']}")
            for r in document["exit_criteria"]
        ],
    )
    met = sum(1 for r in document["exit_criteria"] if r["status"] == "met")
    body["Final Verdict"] = (
        f"**{verdict}.** {POSTURE_NAMES[plan['posture']]} milestone verified against `{base['sha'][:10]}`: "
        + "; ".join(f"{name} {part['status']}" for name, part in parts.items())
        + f"; {met}/{len(document['exit_criteria'])} exit criteria met; audit score {score.total}/100."
    )
    refs = [
        f"- Baseline: `{base['sha']}` ({base['ref']})",
        f"- Commit: `{closing.commit}`",
        f"- Tag: `{closing.tag}`" if closing.tag else "- Tag: none",
        "- CI runs: " + (", ".join(closing.ci_runs) if closing.ci_runs else "none recorded (closed outside hosted CI)"),
        f"- Completed at: {closing.completed_at}",
        f"- Evidence: `{closing.evidence_dir}/` (milestone-verify.json, milestone-verify.md, golden-ab/, surfaces/)",
        *(f"- `{doc}`" for doc in closing.documents),
    ]
    body["Canonical References"] = "\n".join(refs)
    lines = [f"# {closing.milestone} summary — {closing.title}", ""]
    for heading in SECTIONS:
        lines += [f"## {heading}", ""]
        if heading not in PROSE:
            lines += [COMPUTED_NOTE, ""]
        lines += [body[heading].strip(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
