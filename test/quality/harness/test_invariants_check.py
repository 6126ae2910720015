"""`invariants check` judges every invariant by verifiers that ran, and fails when one is missing or violated."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from support import REPO_ROOT

from harness.cli import main
from harness.config import load_config
from harness.invariants.check import InvariantStatus, check_invariants
from harness.outcome import Outcome


def registry(tmp_path: Path, *entries: tuple[str, str, list[str]]) -> Path:
    blocks = []
    for number, (severity, surface, refs) in enumerate(entries, start=1):
        blocks.append(
            f'[[invariant]]\nid = "INV-{number:03}"\ntitle = "t{number}"\nsurface = "{surface}"\nstatement = "s"\n'
            f'severity = "{severity}"\nintroduced_in = "M01"\nverified_by = {json.dumps(refs)}\n'
        )
    path = tmp_path / "registry.toml"
    path.write_text("\n".join(blocks))
    return path


@pytest.fixture
def mini_repo(tmp_path: Path) -> Path:
    """A repository of its own with one test file, so tests can be deleted without touching this one."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'mini'\nversion = '0'\n")
    (repo / "tests" / "test_a.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_kept():
                assert 1 + 1 == 2

            def test_doomed():
                assert True

            @pytest.mark.parametrize("n", [1, 2])
            def test_many(n):
                assert n > 0

            @pytest.mark.skip(reason="not today")
            def test_skipped():
                pass
            """
        )
    )
    return repo


def _status(report, invariant_id: str) -> InvariantStatus:
    return next(o.status for o in report.outcomes if o.invariant.id == invariant_id)


def test_pytest_verifiers_run_and_a_deleted_test_makes_the_invariant_unverified(
    mini_repo: Path, tmp_path: Path
) -> None:
    cfg = load_config(mini_repo, environ={})
    path = registry(
        tmp_path,
        ("blocking", "cli", ["pytest:tests/test_a.py::test_kept", "pytest:tests/test_a.py::test_many"]),
        ("blocking", "cli", ["pytest:tests/test_a.py::test_doomed"]),
        ("blocking", "cli", ["pytest:tests/test_a.py::test_skipped"]),
        ("blocking", "cli", []),
    )
    report = check_invariants(cfg, registry=path)
    assert [o.status for o in report.outcomes] == [
        InvariantStatus.VERIFIED,
        InvariantStatus.VERIFIED,
        InvariantStatus.NOT_RUN,
        InvariantStatus.UNVERIFIED,
    ]
    test_file = mini_repo / "tests" / "test_a.py"
    test_file.write_text(test_file.read_text().replace("def test_doomed", "def test_renamed"))
    after = check_invariants(cfg, registry=path)
    assert _status(after, "INV-002") is InvariantStatus.UNVERIFIED
    assert "collects no such test" in after.outcomes[1].verifiers[0].detail
    assert after.check_result().outcome is Outcome.FAILED


def test_results_are_read_from_this_runs_junit(mini_repo: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="test_kept"/>'
        '<testcase classname="tests.test_a" name="test_many[1]"/>'
        '<testcase classname="tests.test_a" name="test_many[2]"><failure message="boom"/></testcase>'
        "</testsuite></testsuites>"
    )
    path = registry(
        tmp_path,
        ("blocking", "cli", ["pytest:tests/test_a.py::test_kept"]),
        ("blocking", "cli", ["pytest:tests/test_a.py::test_many"]),
        ("advisory", "cli", ["pytest:tests/test_a.py::test_doomed"]),
    )
    report = check_invariants(load_config(mini_repo, environ={}), registry=path, junit=junit)
    assert [o.status for o in report.outcomes] == [
        InvariantStatus.VERIFIED,
        InvariantStatus.VIOLATED,
        InvariantStatus.NOT_RUN,
    ]
    result = report.check_result()
    assert result.outcome is Outcome.FAILED  # INV-002 is blocking
    assert any("INV-002 (blocking) violated" in problem for problem in result.problems)


def test_with_a_junit_pytest_collects_only_the_files_of_verifiers_it_lacks(
    mini_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verifier in this run's JUnit was collected by that run: no second collection for it. One the JUnit lacks is
    collected still, to tell a test that no longer exists (missing) from one that was not run."""
    from harness.invariants import check

    collected_files: list[set[str]] = []
    collect = check.collect_nodes

    def recording(repo: Path, files) -> set[str]:
        collected_files.append(set(files))
        return collect(repo, files)

    monkeypatch.setattr(check, "collect_nodes", recording)
    (mini_repo / "tests" / "test_b.py").write_text("def test_other():\n    assert True\n")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest"><testcase classname="tests.test_a" name="test_kept"/></testsuite>'
        "</testsuites>"
    )
    path = registry(
        tmp_path,
        ("blocking", "cli", ["pytest:tests/test_a.py::test_kept"]),
        ("advisory", "cli", ["pytest:tests/test_b.py::test_other"]),
        ("advisory", "cli", ["pytest:tests/test_b.py::test_gone"]),
    )
    report = check_invariants(load_config(mini_repo, environ={}), registry=path, junit=junit)
    assert collected_files == [{"tests/test_b.py"}]
    assert [o.status for o in report.outcomes] == [
        InvariantStatus.VERIFIED,
        InvariantStatus.NOT_RUN,
        InvariantStatus.UNVERIFIED,
    ]
    assert "collects no such test" in report.outcomes[2].verifiers[0].detail
    assert "not in this run's results" in report.outcomes[1].verifiers[0].detail

    collected_files.clear()
    check_invariants(
        load_config(mini_repo, environ={}),
        registry=registry(tmp_path, ("blocking", "cli", ["pytest:tests/test_a.py::test_kept"])),
        junit=junit,
    )
    assert collected_files == [set()]  # everything in the JUnit: pytest is not started


