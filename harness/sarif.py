"""SARIF 2.1.0 rendering of check results, for GitHub code scanning: one run of the tool `serena-verify`.

What goes where:

- Each finding (a problem its gate placed in a file, `CheckResult.findings`) is one result. Its rule id is the
  check's name and the gate's rule, `ruff/E501`, `deps/unpinned`, `ledger/row`; its level is `error` when its check
  failed and counts toward the exit code, else `warning` (or `note`, where the gate says so); its location is the
  path relative to the repository root under the base id `%SRCROOT%` (a file outside the repository keeps its
  absolute `file:` URI). Code scanning shows no result without a line, so a finding that knows only its file is
  placed on line 1 of it.
- A problem no gate could place in a file (a failing test, `pip check`, a golden image) is not a result: a made-up
  location would send a reader to the wrong place. It is kept word for word, with its check, under the
  invocation's properties (`checks[].unlocated`), and counted (`unlocatedProblems`).
- A skipped or inconclusive check is a tool execution notification (it concerns the run, not the code), and a run
  whose outcome is inconclusive has `executionSuccessful` false.

The document is deterministic: no timestamps, nothing of the machine beyond what the results say, rules sorted by
id, results in check order and then in the order each gate found them.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from harness.outcome import CheckResult, Finding, Outcome, combine

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "serena-verify"
SOURCE_ROOT = "%SRCROOT%"

# What each rule id means; a rule not listed here (ruff's own codes) is described from its id and help link.
RULE_DESCRIPTIONS: dict[str, str] = {
    "ruff/unformatted": "A file that `ruff format` would change.",
    "deps/unpinned": "A line of the lock file that is not exactly one `==` pin.",
    "deps/missing": "A dependency pinned in the lock file that is not installed.",
    "deps/mismatched": "A dependency installed at another version than its pin.",
    "deps/extra": "An installed distribution that the lock file does not pin.",
    "audit-deps/vulnerability": "A known vulnerability in a pinned dependency.",
    "audit-deps/not-audited": "A pinned dependency that pip-audit could not audit.",
    "audit-deps/expired-ignore": "An ignore in [tool.serena.audit] past its expiry date; it hides nothing any more.",
    "audit-deps/unused-ignore": "An ignore in [tool.serena.audit] that matched no finding.",
    "coverage/total": "Total coverage under the floor, [tool.coverage.report] fail_under.",
    "coverage/module-floor": "A module under its own coverage floor, or not measured at all.",
    "coverage-diff/changed-lines": "Lines changed since the base that the tests did not run.",
    "ledger/table": "The ledger table's shape: header, separator, cells and milestone ids.",
    "ledger/row": "A ledger row whose cells contradict its status or are malformed.",
    "ledger/artifacts": "A milestone folder or artifact that is missing, or a folder without a ledger row.",
    "ledger/summary": "A closed milestone's summary that is incomplete or contradicts the ledger or the plan.",
    "ledger-base/runtime-change": "A runtime change without a milestone in progress that records it.",
    "ledger-base/golden-change": "Goldens re-recorded or added without a milestone whose posture allows it.",
    "ledger-base/snapshot-change": "A snapshot changed without a milestone that declares it.",
    "invariants/violated": "An invariant whose verifier ran and failed.",
    "invariants/unverified": "An invariant with no verifier, or one that does not exist.",
    "invariants/not-run": "An invariant whose verifiers did not all run.",
}


def render_sarif(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = TOOL_NAME,
    informational: Sequence[str] = (),
) -> str:
    """The whole result set as one SARIF log; `overall` and `informational` come from the caller's own rule."""
    document = sarif_log(results, overall=overall, strict=strict, title=title, informational=informational)
    return json.dumps(document, indent=2) + "\n"


