"""`golden coverage`: what two golden cases execute of serena/, judged against floors, written and rendered."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from support import REPO_ROOT
from typer.testing import CliRunner

from harness import exit_codes
from harness.config import HarnessConfig, load_config
from harness.errors import ConfigError
from harness.golden import coverage as golden_coverage_module
from harness.golden.coverage import (
    DEFAULT_FLOORS,
    FLOORS_KEY,
    GoldenCoverage,
    branch_label,
    coverage_floors,
    golden_coverage,
    line_ranges,
)
from harness.golden.coverage_command import coverage_command
from harness.golden.selection import Selection
from harness.outcome import Outcome
from harness.render import render

SAMPLE = ("t2i-euler", "i2i-ddim-gradient")
PROCESSING = "serena/processing.py"


def hermetic_config() -> HarnessConfig:
    """The committed cases and settings, without the caller's SERENA_* variables."""
    return load_config(REPO_ROOT, environ={})


@pytest.fixture(scope="module")
def measured() -> GoldenCoverage:
    """One real measurement (a fresh process running two cases), shared: each run costs the runtime's import."""
    return golden_coverage(hermetic_config(), selection=Selection(SAMPLE))


def line_of(path: str, text: str) -> int:
    lines = (REPO_ROOT / path).read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.startswith(text))


def test_a_small_selection_reports_processing_with_a_partial_percent_and_its_missed_lines(
    measured: GoldenCoverage,
) -> None:
    assert measured.reason is None
    assert sorted(measured.verdicts) == sorted(SAMPLE)
    processing = measured.file(PROCESSING)
    assert processing is not None
    assert 0 < processing.percent < 100
    assert processing.missed_lines and processing.branches > 0
    assert set(processing.missed_lines) <= set(processing.statements)
    # module-level lines ran before any case did: counted as executed only because serena was imported under the
    # tracer, in the fresh process
    assert line_of(PROCESSING, "def process_images(") not in processing.missed_lines
    assert line_of(PROCESSING, "class StableDiffusionProcessing") not in processing.missed_lines
    # every file of serena/ is listed, also those no case imports
    assert measured.file("serena/api.py") is not None
    assert measured.file("serena/api.py").percent == 0.0


def test_the_reports_show_the_unexecuted_lines_with_their_source(measured: GoldenCoverage) -> None:
    processing = measured.file(PROCESSING)
    first = processing.missed_lines[0]
    source = (REPO_ROOT / PROCESSING).read_text(encoding="utf-8").splitlines()[first - 1].strip()
    markdown = measured.markdown()
    assert f"| {PROCESSING} | {len(processing.statements)} | {processing.missed_ranges} |" in markdown
    assert "Generation-path lines no golden executes" in markdown
    assert source[:40] in markdown
    terminal = measured.terminal()
    assert f"{PROCESSING}:{first}" in terminal
    assert source[:40] in terminal


def test_a_floor_above_the_measured_percent_fails_with_a_finding_at_a_missed_line(measured: GoldenCoverage) -> None:
    processing = measured.file(PROCESSING)
    result = replace(measured, floors={PROCESSING: min(100.0, processing.percent + 1)}).check_result()
    assert result.outcome is Outcome.FAILED
    assert len(result.problems) == 1 and result.problems[0].startswith(f"{PROCESSING}: ")
    (finding,) = result.findings
    assert finding.path == PROCESSING
    assert finding.line == processing.missed_lines[0]
    assert finding.message == result.problems[0]
    sarif = json.loads(render([result], "sarif"))
    location = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == PROCESSING
    assert location["region"]["startLine"] == processing.missed_lines[0]


def test_a_floor_at_or_below_the_measured_percent_passes(measured: GoldenCoverage) -> None:
    processing = measured.file(PROCESSING)
    for floor in (processing.percent, processing.percent - 5):
        result = replace(measured, floors={PROCESSING: floor}).check_result()
        assert result.outcome is Outcome.PASSED, result.problems
        assert not result.problems and not result.findings
        assert result.figures["floors"][PROCESSING]["met"] is True


def test_a_floor_for_a_file_that_is_not_in_serena_fails(measured: GoldenCoverage) -> None:
    result = replace(measured, floors={"serena/no_such_module.py": 10.0}).check_result()
    assert result.outcome is Outcome.FAILED
    assert "serena/no_such_module.py" in result.problems[0]


