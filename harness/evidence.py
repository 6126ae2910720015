"""The evidence bundle of `serena-verify run`: summary.md, summary.json, invariants.json and the CI step summary.

Everything is rendered from the run's typed results with the run's own overall outcome; nothing is cut out of text
another renderer made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.output import append_step_summary, write_output
from harness.render import github_annotations, render_json, render_markdown, render_terminal
from harness.run import INFORMATIONAL_CHECKS, RunReport

RUN_TITLE = "serena-verify run"
SUMMARY_MD = "summary.md"
SUMMARY_JSON = "summary.json"
INVARIANTS_JSON = "invariants.json"
GOLDEN_MARKDOWN = Path("golden") / "golden.md"


@dataclass(frozen=True)
class RunSummary:
    """The run rendered once per audience: the bundle's Markdown and JSON, the terminal table, CI annotations."""

    markdown: str
    json: str
    terminal: str
    annotations: str


def summarise(report: RunReport) -> RunSummary:
    overall = report.overall()
    common = {"overall": overall, "strict": report.strict, "title": RUN_TITLE, "informational": INFORMATIONAL_CHECKS}
    terminal = render_terminal(report.results, **common) + f"evidence: {report.evidence_dir}\n"
    return RunSummary(
        markdown=render_markdown(report.results, **common),
        json=render_json(report.results, **common),
        terminal=terminal,
        annotations=github_annotations(report.counted(), strict=report.strict),
    )


def write_bundle(report: RunReport) -> RunSummary:
    """Write summary.md, summary.json and invariants.json into the evidence folder; append the CI step summary."""
    summary = summarise(report)
    folder = report.evidence_dir
    write_output(summary.markdown, folder / SUMMARY_MD)
    write_output(summary.json, folder / SUMMARY_JSON)
    invariants = [r for r in report.results if r.check == "invariants"]
    write_output(render_json(invariants, strict=report.strict), folder / INVARIANTS_JSON)
    golden_markdown = folder / GOLDEN_MARKDOWN
    if golden_markdown.is_file():
        # the golden report's own table, as `serena-verify golden run` shows it in the step summary
        append_step_summary(golden_markdown.read_text(encoding="utf-8"))
    append_step_summary(summary.markdown)
    return summary
