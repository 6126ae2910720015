"""Renderers for a list of check results: terminal table, JSON, Markdown and JUnit XML; each returns text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal
from xml.etree import ElementTree as ET

from harness.outcome import CheckResult, Outcome, combine

ResultsFormat = Literal["terminal", "json", "markdown", "junit"]
JSON_SCHEMA_VERSION = 1
_MARK = {
    Outcome.PASSED: "PASS",
    Outcome.FAILED: "FAIL",
    Outcome.SKIPPED: "SKIP",
    Outcome.INCONCLUSIVE: "INCONCLUSIVE",
}


def render_terminal(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    width = max([len(r.check) for r in results] + [5])
    lines = [f"{'check'.ljust(width)}  outcome       summary", f"{'-' * width}  ------------  -------"]
    for result in results:
        detail = result.summary + (f" ({result.reason})" if result.reason else "")
        lines.append(f"{result.check.ljust(width)}  {_MARK[result.outcome]:<12}  {detail}")
        lines.extend(f"{' ' * width}    - {problem}" for problem in result.problems)
    overall = combine((r.outcome for r in results), strict=strict)
    lines.append(f"overall: {overall}")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    overall = combine((r.outcome for r in results), strict=strict)
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "outcome": str(overall),
        "strict": strict,
        "results": [r.to_dict() for r in results],
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def render_markdown(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    overall = combine((r.outcome for r in results), strict=strict)
    lines = [f"### serena-verify: {overall}", "", "| check | outcome | summary |", "| --- | --- | --- |"]
    for result in results:
        detail = result.summary + (f" — {result.reason}" if result.reason else "")
        lines.append(f"| {result.check} | {_MARK[result.outcome]} | {detail.replace('|', '∣')} |")
    for result in results:
        if result.problems:
            lines += ["", f"**{result.check}**", ""] + [f"- {problem}" for problem in result.problems]
    return "\n".join(lines) + "\n"


def render_junit(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    suite = ET.Element("testsuite", name="serena-verify", tests=str(len(results)))
    failures = errors = skipped = 0
    for result in results:
        case = ET.SubElement(suite, "testcase", classname="serena-verify", name=result.check)
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
}


def render(results: Sequence[CheckResult], fmt: ResultsFormat, *, strict: bool = False) -> str:
    return RENDERERS[fmt](results, strict=strict)


def github_annotations(results: Sequence[CheckResult], *, strict: bool = False) -> str:
    """`::error` lines for GitHub Actions, one per problem of a failed or inconclusive result (or skipped, strict)."""
    failing = {Outcome.FAILED, Outcome.INCONCLUSIVE} | ({Outcome.SKIPPED} if strict else set())
    lines = []
    for result in results:
        if result.outcome in failing:
            for problem in result.problems or (result.summary,):
                lines.append(f"::error title=serena-verify {result.check}::{problem}")
    return "\n".join(lines) + ("\n" if lines else "")