@pytest.mark.parametrize(
    ("lines", "statements", "expected"),
    [
        ([12, 13, 14, 15, 40], None, "12-15, 40"),
        ([40, 12, 13, 13, 15, 14], None, "12-15, 40"),
        ([], None, ""),
        ([7], None, "7"),
        ([1, 3], None, "1, 3"),
        # a range runs on across lines that are not statements (a comment at 13), not across a statement that ran
        ([12, 14], [10, 12, 14, 16], "12-14"),
        ([12, 16], [12, 14, 16], "12, 16"),
        ([3, 4, 9, 20], [1, 3, 4, 9, 12, 20], "3-9, 20"),
    ],
)
def test_line_ranges_are_compact_and_correct(lines: list[int], statements: list[int] | None, expected: str) -> None:
    assert line_ranges(lines, statements) == expected


def test_branch_labels_name_the_exit() -> None:
    assert branch_label((12, 15)) == "12→15"
    assert branch_label((60, -58)) == "60→exit"


def test_nothing_selected_is_inconclusive() -> None:
    result = golden_coverage(hermetic_config(), selection=Selection(("no-such-case*",))).check_result()
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "no-such-case*" in result.reason


def with_floors(cfg: HarnessConfig, floors: object) -> HarnessConfig:
    """`cfg` as if pyproject.toml set golden.coverage_floors."""
    return replace(
        cfg,
        values={**cfg.values, FLOORS_KEY: floors},
        sources={**cfg.sources, FLOORS_KEY: str(REPO_ROOT / "pyproject.toml")},
    )


def test_floors_come_from_the_config_key_and_are_checked() -> None:
    cfg = hermetic_config()
    assert coverage_floors(cfg) == DEFAULT_FLOORS  # unset, or left at the key's default
    assert coverage_floors(replace(cfg, values={**cfg.values, FLOORS_KEY: {}})) == DEFAULT_FLOORS
    assert coverage_floors(with_floors(cfg, {"./serena/samplers.py": 50})) == {"serena/samplers.py": 50.0}
    for bad in ({PROCESSING: 120}, {PROCESSING: True}, [PROCESSING]):
        with pytest.raises(ConfigError, match=FLOORS_KEY):
            coverage_floors(with_floors(cfg, bad))


def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads the repository around the working directory; no SERENA_* setting or step summary."""
    for name in list(os.environ):
        if name.startswith("SERENA_") or name == "GITHUB_STEP_SUMMARY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(REPO_ROOT)


def invoke(*args: str):
    """The command on a local typer app, as `golden coverage` would run it: its return value is the exit status."""
    return CliRunner().invoke(_app(), ["coverage", *args], standalone_mode=False)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("coverage")(coverage_command)
    app.command("noop")(lambda: None)  # two commands, so "coverage" is a subcommand as under `golden`
    return app


def test_the_command_writes_the_report_and_exits_by_the_floors(
    measured: GoldenCoverage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    in_repo(monkeypatch)
    under = replace(measured, floors={PROCESSING: 100.0})
    monkeypatch.setattr(golden_coverage_module, "golden_coverage", lambda cfg, selection, progress: under)
    report_dir = tmp_path / "report"
    result = invoke("-k", "t2i-euler", "--format", "markdown", "--report-dir", str(report_dir))
    assert result.return_value == exit_codes.FAILED, result.output
    assert "Generation-path lines no golden executes" in result.output
    document = json.loads((report_dir / "coverage.json").read_text(encoding="utf-8"))
    assert document["result"]["outcome"] == "failed"
    assert document["files"][PROCESSING]["missed_lines"] == measured.file(PROCESSING).missed_ranges
    assert (report_dir / "coverage.md").read_text(encoding="utf-8").startswith("### ")
    terminal = invoke("--report-dir", str(report_dir))
    assert terminal.return_value == exit_codes.FAILED
    assert f"{PROCESSING}:{measured.file(PROCESSING).missed_lines[0]}" in terminal.stdout
    assert "golden-coverage  FAIL" in terminal.stdout


def test_the_command_on_an_empty_selection_exits_inconclusive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    in_repo(monkeypatch)
    output = tmp_path / "result.json"
    result = invoke("-k", "no-such-case", "--json", "-o", str(output), "--report-dir", str(tmp_path / "r"))
    assert result.return_value == exit_codes.INCONCLUSIVE, result.output
    assert json.loads(output.read_text(encoding="utf-8"))["outcome"] == "inconclusive"
    assert json.loads((tmp_path / "r" / "coverage.json").read_text(encoding="utf-8"))["result"]["reason"]
