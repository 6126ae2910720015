"""`serena-verify golden coverage`: parse, measure what the golden cases execute of serena/, write, render, return."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import FormatOpt, JsonOpt, OutputOpt, choose_format, config
from harness.outcome import exit_code
from harness.output import append_step_summary, write_output
from harness.render import RESULTS_FORMATS, render

CaseOpt = Annotated[list[str] | None, typer.Option("--case", "-k", help="Case id or glob (repeatable).")]
ReportDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--report-dir", help="Folder for coverage.json and coverage.md (default: <evidence_dir>/golden-coverage)."
    ),
]


def _progress_to_stderr(case_id: str, position: int, total: int) -> None:
    print(f"golden coverage: [{position}/{total}] {case_id}", file=sys.stderr)


def coverage_command(
    cases: CaseOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    report_dir: ReportDirOpt = None,
) -> int:
    """Run the golden cases under coverage.py (line and branch, source serena/, in a fresh process) and report the
    lines and branches of serena/ that no case executes. Fails when a generation-path file is under its floor
    (golden.coverage_floors); inconclusive when nothing ran."""
    from harness.golden.coverage import golden_coverage, write_coverage_report
    from harness.golden.selection import Selection

    chosen = choose_format(fmt, as_json, RESULTS_FORMATS)
    cfg = config()
    golden = golden_coverage(cfg, selection=Selection(tuple(cases or ())), progress=_progress_to_stderr)
    folder = report_dir or cfg.path("evidence_dir") / "golden-coverage"
    result = write_coverage_report(golden, folder)
    markdown = golden.markdown(evidence=result.evidence)
    append_step_summary(markdown)
    if chosen == "markdown":
        text = markdown
    elif chosen == "terminal":
        tables = golden.terminal()
        text = (tables + "\n" if tables else "") + render([result], "terminal") + f"report: {result.evidence[1]}\n"
    else:
        text = render([result], chosen)  # type: ignore[arg-type]
    write_output(text, output)
    return exit_code(result.outcome)
