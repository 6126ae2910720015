"""The golden harness sees real behaviour changes (with where they began) and stays green for harmless ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

import serena.processing
from harness.config import HarnessConfig, load_config
from harness.golden.calibrate import calibrate, selftest
from harness.golden.cases import load_cases
from harness.golden.compare import Verdict
from harness.golden.manifest import load_golden_set
from harness.golden.report import GoldenReport
from harness.golden.runner import PROMPT_STAGE
from harness.golden.selection import Selection
from harness.golden.session import run_goldens
from harness.outcome import Outcome
from serena.runtime_utils import AppliedOverrides


@pytest.fixture
def golden_copy(tmp_path: Path) -> HarnessConfig:
    """The shipped cases and cpu-fp32 set, copied so a test may change them."""
    shutil.copytree(REPO_ROOT / "harness" / "cases", tmp_path / "cases")
    shutil.copytree(REPO_ROOT / "harness" / "goldens" / "cpu-fp32", tmp_path / "goldens" / "cpu-fp32")
    return load_config(
        REPO_ROOT,
        {"golden.cases_dir": str(tmp_path / "cases"), "golden.goldens_dir": str(tmp_path / "goldens")},
        environ={},
    )


def _by_id(report: GoldenReport) -> dict[str, Any]:
    return {verdict.case_id: verdict for verdict in report.verdicts}


def _wrap_inner(monkeypatch: pytest.MonkeyPatch, before=None, after=None) -> None:
    original = serena.processing.process_images_inner

    def faulty(p):
        if before:
            before(p)
        processed = original(p)
        if after:
            after(processed)
        return processed

    monkeypatch.setattr(serena.processing, "process_images_inner", faulty)


FEW = Selection(("t2i-euler", "t2i-ddim-batch", "i2i-ddim-gradient"))


def test_the_committed_set_passes_for_the_selected_cases(golden_copy: HarnessConfig) -> None:
    """Bit-identical on the CPU model the set was recorded on; within the set's tolerance on another CPU model,
    whose float kernels differ (the committed set's fingerprint names its CPU)."""
    from harness.golden.set_key import fingerprint

    report = run_goldens(golden_copy, selection=FEW)
    assert report.outcome() is Outcome.PASSED
    recorded_cpu = load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32").recorded_with.get("cpu")
    if fingerprint("cpu", golden_copy["golden.num_threads"])["cpu"] == recorded_cpu:
        assert {v.verdict for v in report.verdicts} == {Verdict.IDENTICAL}
    else:
        assert {v.verdict for v in report.verdicts} <= {Verdict.IDENTICAL, Verdict.EQUIVALENT}


def test_a_seed_offset_is_changed_and_traced_to_the_first_latents(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wrap_inner(monkeypatch, before=lambda p: setattr(p, "seed", p.seed + 1))
    report = run_goldens(golden_copy, selection=FEW)
    assert report.outcome() is Outcome.FAILED
    for verdict in report.verdicts:
        assert verdict.verdict is Verdict.CHANGED
        assert verdict.divergence is not None and verdict.divergence.stage == "latents after step 1"
    assert "changed" in report.check_result().problems[0]


def test_an_off_by_one_in_steps_is_changed(golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    _wrap_inner(monkeypatch, before=lambda p: setattr(p, "steps", p.steps + 1))
    verdict = _by_id(run_goldens(golden_copy, selection=Selection(("t2i-euler",))))["t2i-euler"]
    assert verdict.verdict is Verdict.CHANGED
    assert verdict.divergence is not None and verdict.divergence.stage.startswith("latents after step")


def test_an_override_not_applied_is_changed_at_the_prompt_embeddings(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextmanager
    def ignores_overrides(overrides, **kwargs):
        yield AppliedOverrides()

    monkeypatch.setattr(serena.processing, "temporary_opts", ignores_overrides)
    verdicts = _by_id(run_goldens(golden_copy, selection=Selection(("t2i-unipc-clip-skip", "t2i-ddim-eta"))))
    clip_skip = verdicts["t2i-unipc-clip-skip"]
    assert clip_skip.verdict is Verdict.CHANGED and clip_skip.divergence.stage == PROMPT_STAGE
    eta = verdicts["t2i-ddim-eta"]
    assert eta.verdict is Verdict.CHANGED and eta.divergence.stage.startswith("latents after step")


def test_a_change_after_denoising_is_traced_to_the_vae_decode(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageOps

    def invert(processed) -> None:
        processed.images[:] = [ImageOps.invert(image) for image in processed.images]

    _wrap_inner(monkeypatch, after=invert)
    verdict = _by_id(run_goldens(golden_copy, selection=Selection(("t2i-euler",))))["t2i-euler"]
    assert verdict.verdict is Verdict.CHANGED
    assert verdict.divergence.stage is None and "VAE decode" in verdict.divergence.describe()


def test_a_different_thread_count_stays_green(golden_copy: HarnessConfig) -> None:
    one_thread = load_config(REPO_ROOT, {**golden_copy.values, "golden.num_threads": 1}, environ={})
    report = run_goldens(one_thread, selection=FEW)
    assert report.outcome() is Outcome.PASSED
    assert {v.verdict for v in report.verdicts} <= {Verdict.IDENTICAL, Verdict.EQUIVALENT}


def test_changed_parameters_are_stale_not_changed(golden_copy: HarnessConfig) -> None:
    cases = golden_copy.path("golden.cases_dir") / "txt2img.toml"
    text = cases.read_text()
    start = text.index('id = "t2i-euler"')
    cases.write_text(text[:start] + text[start:].replace("cfg_scale = 7.5", "cfg_scale = 7.0", 1))
    verdict = _by_id(run_goldens(golden_copy, selection=Selection(("t2i-euler",))))["t2i-euler"]
    assert verdict.verdict is Verdict.STALE
    assert "cfg_scale 7.5 → 7.0" in verdict.reason


def _drop_case(cfg: HarnessConfig, case_id: str) -> None:
    path = cfg.path("golden.cases_dir") / "txt2img.toml"
    blocks = path.read_text().split("[[case]]")
    path.write_text("[[case]]".join(block for block in blocks if f'id = "{case_id}"' not in block))


def test_unused_goldens_fail_a_full_run_unless_warned(golden_copy: HarnessConfig) -> None:
    _drop_case(golden_copy, "t2i-lcm")
    selection = Selection(("t2i-l*",))  # selection-aware: t2i-lcm still matches the selection
    report = run_goldens(golden_copy, selection=selection)
    assert report.unused == ["t2i-lcm"] and report.outcome() is Outcome.FAILED
    warned = load_config(REPO_ROOT, {**golden_copy.values, "golden.warn_unused": True}, environ={})
    assert run_goldens(warned, selection=selection).outcome() is Outcome.PASSED
    narrower = run_goldens(golden_copy, selection=Selection(("t2i-euler",)))
    assert narrower.unused == [] and narrower.outcome() is Outcome.PASSED


def test_a_new_case_is_missing_and_update_missing_records_only_it(golden_copy: HarnessConfig) -> None:
    path = golden_copy.path("golden.cases_dir") / "txt2img.toml"
    path.write_text(
        path.read_text() + '\n[[case]]\nid = "t2i-new"\nmode = "txt2img"\nprompt = "a new case"\nseed = 7\nsteps = 6\n'
        'sampler = "Euler"\ncfg_scale = 7.0\n'
    )
    goldens = golden_copy.path("golden.goldens_dir")
    before = load_golden_set(goldens, "cpu-fp32").entries
    selection = Selection(("t2i-new", "t2i-euler"))
    report = run_goldens(golden_copy, selection=selection)
    assert _by_id(report)["t2i-new"].verdict is Verdict.MISSING and report.outcome() is Outcome.FAILED
    updated = run_goldens(golden_copy, selection=selection, update="missing")
    assert updated.updated == ["t2i-new"] and updated.outcome() is Outcome.PASSED
    after = load_golden_set(goldens, "cpu-fp32").entries
    assert set(after) == set(before) | {"t2i-new"}
    assert after["t2i-euler"].to_dict() == before["t2i-euler"].to_dict()
    assert run_goldens(golden_copy, selection=selection).outcome() is Outcome.PASSED
    referenced = (
        {"manifest.json"}
        | {n for e in after.values() for n, _ in e.images}
        | {e.trace_file for e in after.values() if e.trace_file}
    )
    assert {p.name for p in (goldens / "cpu-fp32").iterdir()} == referenced


def test_update_failed_rerecords_a_changed_case(golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    _wrap_inner(monkeypatch, before=lambda p: setattr(p, "seed", p.seed + 1))
    selection = Selection(("t2i-euler",))
    assert run_goldens(golden_copy, selection=selection, update="failed").updated == ["t2i-euler"]
    assert run_goldens(golden_copy, selection=selection).outcome() is Outcome.PASSED


def test_degenerate_output_fails_and_is_never_recorded(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    def flatten(processed) -> None:
        processed.images[:] = [Image.new("RGB", image.size, (128, 128, 128)) for image in processed.images]

    _wrap_inner(monkeypatch, after=flatten)
    manifest = golden_copy.path("golden.goldens_dir") / "cpu-fp32" / "manifest.json"
    before = manifest.read_bytes()
    report = run_goldens(golden_copy, selection=Selection(("t2i-euler",)), update="all")
    verdict = _by_id(report)["t2i-euler"]
    assert verdict.verdict is Verdict.DEGENERATE and "flat image" in verdict.reason
    assert report.outcome() is Outcome.FAILED and report.updated == []
    assert manifest.read_bytes() == before


def test_cuda_cases_are_skipped_with_the_reason_without_a_gpu(golden_copy: HarnessConfig) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    report = run_goldens(golden_copy, selection=FEW, device="cuda")
    result = report.check_result()
    assert result.outcome is Outcome.SKIPPED and "no CUDA device" in result.reason
    assert {v.verdict for v in report.verdicts} == {Verdict.SKIPPED}


def test_calibrate_records_the_noise_floor(golden_copy: HarnessConfig) -> None:
    report = calibrate(golden_copy, patterns=("t2i-euler",))
    assert report.check_result().outcome is Outcome.PASSED
    floor = load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32").noise_floor
    assert floor["cases"] == ["t2i-euler"]
    assert set(floor["per_variant"]) == {"rerun", "threads 1", "threads 2", "latent jitter 1e-4"}
    assert floor["max_phash_distance"] < report.tolerances.phash_bits
    assert floor["per_variant"]["rerun"] == {"max_phash_distance": 0, "max_mean_abs": 0.0}


def test_selftest_detects_every_control() -> None:
    cfg = load_config(REPO_ROOT, environ={})
    report = selftest(cfg)
    result = report.check_result()
    assert result.outcome is Outcome.PASSED, result.problems
    names = {r.variant for r in report.results if r.expect == "changed"}
    assert names == {
        "seed+1",
        "steps+1",
        "CFG -0.5",
        "prompt one character",
        "another sampler",
        "strength +0.1",
        "strength -0.1",
    }


def test_selftest_fails_when_the_tolerance_is_too_loose_to_see_change() -> None:
    blind = load_config(REPO_ROOT, {"golden.phash_bits": 256, "golden.mean_abs": 255.0}, environ={})
    result = selftest(blind, patterns=("t2i-euler",)).check_result()
    assert result.outcome is Outcome.FAILED
    assert any("expected changed" in problem for problem in result.problems)


# -- A/B against a base commit ----------------------------------------------------------------
def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """A throwaway git repository holding this working tree's runtime, harness and cases."""
    repo = tmp_path / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "goldens")
    for name in ("serena", "harness"):
        shutil.copytree(REPO_ROOT / name, repo / name, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", repo / "pyproject.toml")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    return repo


def _commit(repo: Path, message: str) -> None:
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", message)


def test_ab_sees_a_runtime_change_and_passes_a_harmless_one(tiny_repo: Path, tmp_path: Path) -> None:
    from harness.golden.ab import run_ab

    cfg = load_config(tiny_repo, environ={})
    selection = Selection(("t2i-euler", "t2i-ddim-batch"))
    processing = tiny_repo / "serena" / "processing.py"
    processing.write_text(processing.read_text() + "\n# a comment-only refactor\n")
    _commit(repo=tiny_repo, message="harmless")
    harmless = run_ab(cfg, "HEAD~1", selection=selection, work_dir=tmp_path / "ab1")
    assert harmless.outcome() is Outcome.PASSED
    assert {v.verdict for v in harmless.verdicts} == {Verdict.IDENTICAL}

    runner = tiny_repo / "serena" / "processing_runner.py"  # where the seeds are drawn
    text = runner.read_text()
    assert "p.all_seeds = [p.seed + i for i in range(p.total_images)]" in text
    runner.write_text(text.replace("[p.seed + i for i", "[p.seed + i + 1 for i"))
    _commit(repo=tiny_repo, message="seed offset")
    changed = run_ab(cfg, "HEAD~1", selection=selection, work_dir=tmp_path / "ab2")
    assert changed.outcome() is Outcome.FAILED
    for verdict in changed.verdicts:
        assert verdict.verdict is Verdict.CHANGED
        assert verdict.divergence.stage == "latents after step 1"
    worktrees = subprocess.run(["git", "-C", str(tiny_repo), "worktree", "list"], capture_output=True, text=True)
    assert len(worktrees.stdout.strip().splitlines()) == 1  # the base worktree was removed


def test_ab_with_a_missing_base_fails_loudly(tiny_repo: Path) -> None:
    from harness.errors import ConfigError
    from harness.golden.ab import run_ab

    with pytest.raises(ConfigError, match="no such commit"):
        run_ab(load_config(tiny_repo, environ={}), "HEAD~5")


def test_a_published_report_reads_back_the_same(golden_copy: HarnessConfig, tmp_path: Path) -> None:
    from harness.golden.document import read_report
    from harness.golden.publish import write_golden_report
    from harness.golden.render import RENDERERS

    report = run_goldens(golden_copy, selection=Selection(("t2i-ddim-batch",)))
    folder = tmp_path / "report"
    json_path = write_golden_report(report, folder)
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert document["outcome"] == "passed"
    assert document["counts"]["identical"] + document["counts"]["equivalent"] == 1
    [case] = document["cases"]
    assert [image["actual_file"] for image in case["images"]] == [
        "actual/t2i-ddim-batch-0.png",
        "actual/t2i-ddim-batch-1.png",
    ]

    again = read_report(folder)
    assert again.outcome() is report.outcome() and again.check_result() == report.check_result()
    for fmt, render in RENDERERS.items():
        assert render(again) == render(report), fmt


def _fault_on(case_prompt: str, exc: Exception):
    def before(p):
        if p.prompt == case_prompt:
            raise exc

    return before


@pytest.mark.parametrize(
    "fault", [RuntimeError("scheduler state lost"), ValueError("sampler_name: a refactor refused a valid sampler")]
)
def test_a_runtime_fault_in_one_case_is_that_case_errored_and_every_other_case_is_judged(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys, fault: Exception
) -> None:
    """Even a ValueError from the runtime is the runtime's failure here (the case file was checked on load)."""
    from harness import cli

    prompt = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-ddim-batch").prompt
    _wrap_inner(monkeypatch, before=_fault_on(prompt, fault))
    monkeypatch.chdir(REPO_ROOT)
    for key in ("cases_dir", "goldens_dir"):
        monkeypatch.setenv(f"SERENA_GOLDEN_{key.upper()}", str(golden_copy[f"golden.{key}"]))
    report_dir = tmp_path / "report"
    code = cli.main(
        [
            "golden",
            "run",
            "-k",
            "t2i-euler",
            "-k",
            "t2i-ddim-batch",
            "-k",
            "i2i-ddim-gradient",
            "--report-dir",
            str(report_dir),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err + captured.out
    verdicts = {v["case"]: v for v in json.loads((report_dir / "golden.json").read_text())["cases"]}
    assert verdicts["t2i-ddim-batch"]["verdict"] == "errored"
    assert verdicts["t2i-ddim-batch"]["reason"] == f"generation raised {type(fault).__name__}: {fault}"
    assert {verdicts[c]["verdict"] for c in ("t2i-euler", "i2i-ddim-gradient")} <= {"identical", "equivalent"}
    for name in ("golden.html", "golden.md", "golden.junit.xml"):
        assert "t2i-ddim-batch" in (report_dir / name).read_text(encoding="utf-8")
    assert 'type="errored"' in (report_dir / "golden.junit.xml").read_text(encoding="utf-8")


def test_serena_verify_run_with_a_faulty_case_exits_1_with_the_whole_bundle(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    """The golden step is real (every case runs, one raises); the other steps are stand-ins that pass."""
    import harness.gates.audit
    import harness.gates.ci_environment
    import harness.gates.coverage
    import harness.gates.deps
    import harness.invariants.check
    import harness.ledger.check
    import harness.run
    from harness import cli
    from harness.outcome import CheckResult

    def passing(name: str):
        return lambda *args, **kwargs: CheckResult(name, Outcome.PASSED, f"{name} passed")

    for module, attribute, name in (
        (harness.run, "ruff_check", "ruff"),
        (harness.run, "suite_check", "tests"),
        (harness.gates.coverage, "coverage_gate", "coverage"),
        (harness.gates.deps, "deps_gate", "deps"),
        (harness.gates.audit, "audit_gate", "audit-deps"),
        (harness.ledger.check, "ledger_check", "ledger"),
        (harness.gates.ci_environment, "write_environment", "env"),
    ):
        monkeypatch.setattr(module, attribute, passing(name))

    class Invariants:
        def check_result(self) -> CheckResult:
            return CheckResult("invariants", Outcome.PASSED, "invariants passed")

    monkeypatch.setattr(harness.invariants.check, "check_invariants", lambda *args, **kwargs: Invariants())
    prompt = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-euler").prompt
    _wrap_inner(monkeypatch, before=_fault_on(prompt, RuntimeError("the scheduler raised")))
    monkeypatch.chdir(REPO_ROOT)
    for key in ("cases_dir", "goldens_dir"):
        monkeypatch.setenv(f"SERENA_GOLDEN_{key.upper()}", str(golden_copy[f"golden.{key}"]))
    evidence = tmp_path / "evidence"

    assert cli.main(["run", "--evidence-dir", str(evidence)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    summary = json.loads((evidence / "summary.json").read_text())
    golden = next(r for r in summary["results"] if r["check"] == "golden")
    assert golden["outcome"] == "failed"
    assert golden["problems"] == ["t2i-euler: errored — generation raised RuntimeError: the scheduler raised"]
    assert golden["figures"]["counts"]["errored"] == 1
    assert sum(golden["figures"]["counts"].values()) == 18  # every other case was run and judged
    assert (evidence / "summary.md").is_file() and (evidence / "invariants.json").is_file()
    cases = json.loads((evidence / "golden" / "golden.json").read_text())["cases"]
    assert len(cases) == 18
