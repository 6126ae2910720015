"""`--format sarif`: findings with a file become SARIF 2.1.0 results at their file, line and rule; problems without
one are counted, not invented; a passing run has no results; the same results give the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import git

import harness.run
from harness import cli
from harness.config import HarnessConfig, load_config
from harness.gates.audit import AuditRun, audit_gate
from harness.gates.coverage import coverage_gate
from harness.gates.deps import PipCheck, deps_gate
from harness.invariants.check import InvariantOutcome, InvariantsReport, InvariantStatus, VerifierOutcome, locate_places
from harness.invariants.check import VerifierStatus as VS
from harness.invariants.registry import Invariant, VerifierRef
from harness.ledger.check import ledger_check
from harness.ledger.scaffold import milestone_new
from harness.outcome import CheckResult, Finding, Outcome
from harness.render import RESULTS_FORMATS, render
from harness.run import RunReport, ruff_check
from harness.sarif import render_sarif


# -- a hand-written subset of the SARIF 2.1.0 schema: required keys, types, and (the schema's additionalProperties:
# false) the keys each object may have; the property bags are open.
def _keys(names: str) -> frozenset[str]:
    return frozenset(names.split())


ALLOWED = {
    "log": _keys("$schema version runs inlineExternalProperties properties"),
    "run": _keys(
        "tool invocations conversion language versionControlProvenance originalUriBaseIds artifacts logicalLocations "
        "graphs results automationDetails runAggregates baselineGuid redactionTokens defaultEncoding "
        "defaultSourceLanguage newlineSequences columnKind externalPropertyFileReferences threadFlowLocations "
        "taxonomies addresses translations policies webRequests webResponses specialLocations properties"
    ),
    "tool": _keys("driver extensions properties"),
    "driver": _keys(
        "guid name organization product productSuite shortDescription fullDescription fullName version "
        "semanticVersion dottedQuadFileVersion releaseDateUtc downloadUri informationUri globalMessageStrings "
        "notifications rules taxa locations language contents isComprehensive localizedDataSemanticVersion "
        "minimumRequiredLocalizedDataSemanticVersion associatedComponent translationMetadata supportedTaxonomies "
        "properties"
    ),
    "rule": _keys(
        "id deprecatedIds guid deprecatedGuids name deprecatedNames shortDescription fullDescription messageStrings "
        "defaultConfiguration helpUri help relationships properties"
    ),
    "result": _keys(
        "ruleId ruleIndex rule kind level message analysisTarget locations guid correlationGuid occurrenceCount "
        "partialFingerprints fingerprints stacks codeFlows graphs graphTraversals relatedLocations suppressions "
        "baselineState rank attachments hostedViewerUri workItemUris provenance fixes taxa webRequest webResponse "
        "properties"
    ),
    "location": _keys("id physicalLocation logicalLocations message annotations relationships properties"),
    "physicalLocation": _keys("address artifactLocation region contextRegion properties"),
    "artifactLocation": _keys("uri uriBaseId index description properties"),
    "region": _keys(
        "startLine startColumn endLine endColumn charOffset charLength byteOffset byteLength snippet message "
        "sourceLanguage properties"
    ),
    "invocation": _keys(
        "commandLine arguments responseFiles startTimeUtc endTimeUtc exitCode ruleConfigurationOverrides "
        "notificationConfigurationOverrides toolExecutionNotifications toolConfigurationNotifications "
        "exitCodeDescription exitSignalName exitSignalNumber processStartFailureMessage executionSuccessful machine "
        "account processId executableLocation workingDirectory environmentVariables stdin stdout stderr "
        "stdoutStderr properties"
    ),
    "notification": _keys("locations message level threadId timeUtc exception descriptor associatedRule properties"),
    "message": _keys("text markdown id arguments properties"),
    "multiformat": _keys("text markdown properties"),
}
LEVELS = {"none", "note", "warning", "error"}


def _object(value: Any, kind: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    assert isinstance(value, dict), f"{kind}: not an object: {value!r}"
    assert set(value) <= ALLOWED[kind], f"{kind}: keys the schema does not allow: {set(value) - ALLOWED[kind]}"
    for key in required:
        assert key in value, f"{kind}: missing required {key!r}"
    if "properties" in value:
        bag = value["properties"]
        assert isinstance(bag, dict)
        tags = bag.get("tags", [])
        assert isinstance(tags, list) and all(isinstance(t, str) for t in tags) and len(set(tags)) == len(tags)
    return value


def _text(value: Any, kind: str = "message") -> str:
    _object(value, kind, ("text",))
    assert isinstance(value["text"], str) and value["text"], f"{kind}: empty text"
    return value["text"]


def assert_valid_sarif(document: dict[str, Any]) -> dict[str, Any]:
    """Structural validation against what SARIF 2.1.0 requires and GitHub code scanning reads; returns the run."""
    _object(document, "log", ("version", "runs"))
    assert document["version"] == "2.1.0"
    assert isinstance(document["$schema"], str) and document["$schema"].startswith("https://")
    assert isinstance(document["runs"], list) and len(document["runs"]) == 1, "one run, for the one tool"
    run = _object(document["runs"][0], "run", ("tool", "results"))
    _object(run["tool"], "tool", ("driver",))
    driver = _object(run["tool"]["driver"], "driver", ("name",))
    assert driver["name"] == "serena-verify"
    rules = driver.get("rules", [])
    ids = []
    for rule in rules:
        _object(rule, "rule", ("id",))
        for key in ("shortDescription", "fullDescription", "help"):
            _text(rule[key], "multiformat")
        ids.append(rule["id"])
    assert len(ids) == len(set(ids)) and ids == sorted(ids), "rule ids unique and sorted"
    assert run.get("columnKind") in (None, "utf16CodeUnits", "unicodeCodePoints")
    for result in run["results"]:
        _object(result, "result", ("message", "locations"))
        assert result["ruleId"] in ids and ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in LEVELS
        _text(result["message"])
        assert isinstance(result["locations"], list) and len(result["locations"]) == 1
        location = _object(result["locations"][0], "location", ("physicalLocation",))
        physical = _object(location["physicalLocation"], "physicalLocation", ("artifactLocation", "region"))
        artifact = _object(physical["artifactLocation"], "artifactLocation", ("uri",))
        uri = artifact["uri"]
        if artifact.get("uriBaseId") is not None:
            assert artifact["uriBaseId"] == "%SRCROOT%"
            assert not uri.startswith("/") and "://" not in uri and not uri.startswith("./"), uri
        else:
            assert uri.startswith("file:///"), uri
        region = _object(physical["region"], "region", ("startLine",))
        assert isinstance(region["startLine"], int) and region["startLine"] >= 1
        if "startColumn" in region:
            assert isinstance(region["startColumn"], int) and region["startColumn"] >= 1
    invocations = run["invocations"]
    assert isinstance(invocations, list) and len(invocations) == 1
    invocation = _object(invocations[0], "invocation", ("executionSuccessful",))
    assert isinstance(invocation["executionSuccessful"], bool)
    for notification in invocation.get("toolExecutionNotifications", []):
        _object(notification, "notification", ("message",))
        _text(notification["message"])
        assert notification.get("level", "warning") in LEVELS
    return run


def sarif(results: list[CheckResult], **options: Any) -> dict[str, Any]:
    document = json.loads(render_sarif(results, **options))
    assert_valid_sarif(document)
    return document["runs"][0]


def located(run: dict[str, Any]) -> list[tuple[str, str, str, int, int | None]]:
    """(rule, level, uri, line, column) of every result."""
    rows = []
    for result in run["results"]:
        physical = result["locations"][0]["physicalLocation"]
        region = physical["region"]
        rows.append(
            (
                result["ruleId"],
                result["level"],
                physical["artifactLocation"]["uri"],
                region["startLine"],
                region.get("startColumn"),
            )
        )
    return rows


def config(root: Path, **flags: object) -> HarnessConfig:
    return load_config(root, flags, environ={})


# -- the format is offered wherever check results are rendered ---------------------------------------------------
def test_sarif_is_one_of_the_results_formats() -> None:
    assert "sarif" in RESULTS_FORMATS
    results = [CheckResult("deps", Outcome.PASSED, "ok")]
    assert render(results, "sarif") == render_sarif(results)


# -- ruff ---------------------------------------------------------------------------------------------------------
def test_a_ruff_finding_appears_with_its_file_line_column_and_rule(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/bad.py").write_text('"""Doc."""\n\nimport os\n')
    evidence = tmp_path / "evidence"
    evidence.mkdir()

    checked = ruff_check(config(tmp_path), evidence)
    run = sarif([checked])

    assert checked.outcome is Outcome.FAILED
    assert ("ruff/F401", "error", "pkg/bad.py", 3, 8) in located(run)
    result = next(r for r in run["results"] if r["ruleId"] == "ruff/F401")
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    assert "`os` imported but unused" in result["message"]["text"]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "ruff/F401")
    assert rule["helpUri"].startswith("https://")
    # every ruff problem has its file: nothing is left unlocated, and the terminal still lists them
    assert run["invocations"][0]["properties"]["unlocatedProblems"] == 0
    assert any("F401" in problem for problem in checked.problems)


def test_a_file_ruff_format_would_change_is_a_result_on_that_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (tmp_path / "ugly.py").write_text("x=1\n")
    evidence = tmp_path / "evidence"
    evidence.mkdir()

    run = sarif([ruff_check(config(tmp_path), evidence)])

    assert [(rule, uri) for rule, _, uri, _, _ in located(run)] == [("ruff/unformatted", "ugly.py")]


# -- ledger -------------------------------------------------------------------------------------------------------
@pytest.fixture
def ledger_repo(tmp_path: Path) -> Path:
    """A repository with a ledger whose second row has no milestone folder."""
    root = tmp_path / "repo"
    (root / "serena").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    (root / "serena/core.py").write_text("VALUE = 1\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    milestone_new(config(root), "M01", "The runtime")
    ledger = root / "docs/serena.md"
    ledger.write_text(
        ledger.read_text(encoding="utf-8") + "| M02 | Hand-added | planned | main | — | — | — | — | — |\n",
        encoding="utf-8",
    )
    return root


def test_a_ledger_problem_appears_at_its_row_of_the_ledger(ledger_repo: Path) -> None:
    checked = ledger_check(config(ledger_repo))
    row_line = (
        ledger_repo.joinpath("docs/serena.md")
        .read_text(encoding="utf-8")
        .splitlines()
        .index("| M02 | Hand-added | planned | main | — | — | — | — | — |")
        + 1
    )

    run = sarif([checked])

    assert located(run) == [("ledger/artifacts", "error", "docs/serena.md", row_line, None)]
    assert run["results"][0]["message"]["text"] == "M02: no milestone folder docs/milestones/M02/"


def test_ledger_check_format_sarif_from_the_command_line(
    ledger_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ledger_repo)
    code = cli.main(["ledger", "check", "--format", "sarif"])
    document = json.loads(capsys.readouterr().out)

    assert code == 1
    run = assert_valid_sarif(document)
    assert [(rule, uri) for rule, _, uri, _, _ in located(run)] == [("ledger/artifacts", "docs/serena.md")]
    assert run["invocations"][0]["properties"]["outcome"] == "failed"

    out = ledger_repo / "ledger.sarif"
    assert cli.main(["ledger", "check", "--format", "sarif", "-o", str(out)]) == 1
    assert json.loads(out.read_text(encoding="utf-8")) == document


# -- deps, coverage, invariants -------------------------------------------------------------------------------------
def test_deps_problems_point_at_their_line_of_the_lock_and_pip_check_has_none(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    (repo / "requirements.lock").write_text("# pins\nalpha==1.0\nbeta>=2\ngamma==3.0\n", encoding="utf-8")
    checked = deps_gate(
        config(repo),
        installed={"alpha": "1.1", "extra-one": "0.1"},
        pip_check=lambda: PipCheck(ran=True, ok=False, output="alpha 1.1 requires zeta, which is not installed."),
        evidence_dir=tmp_path / "evidence",
    )

    run = sarif([checked])

    assert located(run) == [
        ("deps/unpinned", "error", "requirements.lock", 3, None),
        ("deps/missing", "error", "requirements.lock", 4, None),
        ("deps/mismatched", "error", "requirements.lock", 2, None),
        ("deps/extra", "error", "requirements.lock", 1, None),  # the lock as a whole
    ]
    properties = run["invocations"][0]["properties"]
    assert properties["unlocatedProblems"] == 1
    assert properties["checks"][0]["unlocated"] == ["pip check: alpha 1.1 requires zeta, which is not installed."]


def test_a_module_under_its_floor_points_at_its_first_missed_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "serena").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(
        "[project]\nname = 'demo'\n\n[tool.coverage.report]\nfail_under = 80\n\n"
        '[tool.serena.coverage]\nmodule_floors = { "serena/seam.py" = 100.0, "serena/gone.py" = 50.0 }\n',
        encoding="utf-8",
    )
    lines = "".join(f'<line number="{n}" hits="{0 if n == 4 else 1}"/>' for n in range(1, 11))
    (repo / "coverage.xml").write_text(
        f"<coverage><sources><source>{repo}</source></sources><packages><package><classes>"
        f'<class name="seam.py" filename="serena/seam.py"><lines>{lines}</lines></class>'
        "</classes></package></packages></coverage>",
        encoding="utf-8",
    )

    run = sarif([coverage_gate(config(repo), xml_path=repo / "coverage.xml")])

    assert located(run) == [
        ("coverage/module-floor", "error", "pyproject.toml", 8, None),  # serena/gone.py: its floor's line
        ("coverage/module-floor", "error", "serena/seam.py", 4, None),
    ]


def test_an_invariant_points_at_its_registry_entry_and_a_differing_snapshot_at_its_file(tmp_path: Path) -> None:
    registry = tmp_path / "invariants/registry.toml"
    registry.parent.mkdir()
    registry.write_text('[[invariant]]\nid = "INV-001"\n\n[[invariant]]\nid = "INV-002"\n', encoding="utf-8")

    def invariant(inv_id: str, severity: str, ref: VerifierRef) -> Invariant:
        return Invariant(inv_id, "t", "cli", "s", severity, "M01", (ref,))  # type: ignore[arg-type]

    test_ref = VerifierRef("pytest", "test/x.py::test_y")
    snapshot_ref = VerifierRef("snapshot", "cli-help")
    report = InvariantsReport(
        [
            InvariantOutcome(
                invariant("INV-001", "advisory", test_ref),
                InvariantStatus.NOT_RUN,
                [VerifierOutcome(test_ref, VS.NOT_RUN, "skipped")],
            ),
            InvariantOutcome(
                invariant("INV-002", "blocking", snapshot_ref),
                InvariantStatus.VIOLATED,
                [VerifierOutcome(snapshot_ref, VS.FAILED, "differs:\n-a\n+b")],
            ),
        ],
        locate_places(registry, tmp_path / "invariants/snapshots", tmp_path),
    )

    run = sarif([report.check_result()])

    rows = located(run)
    assert rows[0] == ("invariants/not-run", "warning", "invariants/registry.toml", 2, None)  # advisory: a warning
    rule, level, uri, _, _ = rows[1]
    assert (rule, level) == ("invariants/violated", "error") and uri.startswith("invariants/snapshots/")


def test_a_vulnerability_points_at_its_pin_and_an_expired_ignore_at_its_line_of_pyproject(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text(
        "[project]\nname = 'demo'\n\n[tool.serena.audit]\nignore = [\n"
        '  { id = "PYSEC-OLD", reason = "gone", expires = 2020-01-01 },\n]\n',
        encoding="utf-8",
    )
    (repo / "requirements.lock").write_text("beta==2.0\nalpha==1.0\n", encoding="utf-8")
    vulnerable = {"name": "alpha", "version": "1.0", "vulns": [{"id": "PYSEC-1", "aliases": [], "fix_versions": []}]}
    report = json.dumps({"dependencies": [vulnerable, {"name": "beta", "version": "2.0", "vulns": []}]})

    checked = audit_gate(
        load_config(repo, environ={}),
        runner=lambda args: AuditRun(returncode=1, report_text=report, stderr=""),
        evidence_dir=tmp_path / "evidence",
    )
    run = sarif([checked], informational=["audit-deps"])

    assert located(run) == [
        ("audit-deps/vulnerability", "warning", "requirements.lock", 2, None),
        ("audit-deps/expired-ignore", "warning", "pyproject.toml", 6, None),
    ]


# -- levels, what has no file, and the empty case ------------------------------------------------------------------
def test_levels_follow_the_check_and_what_has_no_file_is_counted_not_placed() -> None:
    failing = CheckResult(
        "coverage",
        Outcome.FAILED,
        "under",
        problems=("serena/a.py: under its floor", "a problem with no file"),
        findings=(Finding("module-floor", "serena/a.py: under its floor", "serena/a.py", 3),),
    )
    passing = CheckResult(
        "coverage-diff",
        Outcome.PASSED,
        "a figure",
        problems=("serena/b.py: changed lines not run",),
        findings=(Finding("changed-lines", "serena/b.py: changed lines not run", "serena/b.py", 7, level="note"),),
    )
    advisory = CheckResult(
        "audit-deps",
        Outcome.PASSED,
        "informational",
        problems=("finding: alpha 1.0: PYSEC-1",),
        findings=(Finding("vulnerability", "finding: alpha 1.0: PYSEC-1", "requirements.lock", 2),),
    )
    tests = CheckResult("tests", Outcome.FAILED, "2 failed", problems=("test_a failed", "test_b failed"))
    skipped = CheckResult("golden", Outcome.SKIPPED, "not run", reason="no CUDA device")

    run = sarif([failing, passing, advisory, tests, skipped])

    assert [(rule, level) for rule, level, *_ in located(run)] == [
        ("coverage/module-floor", "error"),
        ("coverage-diff/changed-lines", "note"),
        ("audit-deps/vulnerability", "warning"),
    ]
    invocation = run["invocations"][0]
    assert invocation["properties"]["unlocatedProblems"] == 3
    unlocated = {check["check"]: check["unlocated"] for check in invocation["properties"]["checks"]}
    assert unlocated == {
        "coverage": ["a problem with no file"],
        "coverage-diff": [],
        "audit-deps": [],
        "tests": ["test_a failed", "test_b failed"],
        "golden": [],
    }
    assert invocation["toolExecutionNotifications"] == [
        {"level": "note", "message": {"text": "golden skipped: no CUDA device"}, "properties": {"check": "golden"}}
    ]
    assert invocation["executionSuccessful"] is True
    assert invocation["properties"]["outcome"] == "failed"


def test_an_informational_check_warns_unless_strict_and_inconclusive_is_an_unsuccessful_run() -> None:
    audit = CheckResult(
        "audit-deps",
        Outcome.FAILED,
        "a finding",
        problems=("finding: x",),
        findings=(Finding("vulnerability", "finding: x", "requirements.lock", 1),),
    )
    assert located(sarif([audit], informational=["audit-deps"], overall=Outcome.PASSED))[0][1] == "warning"
    assert located(sarif([audit], informational=["audit-deps"], strict=True))[0][1] == "error"

    unreachable = CheckResult("audit-deps", Outcome.INCONCLUSIVE, "no verdict", reason="service unreachable")
    invocation = sarif([unreachable])["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["level"] == "error"


def test_a_passing_run_gives_an_empty_results_list() -> None:
    run = sarif([CheckResult("ruff", Outcome.PASSED, "clean"), CheckResult("ledger", Outcome.PASSED, "2 milestones")])

    assert run["results"] == []
    assert run["tool"]["driver"]["rules"] == []
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["invocations"][0]["toolExecutionNotifications"] == []
    assert run["invocations"][0]["properties"]["unlocatedProblems"] == 0


def test_a_file_outside_the_repository_keeps_its_absolute_file_uri(tmp_path: Path) -> None:
    outside = (tmp_path / "elsewhere dir/requirements.lock").as_posix()
    result = CheckResult(
        "deps", Outcome.FAILED, "1 unpinned", problems=("p",), findings=(Finding("unpinned", "p", outside, 2),)
    )

    artifact = sarif([result])["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]

    assert artifact == {"uri": Path(outside).as_uri()}
    assert "%20" in artifact["uri"]


def test_the_same_results_give_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (tmp_path / "b.py").write_text("import sys\nimport os\n")
    (tmp_path / "a.py").write_text("x=1\n")
    evidence = tmp_path / "evidence"
    evidence.mkdir()

    first = render_sarif([ruff_check(config(tmp_path), evidence)], strict=True, title="serena-verify run")
    second = render_sarif([ruff_check(config(tmp_path), evidence)], strict=True, title="serena-verify run")

    assert first == second
    assert str(tmp_path) not in first  # nothing of where the repository happens to be
    run = json.loads(first)["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["ruff/F401", "ruff/I001", "ruff/unformatted"]


def test_a_finding_must_name_a_rule_a_file_and_a_1_based_line() -> None:
    with pytest.raises(ValueError, match="rule and a path"):
        Finding("", "text", "a.py")
    with pytest.raises(ValueError, match="1-based"):
        Finding("r", "text", "a.py", 0)
    with pytest.raises(ValueError, match="needs a line"):
        Finding("r", "text", "a.py", None, 3)


def test_run_format_sarif_writes_the_run_as_sarif_and_still_writes_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = [
        CheckResult(
            "ruff",
            Outcome.FAILED,
            "found problems",
            problems=("a.py:1:8: F401 `os` imported but unused",),
            findings=(Finding("F401", "a.py:1:8: F401 `os` imported but unused", "a.py", 1, 8),),
        ),
        CheckResult("audit-deps", Outcome.INCONCLUSIVE, "no verdict", reason="service unreachable"),
    ]

    def fake_run_all(cfg, *, evidence, strict, base, tests_from, progress):
        evidence.mkdir(parents=True, exist_ok=True)
        return RunReport(results, evidence, strict)

    monkeypatch.setattr(harness.run, "run_all", fake_run_all)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    evidence, out = tmp_path / "evidence", tmp_path / "run.sarif"

    code = cli.main(["run", "--evidence-dir", str(evidence), "--format", "sarif", "-o", str(out)])

    assert code == 1
    run = assert_valid_sarif(json.loads(out.read_text(encoding="utf-8")))
    assert located(run) == [("ruff/F401", "error", "a.py", 1, 8)]
    invocation = run["invocations"][0]
    assert invocation["properties"]["title"] == "serena-verify run"
    assert invocation["properties"]["informational"] == ["audit-deps", "env"]
    # audit-deps is informational: its missing verdict is reported, but it neither fails the run nor its execution
    assert invocation["executionSuccessful"] is True
    assert invocation["toolExecutionNotifications"][0]["level"] == "warning"
    assert (evidence / "summary.json").is_file()