def sarif_log(
    results: Sequence[CheckResult],
    *,
    overall: Outcome | None = None,
    strict: bool = False,
    title: str = TOOL_NAME,
    informational: Sequence[str] = (),
) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dictionary (see the module docstring for what goes where)."""
    overall = overall if overall is not None else combine((r.outcome for r in results), strict=strict)
    located = [(result, finding) for result in results for finding in result.findings]
    rule_ids = sorted({_rule_id(result, finding) for result, finding in located})
    help_uris: dict[str, str] = {}
    for result, finding in located:
        if finding.help_uri:
            help_uris.setdefault(_rule_id(result, finding), finding.help_uri)
    rule_index = {rule_id: index for index, rule_id in enumerate(rule_ids)}

    def counted(result: CheckResult) -> bool:
        return strict or result.check not in informational

    sarif_results = []
    for result, finding in located:
        rule_id = _rule_id(result, finding)
        sarif_results.append(
            {
                "ruleId": rule_id,
                "ruleIndex": rule_index[rule_id],
                "level": _level(result, finding, counted=counted(result), strict=strict),
                "message": {"text": finding.message},
                "locations": [_location(finding)],
            }
        )
    driver: dict[str, Any] = {"name": TOOL_NAME}
    version = _tool_version()
    if version:
        driver["version"] = version
    driver["rules"] = [_rule(rule_id, help_uris.get(rule_id)) for rule_id in rule_ids]
    unlocated = [result.unlocated() for result in results]
    invocation = {
        "executionSuccessful": overall is not Outcome.INCONCLUSIVE,
        "toolExecutionNotifications": [
            _notification(result, counted=counted(result), strict=strict)
            for result in results
            if result.outcome in (Outcome.SKIPPED, Outcome.INCONCLUSIVE)
        ],
        "properties": {
            "title": title,
            "outcome": str(overall),
            "strict": strict,
            "informational": sorted(informational),
            "unlocatedProblems": sum(len(problems) for problems in unlocated),
            "checks": [
                {
                    "check": result.check,
                    "outcome": str(result.outcome),
                    "summary": result.summary,
                    "results": len(result.findings),
                    "unlocated": list(problems),
                }
                for result, problems in zip(results, unlocated, strict=True)
            ],
        },
    }
    run = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": sarif_results,
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def _rule_id(result: CheckResult, finding: Finding) -> str:
    return f"{result.check}/{finding.rule}"


def _level(result: CheckResult, finding: Finding, *, counted: bool, strict: bool) -> str:
    """error for a finding of a check that fails the run; otherwise the finding's own level, or warning."""
    if finding.level is not None:
        return finding.level
    failing = result.outcome is Outcome.FAILED or (strict and result.outcome is Outcome.SKIPPED)
    return "error" if failing and counted else "warning"


def _location(finding: Finding) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": finding.line or 1}
    if finding.column is not None:
        region["startColumn"] = finding.column
    return {"physicalLocation": {"artifactLocation": _artifact(finding.path), "region": region}}


def _artifact(path: str) -> dict[str, str]:
    """A path relative to the repository root under %SRCROOT%; an absolute one as its own file: URI."""
    posix = path.replace("\\", "/")
    if PurePosixPath(posix).is_absolute() or PureWindowsPath(path).is_absolute():
        absolute = PureWindowsPath(path) if PureWindowsPath(path).drive else PurePosixPath(posix)
        return {"uri": absolute.as_uri()}
    return {"uri": quote(posix.removeprefix("./"), safe="/"), "uriBaseId": SOURCE_ROOT}


def _rule(rule_id: str, help_uri: str | None) -> dict[str, Any]:
    check, _, code = rule_id.partition("/")
    described = RULE_DESCRIPTIONS.get(rule_id)
    if described is None:
        described = f"{check} rule {code}" + (f"; see {help_uri}" if help_uri else ".")
    rule: dict[str, Any] = {
        "id": rule_id,
        "name": rule_id.replace("/", "-"),
        "shortDescription": {"text": described},
        "fullDescription": {"text": described},
        "help": {"text": f"{described}\nReported by the `{check}` check of serena-verify."},
    }
    if help_uri:
        rule["helpUri"] = help_uri
    rule["properties"] = {"tags": [TOOL_NAME, check]}
    return rule


def _notification(result: CheckResult, *, counted: bool, strict: bool) -> dict[str, Any]:
    """A check that reached no verdict: an error when that sets the exit code, else a warning or (skipped) a note."""
    if result.outcome is Outcome.INCONCLUSIVE:
        level = "error" if counted else "warning"
    else:
        level = "error" if strict else "note"
    return {
        "level": level,
        "message": {"text": f"{result.check} {result.outcome}: {result.reason}"},
        "properties": {"check": result.check},
    }


def _tool_version() -> str | None:
    try:
        return importlib.metadata.version("serena")
    except importlib.metadata.PackageNotFoundError:
        return None
