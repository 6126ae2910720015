"""The gates turn red on deliberate faults: coverage under its floors, unpinned or drifted dependencies, an audit
that cannot reach its service, an expired ignore; and stay green on the passing paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest
from support import REPO_ROOT, git

from harness import cli
from harness.config import HarnessConfig, load_config
from harness.gates.audit import AuditRun, audit_gate
from harness.gates.ci_environment import write_environment
from harness.gates.coverage import changed_lines_coverage, coverage_gate
from harness.gates.deps import PipCheck, deps_gate, read_lock
from harness.outcome import Outcome

PYPROJECT = """\
[project]
name = "demo"
version = "0"

[tool.coverage.report]
fail_under = 80

[tool.serena.coverage]
module_floors = {{ "serena/seam.py" = 100.0 }}
{extra}
"""


def make_repo(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(extra=extra), encoding="utf-8")
    return root


def config(root: Path, **flags: object) -> HarnessConfig:
    return load_config(root, flags, environ={})


def write_coverage_xml(path: Path, source: Path, files: dict[str, dict[int, int]], partial: dict | None = None) -> Path:
    """A coverage.py-shaped XML: `files` maps filename (relative to source) → {line: hits}; `partial` maps
    filename → {line: (covered, total)} branch conditions."""
    classes = []
    for filename, hits in files.items():
        lines = []
        for number, count in sorted(hits.items()):
            branch = (partial or {}).get(filename, {}).get(number)
            extra = f' branch="true" condition-coverage="50% ({branch[0]}/{branch[1]})"' if branch else ""
            lines.append(f'<line number="{number}" hits="{count}"{extra}/>')
        classes.append(
            f'<class name="{filename}" filename="{filename}"><methods/><lines>{"".join(lines)}</lines></class>'
        )
    xml = (
        '<?xml version="1.0" ?><coverage version="7"><sources><source>'
        f"{source}</source></sources><packages><package name='.'><classes>{''.join(classes)}</classes>"
        "</package></packages></coverage>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding="utf-8")
    return path


def lines(total: int, covered: int) -> dict[int, int]:
    return {n: (1 if n <= covered else 0) for n in range(1, total + 1)}


# ---------------------------------------------------------------- coverage


def test_coverage_passes_and_prints_the_unrounded_total(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    xml = write_coverage_xml(
        repo / "build/coverage.xml", repo / "serena", {"seam.py": lines(10, 10), "big.py": lines(3, 2)}
    )
    result = coverage_gate(config(repo), xml_path=xml)
    assert result.outcome is Outcome.PASSED
    assert result.figures["total"] == pytest.approx(100 * 12 / 13)
    assert str(100 * 12 / 13) in result.summary  # 92.3076923076923, not 92 or 92.31
    assert result.figures["module_floors"]["serena/seam.py"]["met"] is True


def test_coverage_under_the_floor_fails_even_when_rounding_would_pass(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    xml = write_coverage_xml(repo / "c.xml", repo / "serena", {"seam.py": lines(5, 5), "big.py": lines(995, 791)})
    result = coverage_gate(config(repo), xml_path=xml)  # 796/1000 = 79.6 %: coverage.py at precision 0 says 80
    assert result.outcome is Outcome.FAILED
    assert "total 79.6% is under the floor 80%" in result.problems[0]


def test_a_missed_module_floor_fails_naming_the_module(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    xml = write_coverage_xml(
        repo / "c.xml",
        repo / "serena",
        {"seam.py": lines(4, 4), "big.py": lines(100, 100)},
        partial={"seam.py": {2: (1, 2)}},  # every statement ran, one branch did not
    )
    result = coverage_gate(config(repo), xml_path=xml)
    assert result.outcome is Outcome.FAILED
    assert result.problems == (
        "serena/seam.py: 83.33333333333333% is under its floor 100% (4/4 statements, 1/2 branches)",
    )


def test_a_module_floor_for_an_unmeasured_module_fails(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    xml = write_coverage_xml(repo / "c.xml", repo / "serena", {"big.py": lines(10, 10)})
    result = coverage_gate(config(repo), xml_path=xml)
    assert result.outcome is Outcome.FAILED
    assert "serena/seam.py: has a floor of 100% but is not in c.xml" in result.problems


def test_modules_measured_on_another_machine_still_match_their_floor(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    xml = write_coverage_xml(repo / "c.xml", Path("/home/runner/work/serena/serena"), {"serena/seam.py": lines(3, 3)})
    assert coverage_gate(config(repo), xml_path=xml).outcome is Outcome.PASSED


def test_coverage_cli_missing_xml_is_inconclusive_and_corrupt_xml_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    assert cli.main(["coverage", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["results"][0]["outcome"] == "inconclusive"
    assert "build/coverage.xml does not exist" in document["results"][0]["reason"]

    (repo / "build").mkdir()
    (repo / "build/coverage.xml").write_text("<coverage><class", encoding="utf-8")
    assert cli.main(["coverage"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serena-verify: error: [coverage] ") and "coverage.xml: not valid XML" in err
    assert "\n" not in err


def test_coverage_floor_lives_only_in_fail_under(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    write_coverage_xml(repo / "build/coverage.xml", repo / "serena", {"a.py": lines(1, 1)})
    monkeypatch.chdir(repo)
    assert cli.main(["coverage"]) == 2
    assert "[tool.coverage.report] fail_under is not set" in capsys.readouterr().err


def test_changed_line_coverage_is_reported_against_a_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "serena").mkdir()
    (repo / "serena/seam.py").write_text("a = 1\nb = 2\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    (repo / "serena/seam.py").write_text("a = 1\nb = 2\nc = 3\nd = 4\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "change")
    xml = write_coverage_xml(repo / "c.xml", repo / "serena", {"seam.py": {1: 1, 2: 1, 3: 1, 4: 0}})

    result = changed_lines_coverage(config(repo), "base", xml_path=xml)
    assert result.outcome is Outcome.PASSED
    assert result.figures["changed_measured_lines"] == 2 and result.figures["covered"] == 1
    assert result.figures["percent"] == 50.0
    assert result.problems == ("serena/seam.py: changed lines not run by the tests: 4",)

    missing = changed_lines_coverage(config(repo), "origin/nowhere", xml_path=xml)
    assert missing.outcome is Outcome.SKIPPED
    assert "does not exist here" in (missing.reason or "")


# ---------------------------------------------------------------- deps


def write_lock(tmp_path: Path, text: str) -> Path:
    lock = tmp_path / "requirements.lock"
    lock.write_text(textwrap.dedent(text), encoding="utf-8")
    return lock


def ok_pip_check() -> PipCheck:
    return PipCheck(ran=True, ok=True, output="No broken requirements found.")


def test_deps_passes_with_normalised_names_markers_and_local_versions(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    lock = write_lock(
        tmp_path,
        """\
        # a comment line
        Foo_Bar==1.0
        torch==2.13.0  # the CPU wheel carries +cpu
        winonly==3.0 ; sys_platform == "win32"
        """,
    )
    installed = {"foo-bar": "1.0", "torch": "2.13.0+cpu", "pip": "23.2", "demo": "0"}
    result = deps_gate(
        config(repo), lock_path=lock, installed=installed, pip_check=ok_pip_check, evidence_dir=tmp_path / "ev"
    )
    assert result.outcome is Outcome.PASSED, result.problems
    assert result.figures["pinned"] == 3 and result.figures["applicable"] == 2
    snapshot = (tmp_path / "ev/dependency_snapshot.txt").read_text(encoding="utf-8")
    assert "foo-bar==1.0" in snapshot and "torch==2.13.0+cpu" in snapshot


def test_an_unpinned_lock_line_fails_naming_its_line(tmp_path: Path) -> None:
    lock = write_lock(
        tmp_path,
        """\
        good==1.0
        ranged>=2.0
        compatible~=1.4
        bare
        viaurl @ https://example.com/viaurl-1.0.tar.gz
        star==1.*
        """,
    )
    parsed = read_lock(lock)
    assert [p.split(":")[1] for p in parsed.problems] == ["2", "3", "4", "5", "6"]
    assert "uses >=; pin it with ==" in parsed.problems[0]
    assert "uses ~=" in parsed.problems[1]
    assert "has no version" in parsed.problems[2]
    assert "is a URL requirement" in parsed.problems[3]
    repo = make_repo(tmp_path / "repo")
    result = deps_gate(
        config(repo), lock_path=lock, installed={"good": "1.0"}, pip_check=ok_pip_check, evidence_dir=tmp_path
    )
    assert result.outcome is Outcome.FAILED
    assert sum(p.startswith("unpinned: requirements.lock:") for p in result.problems) == 5


def test_missing_extra_and_mismatched_are_reported_separately(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    lock = write_lock(tmp_path, "alpha==1.0\nbeta==2.0\ntorch==2.13.0+cpu\n")
    installed = {"alpha": "1.1", "torch": "2.13.0", "gamma": "0.1"}
    result = deps_gate(config(repo), lock_path=lock, installed=installed, pip_check=ok_pip_check, evidence_dir=tmp_path)
    assert result.outcome is Outcome.FAILED
    assert result.figures["missing"] == ["beta==2.0 (requirements.lock:2)"]
    assert result.figures["extra"] == ["gamma==0.1"]
    assert result.figures["mismatched"] == [
        "alpha: locked 1.0, installed 1.1",
        "torch: locked 2.13.0+cpu, installed 2.13.0",
    ]
    assert "1 missing, 1 extra, 2 mismatched" in result.summary


def test_a_broken_pip_check_fails_and_one_that_cannot_run_is_inconclusive(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    lock = write_lock(tmp_path, "alpha==1.0\n")
    broken = deps_gate(
        config(repo),
        lock_path=lock,
        installed={"alpha": "1.0"},
        pip_check=lambda: PipCheck(ran=True, ok=False, output="alpha 1.0 requires zeta, which is not installed."),
        evidence_dir=tmp_path,
    )
    assert broken.outcome is Outcome.FAILED
    assert broken.problems == ("pip check: alpha 1.0 requires zeta, which is not installed.",)
    unavailable = deps_gate(
        config(repo),
        lock_path=lock,
        installed={"alpha": "1.0"},
        pip_check=lambda: PipCheck(ran=False, ok=False, output="No module named pip"),
        evidence_dir=tmp_path,
    )
    assert unavailable.outcome is Outcome.INCONCLUSIVE


def test_deps_cli_on_this_repository_matches_the_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real installed environment against the real lock: the gate the CI runs."""
    code = cli.main(["deps", "--evidence-dir", str(tmp_path), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document["results"][0]["problems"]
    assert (tmp_path / "dependency_snapshot.txt").is_file()


# ---------------------------------------------------------------- audit


def report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


VULNERABLE = {
    "name": "alpha",
    "version": "1.0",
    "vulns": [{"id": "PYSEC-2026-1", "aliases": ["GHSA-aaaa-bbbb-cccc"], "fix_versions": ["1.1"]}],
}
CLEAN = {"name": "beta", "version": "2.0", "vulns": []}


def fake_runner(text: str | None, returncode: int = 0, stderr: str = ""):
    calls: list[list[str]] = []

    def run(args):
        calls.append(list(args))
        return AuditRun(returncode=returncode, report_text=text, stderr=stderr)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_audit_findings_are_informational_unless_strict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    runner = fake_runner(report(VULNERABLE, CLEAN), returncode=1)
    result = audit_gate(config(repo), runner=runner, evidence_dir=tmp_path)
    assert result.outcome is Outcome.PASSED
    assert result.problems[0] == "finding: alpha 1.0: PYSEC-2026-1 (GHSA-aaaa-bbbb-cccc); fixed in 1.1"
    assert "--no-deps" in runner.calls[0] and "--disable-pip" in runner.calls[0]
    assert json.loads((tmp_path / "pip_audit.json").read_text(encoding="utf-8"))["dependencies"][0]["name"] == "alpha"
    strict = audit_gate(config(repo), runner=runner, strict=True, evidence_dir=tmp_path)
    assert strict.outcome is Outcome.FAILED


def test_an_audit_that_could_not_audit_anything_is_inconclusive(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    skipped = {"name": "alpha", "skip_reason": "Dependency not found on PyPI and could not be audited: alpha (1.0)"}
    result = audit_gate(config(repo), runner=fake_runner(report(skipped)), evidence_dir=tmp_path)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "could not audit any dependency" in (result.reason or "")


def test_an_unreachable_service_is_inconclusive_and_leaves_no_stale_report(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "pip_audit.json").write_text(report(CLEAN), encoding="utf-8")  # an older run's report
    stderr = "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443)\n"
    result = audit_gate(config(repo), runner=fake_runner(None, returncode=1, stderr=stderr), evidence_dir=tmp_path)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "ConnectionError" in (result.reason or "")
    assert not (tmp_path / "pip_audit.json").exists()
    assert "returncode: 1" in (tmp_path / "pip_audit.log").read_text(encoding="utf-8")


def test_audit_cli_with_an_unreachable_service_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real pip-audit, pointed at a vulnerability service on a closed local port: no network involved."""
    repo = make_repo(tmp_path / "repo")
    lock = write_lock(tmp_path, "requests==2.34.2\n")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("PIP_AUDIT_VULNERABILITY_SERVICE", "osv")
    monkeypatch.setenv("PIP_AUDIT_OSV_URL", "http://127.0.0.1:9/v1/query")
    monkeypatch.chdir(repo)
    code = cli.main(["audit-deps", "--lock", str(lock), "--evidence-dir", str(tmp_path / "ev"), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 3
    assert document["outcome"] == "inconclusive"
    assert "without a report" in document["results"][0]["reason"]
    assert (tmp_path / "ev/pip_audit.log").is_file()


AUDIT_IGNORES = """
[tool.serena.audit]
ignore = [
    {{ id = "GHSA-aaaa-bbbb-cccc", reason = "alpha's affected path is never called", expires = {expires} }},
]
"""


def test_an_active_ignore_hides_a_finding_with_its_reason(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", AUDIT_IGNORES.format(expires="2027-01-31"))
    result = audit_gate(
        config(repo),
        runner=fake_runner(report(VULNERABLE)),
        strict=True,
        today=date(2026, 11, 23),
        evidence_dir=tmp_path,
    )
    assert result.outcome is Outcome.PASSED
    assert result.figures["findings"] == [] and result.figures["ignored"] == 1
    assert any("alpha's affected path is never called (until 2027-01-31)" in p for p in result.problems)


def test_an_expired_ignore_warns_and_no_longer_ignores(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", AUDIT_IGNORES.format(expires="2026-11-01"))
    result = audit_gate(
        config(repo),
        runner=fake_runner(report(VULNERABLE)),
        strict=True,
        today=date(2026, 11, 23),
        evidence_dir=tmp_path,
    )
    assert result.outcome is Outcome.FAILED
    assert result.figures["ignores_expired"] == 1
    assert any(p.startswith("warning: ignore GHSA-aaaa-bbbb-cccc expired on 2026-11-01") for p in result.problems)
    assert any(p.startswith("finding: alpha 1.0: PYSEC-2026-1") for p in result.problems)


def test_an_ignore_without_an_expiry_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", '[tool.serena.audit]\nignore = [{ id = "X-1", reason = "r" }]\n')
    monkeypatch.chdir(repo)
    assert cli.main(["audit-deps"]) == 2
    assert "audit.ignore[0].expires = None; every ignore needs an expiry date" in capsys.readouterr().err


# ---------------------------------------------------------------- env


def test_env_writes_the_record_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom harness.cli import main\n"
        f"rc = main(['env', '--evidence-dir', {str(tmp_path)!r}])\n"
        "print('TORCH', 'torch' in sys.modules, rc)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert "TORCH False 0" in completed.stdout
    record = (tmp_path / "ci_environment.txt").read_text(encoding="utf-8")
    for key in ("python", "pip", "torch", "diffusers", "imagehash", "pillow", "os", "cpu", "threads"):
        assert any(line.startswith(key + " ") for line in record.splitlines()), key
    assert "requirements.lock sha256" in record and "git sha" in record
    assert "device" in record and "no CUDA check" in record


def test_env_result_figures(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "requirements.lock").write_text("alpha==1.0\n", encoding="utf-8")
    result = write_environment(config(repo), evidence_dir=tmp_path / "ev")
    assert result.outcome is Outcome.PASSED
    assert len(result.figures["requirements.lock sha256"]) == 64
    assert result.figures["git sha"].startswith("unavailable")  # not a git repository


def test_the_gates_are_registered_on_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("coverage", "deps", "audit-deps", "env", "ledger", "milestone"):
        assert f"  {command} " in out


@pytest.mark.skipif(os.name != "posix", reason="shell wrappers are bash")
def test_ci_wrappers_are_thin_and_strict() -> None:
    scripts = REPO_ROOT / "scripts" / "ci"
    wrappers = {
        "verify_pinned_deps.sh": "deps",
        "coverage_gate.sh": "coverage",
        "check_ledger.sh": "ledger check",
        "audit_deps.sh": "audit-deps",
        "write_environment.sh": "env",
    }
    for name, command in wrappers.items():
        path = scripts / name
        text = path.read_text(encoding="utf-8")
        assert os.access(path, os.X_OK), name
        assert "set -euo pipefail" in text and f'"$serena_verify" {command} "$@"' in text, name
        subprocess.run(["bash", "-n", str(path)], check=True)
