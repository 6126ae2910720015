"""Renderers of check results (terminal table, JSON, Markdown, JUnit XML, SARIF), each taking the whole result set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal
from xml.etree import ElementTree as ET

from harness.outcome import CheckResult, Outcome, combine
from harness.sarif import render_sarif

ResultsFormat = Literal["terminal", "json", "markdown", "junit", "sarif"]
RESULTS_FORMATS: tuple[ResultsFormat, ...] = ("terminal", "json", "markdown", "junit", "sarif")
JSON_SCHEMA_VERSION = 1
_MARK = {
    Outcome.PASSED: "PASS",
    Outcome.FAILED: "FAIL",
    Outcome.SKIPPED: "SKIP",
    Outcome.INCONCLUSIVE: "INCONCLUSIVE",
}


def _overall(results: Sequence[CheckResult], overall: Outcome | None, strict: bool) -> Outcome:
    """The caller's overall outcome when it has one (e.g. a run with informational checks), else every result's."""
    return overall if overall is not None else combine((r.outcome for r in results), strict=strict)


def _informational_note(informational: Sequence[str]) -> list[str]:
    if not informational:
        return []
    return [f"{', '.join(sorted(informational))}: informational (they set the exit code only with --strict)"]


def render_terminal(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = "serena-verify",
    informational: Sequence[str] = (),
) -> str:
    width = max([len(r.check) for r in results] + [5])
    lines = [f"{'check'.ljust(width)}  outcome       summary", f"{'-' * width}  ------------  -------"]
    for result in results:
        detail = result.summary + (f" ({result.reason})" if result.reason else "")
        lines.append(f"{result.check.ljust(width)}  {_MARK[result.outcome]:<12}  {detail}")
        lines.extend(f"{' ' * width}    - {problem}" for problem in result.problems)
    lines.append(f"overall: {_overall(results, overall, strict)}")
    lines.extend(_informational_note(informational))
    return "\n".join(lines) + "\n"


def render_json(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = "serena-verify",
    informational: Sequence[str] = (),
) -> str:
    document: dict[str, object] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "outcome": str(_overall(results, overall, strict)),
        "strict": strict,
        "results": [r.to_dict() for r in results],
    }
    if informational:
        document["informational"] = sorted(informational)
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def render_markdown(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = "serena-verify",
    informational: Sequence[str] = (),
) -> str:
    lines = [
        f"### {title}: {_overall(results, overall, strict)}",
        "",
        "| check | outcome | summary |",
        "| --- | --- | --- |",
    ]
    for result in results:
        detail = result.summary + (f" — {result.reason}" if result.reason else "")
        lines.append(f"| {result.check} | {_MARK[result.outcome]} | {detail.replace('|', '∣')} |")
    for result in results:
        if result.problems:
            lines += ["", f"**{result.check}**", ""] + [f"- {problem}" for problem in result.problems]
    if informational:
        lines += ["", *_informational_note(informational)]
    return "\n".join(lines) + "\n"


def render_junit(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = "serena-verify",
    informational: Sequence[str] = (),
) -> str:
    suite = ET.Element("testsuite", name=title, tests=str(len(results)))
    failures = errors = skipped = 0
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=title, name=result.check)
        failing = result.outcome is Outcome.FAILED or (strict and result.outcome is Outcome.SKIPPED)
        if failing:
            failures += 1
            node = ET.SubElement(case, "failure", message=result.summary)
            node.text = "\n".join(result.problems)
        elif result.outcome is Outcome.INCONCLUSIVE:
            errors += 1
            ET.SubElement(case, "error", message=f"inconclusive: {result.reason}")
        elif result.outcome is Outcome.SKIPPED:
            skipped += 1
            ET.SubElement(case, "skipped", message=result.reason or "")
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode") + "\n"


RENDERERS = {
    "terminal": render_terminal,
    "json": render_json,
    "markdown": render_markdown,
    "junit": render_junit,
    "sarif": render_sarif,
}


def render(
    results: Sequence[CheckResult],
    fmt: ResultsFormat,
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = "serena-verify",
    informational: Sequence[str] = (),
) -> str:
    """Render with the format's renderer; `overall` and `informational` come from the caller's own rule."""
    return RENDERERS[fmt](results, overall=overall, strict=strict, title=title, informational=informational)


def github_annotations(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    """`::error` lines for GitHub Actions, one per problem of a failed or inconclusive result (or skipped, strict)."""
    failing = {Outcome.FAILED, Outcome.INCONCLUSIVE} | ({Outcome.SKIPPED} if strict else set())
    lines = []
    for result in results:
        if result.outcome in failing:
            for problem in result.problems or (result.summary,):
                lines.append(f"::error title=serena-verify {result.check}::{problem}")
    return "\n".join(lines) + ("\n" if lines else "")
