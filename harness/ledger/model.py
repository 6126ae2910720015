"""The milestone ledger as data: the docs/serena.md table, its rows, and the Markdown of the milestone artifacts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Literal

from harness.errors import LedgerError
from harness.output import finish_file_set, write_file_set

COLUMNS = (
    "Milestone",
    "Title",
    "Status",
    "Branch",
    "PR",
    "Commit",
    "CI Run(s)",
    "Audit Score",
    "Completed At",
)
STATUSES = ("planned", "in-progress", "closed")
EMPTY = "—"  # a cell with nothing to record (no PR, no hosted CI run, not closed yet)
ARTIFACTS = ("plan", "run1", "run2", "audit", "summary")
# the six sections of a summary closed before milestones declared their claim
SUMMARY_SECTIONS = ("Objective", "Scope", "Invariants", "Validation & Evidence", "Exit Criteria", "Verdict")
# the summary `milestone close` writes now; its Refactor Classification section marks the shape
SUMMARY_SECTIONS_COMPUTED = (
    "Objective",
    "Scope",
    "Refactor Classification",
    "Work Executed",
    "Invariants & Compatibility",
    "Validation & Evidence",
    "CI / Automation Impact",
    "Issues, Exceptions & Guardrails",
    "Deferred Work",
    "Governance Outcomes",
    "Exit Criteria Evaluation",
    "Final Verdict",
    "Authorized Next Step",
    "Canonical References",
)
COMPUTED_SHAPE_MARK = "Refactor Classification"
MILESTONE_ID = re.compile(r"^M\d{2,3}$")
SCORE = re.compile(r"^(\d{1,3})/100$")
RECORDED_SCORE = re.compile(r"Audit score: \*\*(\d{1,3})/100\*\*")
EVIDENCE_START = "<!-- serena-verify:evidence:start -->"
EVIDENCE_END = "<!-- serena-verify:evidence:end -->"

_SEPARATOR_CELL = re.compile(r"^:?-{3,}:?$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_UNTICKED = re.compile(r"^\s*[-*]\s+\[ \]\s*(.*)$", re.MULTILINE)
_NOT_MET = re.compile(r"\bnot\s+met\b|\bpartially\s+met\b|\bunmet\b", re.IGNORECASE)
_MET = re.compile(r"\bmet\b", re.IGNORECASE)

Verdict = Literal["met", "not met", "none"]


@dataclass(frozen=True)
class LedgerRow:
    """One milestone of the ledger, cell by cell, in column order."""

    milestone: str
    title: str
    status: str
    branch: str
    pr: str
    commit: str
    ci_runs: str
    audit_score: str
    completed_at: str

    def render(self) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in astuple(self)) + " |"


@dataclass(frozen=True)
class Ledger:
    """The ledger file: its lines, where the table sits, its rows (with their line numbers) and schema problems."""

    path: Path
    lines: tuple[str, ...]
    table_start: int | None  # index of the header line
    table_end: int  # index just after the last row
    rows: tuple[LedgerRow, ...]
    row_lines: tuple[int, ...]  # 1-based line number of each row
    problems: tuple[str, ...]
    problem_lines: tuple[int | None, ...]  # 1-based line of each problem (None: the file as a whole)

    def row(self, milestone: str) -> LedgerRow | None:
        return next((row for row in self.rows if row.milestone == milestone), None)

    def with_rows(self, rows: list[LedgerRow]) -> str:
        """The file's text with the table's rows replaced by `rows` (header and surrounding prose kept)."""
        if self.table_start is None:
            raise LedgerError(f"{self.path}: no ledger table (a `| Milestone | Title | … |` header) to write rows into")
        head = list(self.lines[: self.table_start + 2])
        tail = list(self.lines[self.table_end :])
        return "\n".join([*head, *(row.render() for row in rows), *tail]).rstrip("\n") + "\n"


def split_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def parse_ledger(text: str, path: Path) -> Ledger:
    """Find the table by its header and read its rows; schema problems are collected, not raised."""
    lines = tuple(text.splitlines())
    problems: list[str] = []
    problem_lines: list[int | None] = []
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("| Milestone")), None)
    if start is None:
        return Ledger(
            path, lines, None, len(lines), (), (), (f"{path}: no table with a `| Milestone |` header",), (None,)
        )
    header = tuple(split_cells(lines[start]))
    if header != COLUMNS:
        problems.append(f"{path}:{start + 1}: table header is {' | '.join(header)}; expected {' | '.join(COLUMNS)}")
        problem_lines.append(start + 1)
    separator = split_cells(lines[start + 1]) if start + 1 < len(lines) else []
    if len(separator) != len(COLUMNS) or not all(_SEPARATOR_CELL.match(cell) for cell in separator):
        problems.append(f"{path}:{start + 2}: expected the table's `| --- | … |` separator line")
        problem_lines.append(min(start + 2, len(lines)))
    rows: list[LedgerRow] = []
    row_lines: list[int] = []
    end = start + 2
    while end < len(lines) and lines[end].strip().startswith("|"):
        cells = split_cells(lines[end])
        if len(cells) != len(COLUMNS):
            problems.append(f"{path}:{end + 1}: row has {len(cells)} cells; expected {len(COLUMNS)}")
            problem_lines.append(end + 1)
        else:
            rows.append(LedgerRow(*cells))
            row_lines.append(end + 1)
        end += 1
    return Ledger(path, lines, start, end, tuple(rows), tuple(row_lines), tuple(problems), tuple(problem_lines))


def read_ledger(path: Path) -> Ledger:
    finish_ledger_write(path)
    try:
        return parse_ledger(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        raise LedgerError(f"{path}: no ledger here; `serena-verify milestone new M01 --title …` creates it") from None
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger ({exc.strerror})") from None


def write_ledger_files(ledger_path: Path, files: Mapping[Path, str]) -> None:
    """Write a ledger edit (milestone documents, then the ledger itself) as one file set kept beside the ledger
    (harness/output.py): a kill leaves every file as it was or every file written."""
    write_file_set(ledger_path.parent, {path: text.encode("utf-8") for path, text in files.items()})


def finish_ledger_write(ledger_path: Path) -> None:
    """Finish a ledger edit that a killed `milestone new` or `close` committed; call before reading the ledger."""
    finish_file_set(ledger_path.parent)


def artifact_path(milestones_dir: Path, milestone: str, artifact: str) -> Path:
    return milestones_dir / milestone / f"{milestone}_{artifact}.md"


def sections(markdown: str) -> dict[str, str]:
    """Level-2 sections of a Markdown document: heading text → body (up to the next level-2 heading)."""
    found: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            if current is not None:
                found[current] = "\n".join(body).strip()
            current, body = line[3:].strip(), []
        elif current is not None:
            body.append(line)
    if current is not None:
        found[current] = "\n".join(body).strip()
    return found


def heading_line(markdown: str, heading: str) -> int | None:
    """The 1-based line of `## heading` in `markdown`, if it has one."""
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.startswith("## ") and line[3:].strip() == heading:
            return number
    return None


def has_content(section_body: str) -> bool:
    """Whether a section says something beyond template comments."""
    return bool(_COMMENT.sub("", section_body).strip())


def unticked_criteria(plan: str) -> list[str]:
    """The `- [ ]` items of the plan's Exit Criteria section (of the whole plan when it has none)."""
    scope = sections(plan).get("Exit Criteria", plan)
    return [item.strip() for item in _UNTICKED.findall(_COMMENT.sub("", scope))]


def verdict_of(section_body: str) -> Verdict:
    text = _COMMENT.sub("", section_body)
    if _NOT_MET.search(text):
        return "not met"
    if _MET.search(text):
        return "met"
    return "none"


def replace_section(markdown: str, heading: str, body: str) -> str:
    """`markdown` with the body of `## heading` replaced by `body` (the section is appended when absent)."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ") and line[3:].strip() == heading), None)
    if start is None:
        return markdown.rstrip("\n") + f"\n\n## {heading}\n\n{body.strip()}\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    replaced = [*lines[: start + 1], "", body.strip(), "", *lines[end:]]
    return "\n".join(replaced).rstrip("\n") + "\n"