def test_an_advisory_invariant_does_not_fail_the_check(mini_repo: Path, tmp_path: Path) -> None:
    path = registry(tmp_path, ("blocking", "cli", ["pytest:tests/test_a.py::test_kept"]), ("advisory", "cli", []))
    result = check_invariants(load_config(mini_repo, environ={}), registry=path).check_result()
    assert result.outcome is Outcome.PASSED and "1/2 invariants verified, 1 unverified" in result.summary


def test_a_renamed_golden_case_makes_its_invariant_unverified(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    shutil.copytree(REPO_ROOT / "harness" / "cases", cases)
    toml = cases / "txt2img.toml"
    toml.write_text(toml.read_text().replace('id = "t2i-lcm"', 'id = "t2i-lcm-renamed"'))
    cfg = load_config(REPO_ROOT, {"golden.cases_dir": str(cases)}, environ={})
    path = registry(tmp_path, ("blocking", "image-outputs", ["golden:t2i-lcm"]))
    report = check_invariants(cfg, registry=path, run=False)
    assert report.outcomes[0].status is InvariantStatus.UNVERIFIED
    assert report.outcomes[0].verifiers[0].detail == "no golden case matches"


def test_golden_verdicts_are_read_from_a_report(tmp_path: Path) -> None:
    from harness.golden.compare import CaseVerdict, Verdict
    from harness.golden.document import write_document
    from harness.golden.manifest import Tolerances
    from harness.golden.report import GoldenReport
    from harness.golden.selection import Selection

    report_dir = tmp_path / "golden"
    verdicts = [CaseVerdict("t2i-euler", Verdict.CHANGED, reason="image 0"), CaseVerdict("t2i-heun", Verdict.IDENTICAL)]
    golden_run = GoldenReport(
        environment_key="cpu-fp32",
        golden_dir="harness/goldens/cpu-fp32",
        tolerances=Tolerances(phash_bits=8, mean_abs=1.0),
        verdicts=verdicts,
        unused=[],
        selection=Selection(("t2i-euler", "t2i-heun")),
        recorded_ids=["t2i-euler", "t2i-heun"],
    )
    write_document(golden_run, report_dir)
    path = registry(
        tmp_path,
        ("blocking", "image-outputs", ["golden:t2i-euler"]),
        ("blocking", "image-outputs", ["golden:t2i-heun"]),
        ("blocking", "image-outputs", ["golden:t2i-lms"]),
    )
    report = check_invariants(load_config(REPO_ROOT, environ={}), registry=path, golden_report=report_dir)
    assert [o.status for o in report.outcomes] == [
        InvariantStatus.VIOLATED,
        InvariantStatus.VERIFIED,
        InvariantStatus.NOT_RUN,
    ]


@pytest.fixture
def snapshot_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed snapshots, made the configured folder through its environment variable."""
    folder = tmp_path / "snapshots"
    shutil.copytree(REPO_ROOT / "invariants" / "snapshots", folder)
    monkeypatch.setenv("SERENA_INVARIANTS_SNAPSHOTS_DIR", str(folder))
    return folder


def test_a_changed_cli_help_fails_with_the_diff_shown(
    snapshot_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = snapshot_copy / "cli-help.txt"
    committed.write_text(committed.read_text().replace("Generate images from a prompt", "Make pictures from words"))
    path = registry(tmp_path, ("blocking", "cli", ["snapshot:cli-help"]))
    monkeypatch.chdir(REPO_ROOT)
    assert main(["invariants", "check", "--registry", str(path)]) == 1
    out = capsys.readouterr().out
    assert "INV-001  violated" in out
    assert "-  txt2img   Make pictures from words" in out and "+  txt2img   Generate images from a prompt" in out


def test_a_changed_schema_field_fails_with_the_diff_shown(
    snapshot_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = snapshot_copy / "processed-schema.json"
    schema = json.loads(committed.read_text())
    del schema["properties"]["all_seeds"]
    schema["required"].remove("all_seeds")
    committed.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    monkeypatch.chdir(REPO_ROOT)
    assert main(["invariants", "snapshot", "processed-schema"]) == 1
    out = capsys.readouterr().out
    assert "processed-schema: differs" in out and '+    "all_seeds": {' in out
    assert main(["invariants", "snapshot", "--update", "processed-schema"]) == 0
    assert main(["invariants", "snapshot", "processed-schema"]) == 0
    assert "processed-schema: match" in capsys.readouterr().out


def test_a_missing_snapshot_file_is_unverified(snapshot_copy: Path, tmp_path: Path) -> None:
    (snapshot_copy / "seam-api.txt").unlink()
    path = registry(tmp_path, ("blocking", "runtime-context", ["snapshot:seam-api", "snapshot:no-such"]))
    environ = {"SERENA_INVARIANTS_SNAPSHOTS_DIR": str(snapshot_copy)}
    report = check_invariants(load_config(REPO_ROOT, environ=environ), registry=path)
    assert report.outcomes[0].status is InvariantStatus.UNVERIFIED
    assert [v.detail for v in report.outcomes[0].verifiers][1] == "no such snapshot"
