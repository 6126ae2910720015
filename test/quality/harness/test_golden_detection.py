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

import serena.models
import serena.processing
from harness.config import HarnessConfig, load_config
from harness.golden.calibrate import SELFTEST_CASES, calibrate, derived_ssim_tolerance, selftest
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
IMAGE_CONTROLS = ("blur 0.5 px", "contrast x0.95", "saturation x0.9")


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


def test_cases_run_grouped_by_model_and_are_reported_in_id_order(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In id order these cases switch models three times; grouped, each of the three models loads once."""
    loaded: list[str] = []
    original = serena.models.load_model

    def counting(info, *args, **kwargs):
        loaded.append(info.name)
        return original(info, *args, **kwargs)

    monkeypatch.setattr(serena.models, "load_model", counting)
    serena.models.model_cache.clear()
    ids = ("eps-plms", "i2i-euler-a-harbour", "inp-model-t2i-euler", "t2i-euler")

    report = run_goldens(golden_copy, selection=Selection(ids))

    assert loaded == ["tiny-sd-eps", "tiny-sd", "tiny-sd-inpaint"]
    assert [verdict.case_id for verdict in report.verdicts] == list(ids)
    assert report.outcome() is Outcome.PASSED


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
    assert floor["per_variant"]["rerun"] == {"max_phash_distance": 0, "max_mean_abs": 0.0, "min_ssim": 1.0}
    assert report.tolerances.ssim <= floor["min_ssim"] <= 1.0


def test_calibrate_derives_an_ssim_tolerance_for_a_set_without_one_and_never_loosens_one_silently(
    golden_copy: HarnessConfig,
) -> None:
    manifest = golden_copy.path("golden.goldens_dir") / "cpu-fp32" / "manifest.json"
    document = json.loads(manifest.read_text())
    images_before = {path.name: path.read_bytes() for path in manifest.parent.glob("*.png")}
    del document["tolerances"]["ssim"]
    manifest.write_text(json.dumps(document))
    report = calibrate(golden_copy, patterns=("t2i-euler",))
    golden_set = load_golden_set(manifest.parent.parent, "cpu-fp32")
    floor = golden_set.noise_floor
    assert golden_set.ssim_recorded and golden_set.tolerances.ssim == floor["derived_ssim_tolerance"]
    assert golden_set.tolerances.ssim == derived_ssim_tolerance(floor["min_ssim"]) < floor["min_ssim"]
    assert "SSIM tolerance derived" in report.check_result().summary
    # a set that has one keeps it, unless asked to retune
    document = json.loads(manifest.read_text())
    document["tolerances"]["ssim"] = 0.5
    manifest.write_text(json.dumps(document))
    calibrate(golden_copy, patterns=("t2i-euler",))
    assert load_golden_set(manifest.parent.parent, "cpu-fp32").tolerances.ssim == 0.5
    calibrate(golden_copy, patterns=("t2i-euler",), retune=True)
    assert load_golden_set(manifest.parent.parent, "cpu-fp32").tolerances.ssim > 0.99
    assert {path.name: path.read_bytes() for path in manifest.parent.glob("*.png")} == images_before


def test_the_derived_ssim_tolerance_keeps_headroom_over_the_floor_within_bounds() -> None:
    assert derived_ssim_tolerance(0.9995) == 0.995
    assert derived_ssim_tolerance(1.0) == 0.999  # noise that never moves a pixel still leaves a margin
    assert derived_ssim_tolerance(0.95) == 0.9  # never looser than this: calibrate then fails instead


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
        "blur 0.5 px",
        "contrast x0.95",
        "saturation x0.9",
    }
    # the image controls are the ones phash alone would miss: within its tolerance, caught by the other measures
    image_controls = [r for r in report.results if r.variant in IMAGE_CONTROLS]
    assert len(image_controls) == 3 * len(SELFTEST_CASES)
    for result in image_controls:
        assert result.verdict is Verdict.CHANGED, result
        assert result.phash_distance <= report.tolerances.phash_bits and "phash16" not in result.beyond, result


def test_ssim_alone_catches_a_slight_blur() -> None:
    """With phash16 and mean abs made blind, the blur control is still judged changed: by SSIM."""
    blind = load_config(REPO_ROOT, {"golden.phash_bits": 256, "golden.mean_abs": 255.0}, environ={})
    report = selftest(blind, patterns=("t2i-euler",))
    blur = next(r for r in report.results if r.variant == "blur 0.5 px")
    assert blur.verdict is Verdict.CHANGED and blur.beyond == ("SSIM",)
    assert blur.ssim < report.tolerances.ssim


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
    selection = Selection(("t2i-euler", "t2i-ddim-batch", "t2i-euler-styles"))  # the last needs the cases' styles
    processing = tiny_repo / "serena" / "processing.py"
    processing.write_text(processing.read_text() + "\n# a comment-only refactor\n")
    _commit(repo=tiny_repo, message="harmless")
    harmless = run_ab(cfg, "HEAD~1", selection=selection, work_dir=tmp_path / "ab1", noise_runs=1)
    assert harmless.outcome() is Outcome.PASSED
    assert {v.verdict for v in harmless.verdicts} == {Verdict.IDENTICAL}
    # the base reran once, bit-identically: its noise is reported, and silent
    assert {json.dumps(v.noise) for v in harmless.verdicts} == {
        json.dumps({"runs": 1, "phash_distance": 0, "mean_abs": 0.0, "ssim": 1.0})
    }

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


def _ab_folders(tmp_path: Path, base: Any, rerun: Any, head: Any) -> tuple[Path, dict, dict, dict]:
    """Worker output folders for one case, as run_ab leaves them: base, base-rerun-1 and head."""
    for side, image in (("base", base), ("base-rerun-1", rerun), ("head", head)):
        (tmp_path / side).mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / side / "case-0.png")
    done = {"images": ["case-0.png"], "trace": None, "skipped_overrides": []}
    return tmp_path, {"cases": {"t2i-euler": done}}, {"cases": {"t2i-euler": done}}, done


def _pixels_moved(image: Any, count: int, by: int) -> Any:
    """`image` with its first `count` pixels' red channel moved by `by`."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image, dtype=np.int16).copy()
    flat = array.reshape(-1, 3)
    flat[:count, 0] = np.clip(flat[:count, 0] + by, 0, 255)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def test_with_noise_runs_a_head_within_the_bases_own_noise_is_equivalent_and_beyond_it_drifted(
    tmp_path: Path,
) -> None:
    from PIL import Image

    from harness.golden.ab import _base_noise, _judge
    from harness.golden.manifest import DEFAULT_TOLERANCES, Tolerances

    case = next(c for c in load_cases(REPO_ROOT / "harness" / "cases") if c.id == "t2i-euler")
    golden = load_golden_set(REPO_ROOT / "harness" / "goldens", "cpu-fp32").entries["t2i-euler"].images[0][0]
    base = Image.open(REPO_ROOT / "harness" / "goldens" / "cpu-fp32" / golden).convert("RGB")
    tolerances = Tolerances(**DEFAULT_TOLERANCES)  # type: ignore[arg-type]
    rerun = _pixels_moved(base, 400, 6)  # the base's own rerun is not bit-identical: a noisy device
    verdicts = {}
    for name, head in (("within", _pixels_moved(base, 200, 3)), ("beyond", _pixels_moved(base, 1200, 6))):
        root, base_done, rerun_done, head_done = _ab_folders(tmp_path / name, base, rerun, head)
        noise = _base_noise("t2i-euler", base_done, [("base-rerun-1", rerun_done)], root)
        assert noise is not None and not noise.silent and noise.runs == 1
        verdicts[name] = _judge(case, base_done["cases"]["t2i-euler"], head_done, root, tolerances, True, noise)
    assert verdicts["within"].verdict is Verdict.EQUIVALENT
    assert "within the base's own rerun noise" in verdicts["within"].reason
    assert verdicts["beyond"].verdict is Verdict.DRIFTED
    assert "beyond the base's own rerun noise" in verdicts["beyond"].reason
    assert verdicts["beyond"].images[0].mean_abs <= tolerances.mean_abs  # still within tolerance: not changed
    # a deterministic base (silent noise): the same small head difference is drifted
    root, base_done, rerun_done, head_done = _ab_folders(tmp_path / "silent", base, base, _pixels_moved(base, 200, 3))
    silent = _base_noise("t2i-euler", base_done, [("base-rerun-1", rerun_done)], root)
    assert silent is not None and silent.silent
    judged = _judge(case, base_done["cases"]["t2i-euler"], head_done, root, tolerances, True, silent)
    assert judged.verdict is Verdict.DRIFTED


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


def _fault_on(case: Any, exc: Exception):
    """A fault in the runtime for one case: the processing with its prompt and seed (cases may share a prompt)."""

    def before(p):
        if p.prompt == case.prompt and p.seed == case.seed:
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

    case = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-ddim-batch")
    _wrap_inner(monkeypatch, before=_fault_on(case, fault))
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
        (harness.run, "golden_coverage_check", "golden-coverage"),
    ):
        monkeypatch.setattr(module, attribute, passing(name))
    monkeypatch.setattr(harness.run, "frontends_checks", lambda *a, **k: lambda via: passing(f"golden via {via}")())

    class Invariants:
        def check_result(self) -> CheckResult:
            return CheckResult("invariants", Outcome.PASSED, "invariants passed")

    monkeypatch.setattr(harness.invariants.check, "check_invariants", lambda *args, **kwargs: Invariants())
    case = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-euler")
    _wrap_inner(monkeypatch, before=_fault_on(case, RuntimeError("the scheduler raised")))
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
    count = len(load_cases(golden_copy.path("golden.cases_dir")))
    assert sum(golden["figures"]["counts"].values()) == count  # every other case was run and judged
    assert (evidence / "summary.md").is_file() and (evidence / "invariants.json").is_file()
    cases = json.loads((evidence / "golden" / "golden.json").read_text())["cases"]
    assert len(cases) == count


# -- drifted: an in-tolerance difference on the machine class the golden was recorded on -------------------------
def _jittered_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case run with 1e-4 noise added to the first latents: a change far within tolerance."""
    import harness.golden.session as session
    from harness.golden.controls import _jitter_hook
    from harness.golden.runner import run_case

    monkeypatch.setattr(session, "run_case", lambda *a, **k: run_case(*a, **k, step_hook=_jitter_hook()))


def _record_here(golden_copy: HarnessConfig, case_id: str) -> None:
    run_goldens(golden_copy, selection=Selection((case_id,)), update="all", force=True)
    entry = load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32").entries[case_id]
    assert entry.machine is not None and entry.machine["threads"] == golden_copy["golden.num_threads"]


def test_a_small_change_on_the_recording_machine_class_is_drifted_and_fails(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_here(golden_copy, "t2i-euler")
    _jittered_runs(monkeypatch)
    report = run_goldens(golden_copy, selection=Selection(("t2i-euler",)))
    verdict = _by_id(report)["t2i-euler"]
    assert verdict.verdict is Verdict.DRIFTED and report.outcome() is Outcome.FAILED
    assert "not bit-identical on the machine class the golden was recorded on" in verdict.reason
    image = verdict.images[0]
    assert image.phash_distance <= report.tolerances.phash_bits and image.mean_abs <= report.tolerances.mean_abs
    assert 1.0 > image.ssim >= report.tolerances.ssim and image.beyond == ()
    # the same difference is equivalent when drift is allowed, or on another machine class
    allowed = load_config(REPO_ROOT, {**_golden_flags(golden_copy), "golden.drift": "equivalent"}, environ={})
    assert _by_id(run_goldens(allowed, selection=Selection(("t2i-euler",))))["t2i-euler"].verdict is Verdict.EQUIVALENT
    import harness.golden.session as session
    from harness.golden.set_key import fingerprint

    monkeypatch.setattr(session, "fingerprint", lambda device, threads: {**fingerprint(device, threads), "cpu": "x"})
    other = run_goldens(golden_copy, selection=Selection(("t2i-euler",)))
    assert _by_id(other)["t2i-euler"].verdict is Verdict.EQUIVALENT and other.outcome() is Outcome.PASSED


def test_golden_run_exits_1_on_drift_and_allow_drift_passes(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from harness.cli import main

    _record_here(golden_copy, "t2i-euler")
    _jittered_runs(monkeypatch)
    for name, value in _golden_flags(golden_copy).items():
        monkeypatch.setenv("SERENA_" + name.replace(".", "_").upper(), value)
    args = ["golden", "run", "-k", "t2i-euler", "--report-dir", str(tmp_path / "report")]
    assert main(args) == 1
    assert "t2i-euler  drifted" in capsys.readouterr().out
    assert main([*args, "--allow-drift"]) == 0
    assert "t2i-euler  equivalent" in capsys.readouterr().out


def test_a_partial_update_on_another_machine_leaves_the_other_entries_judged_by_their_own_class(
    golden_copy: HarnessConfig,
) -> None:
    goldens = golden_copy.path("golden.goldens_dir")
    before = load_golden_set(goldens, "cpu-fp32")
    _record_here(golden_copy, "t2i-euler")
    after = load_golden_set(goldens, "cpu-fp32")
    assert after.recorded_with == before.recorded_with  # still the fingerprint of the entries recorded with the set
    assert (
        after.entries["t2i-heun"].machine is None
        and after.recorded_on(after.entries["t2i-heun"]) == before.recorded_with
    )


def test_a_machine_class_needs_every_field() -> None:
    from harness.golden.set_key import MACHINE_CLASS_FIELDS, same_machine_class

    current = dict.fromkeys(MACHINE_CLASS_FIELDS, "x")
    assert same_machine_class(dict(current), current)
    assert not same_machine_class({}, current) and not same_machine_class(None, current)
    assert not same_machine_class({k: v for k, v in current.items() if k != "threads"}, current)
    assert not same_machine_class({**current, "cpu": "y"}, current)


def _golden_flags(cfg: HarnessConfig) -> dict[str, str]:
    return {name: str(cfg.path(name)) for name in ("golden.cases_dir", "golden.goldens_dir")}


# -- safe updates: no churn, nothing written from CI, what changed said ------------------------------------------
def _set_files(cfg: HarnessConfig) -> dict[str, bytes]:
    folder = cfg.path("golden.goldens_dir") / "cpu-fp32"
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_an_update_leaves_images_within_tolerance_byte_identical_unless_forced(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = load_config(REPO_ROOT, {**_golden_flags(golden_copy), "golden.drift": "equivalent"}, environ={})
    _jittered_runs(monkeypatch)  # every image differs a little from its golden: equivalent
    before = _set_files(allowed)
    report = run_goldens(allowed, selection=FEW, update="all")
    assert {v.verdict for v in report.verdicts} == {Verdict.EQUIVALENT}
    assert report.updated == [] and report.changes == [] and report.written == []
    assert _set_files(allowed) == before
    forced = run_goldens(allowed, selection=Selection(("t2i-euler",)), update="all", force=True)
    assert forced.updated == ["t2i-euler"]
    (change,) = forced.changes
    assert (change.case_id, change.index, change.action, change.verdict) == ("t2i-euler", 0, "replaced", "equivalent")
    assert change.old_sha256 != change.new_sha256 and change.phash_distance is not None
    after = _set_files(allowed)
    assert {name for name in after if after[name] != before.get(name)} == {
        "manifest.json",
        f"t2i-euler-0-{change.new_sha256[:12]}.png",
        *(name for name in after if name not in before and name.endswith(".trace.npz")),
    }


def test_an_update_of_a_batch_case_rewrites_only_its_changed_images(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second image of a two-image case changes; the first stays as recorded (same file, same bytes)."""
    from harness.golden import runner

    original = runner.run_case

    def second_image_shifted(*args: Any, **kwargs: Any) -> Any:
        run = original(*args, **kwargs)
        from harness.golden.measures import measure

        shifted = run.images[1].point(lambda value: min(255, value + 40))
        run.images[1], run.measures[1] = shifted, measure(shifted)
        return run

    import harness.golden.session as session

    monkeypatch.setattr(session, "run_case", second_image_shifted)
    golden = load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32")
    first_file = golden.entries["t2i-ddim-batch"].images[0][0]
    report = run_goldens(golden_copy, selection=Selection(("t2i-ddim-batch",)), update="failed")
    assert report.updated == ["t2i-ddim-batch"]
    assert [(c.index, c.action, c.verdict) for c in report.changes] == [(1, "replaced", "changed")]
    entry = load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32").entries["t2i-ddim-batch"]
    assert entry.images[0][0] == first_file and entry.images[1][1].sha256 == report.changes[0].new_sha256


def test_golden_update_is_refused_when_ci_is_set_unless_allowed_and_writes_what_it_changed(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from harness.cli import main

    for name, value in _golden_flags(golden_copy).items():
        monkeypatch.setenv("SERENA_" + name.replace(".", "_").upper(), value)
    path = golden_copy.path("golden.cases_dir") / "txt2img.toml"
    path.write_text(
        path.read_text() + '\n[[case]]\nid = "t2i-new"\nmode = "txt2img"\nprompt = "a new case"\nseed = 7\n'
        'steps = 6\nsampler = "Euler"\ncfg_scale = 7.0\n'
    )
    before = _set_files(golden_copy)
    args = ["golden", "update", "--missing", "-k", "t2i-new", "--report-dir", str(tmp_path / "report")]
    monkeypatch.setenv("CI", "true")
    assert main(args) == 2
    assert "refuses to write goldens when CI is set" in capsys.readouterr().err
    assert _set_files(golden_copy) == before
    assert main([*args, "--allow-ci"]) == 0
    out = capsys.readouterr().out
    assert "t2i-new #0: new" in out
    markdown = (tmp_path / "report" / "golden-update.md").read_text(encoding="utf-8")
    assert "| `t2i-new` | 0 | new |" in markdown
    monkeypatch.setenv("CI", "false")  # CI=false is not CI
    assert main(args) == 0
    assert "Nothing written" in (tmp_path / "report" / "golden-update.md").read_text(encoding="utf-8")


# -- quarantine: reports, does not fail until its date, then fails and says so ---------------------------------
def _quarantine(cfg: HarnessConfig, case_id: str, until: str, reason: str = "flaky on the new runner") -> None:
    path = cfg.path("golden.cases_dir") / "txt2img.toml"
    text = path.read_text()
    anchor = f'id = "{case_id}"\n'
    assert anchor in text
    path.write_text(text.replace(anchor, f'{anchor}quarantine = {{ reason = "{reason}", until = {until} }}\n', 1))


def test_a_quarantined_case_reports_but_does_not_fail_before_its_date_and_fails_after(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from harness.golden.render import render_junit, render_terminal

    digest_before = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-euler").digest()
    _wrap_inner(monkeypatch, before=lambda p: setattr(p, "seed", p.seed + 1))  # every case changes
    today = datetime.now(UTC).date()
    _quarantine(golden_copy, "t2i-euler", (today + timedelta(days=1)).isoformat())
    quarantined = next(c for c in load_cases(golden_copy.path("golden.cases_dir")) if c.id == "t2i-euler")
    assert quarantined.digest() == digest_before  # judging differently is not a different case
    selection = Selection(("t2i-euler", "t2i-heun"))
    report = run_goldens(golden_copy, selection=selection)
    euler = _by_id(report)["t2i-euler"]
    assert euler.verdict is Verdict.CHANGED and euler.quarantined  # it ran and reports its real verdict
    assert [v.case_id for v in report.failing()] == ["t2i-heun"]
    result = report.check_result()
    assert "1 quarantined, not failing: t2i-euler" in result.summary
    assert not any(p.startswith("t2i-euler") for p in result.problems)
    assert "quarantined until" in render_terminal(report) and 'skipped message="changed' in render_junit(report)
    # on the day after its date it fails, and says why
    _quarantine(golden_copy, "t2i-heun", (today - timedelta(days=1)).isoformat(), "was flaky")
    expired = run_goldens(golden_copy, selection=Selection(("t2i-heun",)))
    assert expired.outcome() is Outcome.FAILED
    (problem,) = expired.check_result().problems
    assert "quarantine expired on" in problem and "was flaky" in problem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{ until = 2026-12-31 }", "needs a reason"),
        ('{ reason = "x" }', "needs until, a date"),
        ('{ reason = "x", until = "soon" }', "is not a date"),
        ('{ reason = "x", until = 2026-12-31, owner = "me" }', "unknown key 'owner'"),
    ],
)
def test_a_malformed_quarantine_is_refused_naming_the_case(
    golden_copy: HarnessConfig, value: str, message: str
) -> None:
    from harness.errors import GoldenError

    path = golden_copy.path("golden.cases_dir") / "txt2img.toml"
    path.write_text(path.read_text().replace('id = "t2i-euler"\n', f'id = "t2i-euler"\nquarantine = {value}\n', 1))
    with pytest.raises(GoldenError, match=f"case 't2i-euler': field 'quarantine'.*{message}"):
        load_cases(golden_copy.path("golden.cases_dir"))


# -- accepted alternates: another recorded image for a named machine class --------------------------------------
def test_an_accepted_alternate_is_the_reference_on_its_machine_class_only(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.golden.session as session
    from harness.golden.set_key import fingerprint

    goldens = golden_copy.path("golden.goldens_dir")
    before = _set_files(golden_copy)
    _jittered_runs(monkeypatch)  # this "machine class" makes slightly different pixels, the same ones every time
    selection = Selection(("t2i-euler", "t2i-heun"))
    recorded = run_goldens(golden_copy, selection=selection, alternate="jittery")
    assert recorded.updated == ["t2i-euler", "t2i-heun"] and recorded.outcome() is Outcome.PASSED
    assert {(c.case_id, c.action) for c in recorded.changes} == {("t2i-euler", "alternate"), ("t2i-heun", "alternate")}
    entry = load_golden_set(goldens, "cpu-fp32").entries["t2i-euler"]
    (alternate,) = entry.alternates
    assert alternate.name == "jittery" and alternate.machine["threads"] == golden_copy["golden.num_threads"]
    after = _set_files(golden_copy)
    assert all(after[name] == data for name, data in before.items() if name != "manifest.json")  # primaries kept
    # on this machine class the alternate is the reference: identical, and named
    again = _by_id(run_goldens(golden_copy, selection=selection))
    assert again["t2i-euler"].verdict is Verdict.IDENTICAL
    assert "accepted alternate 'jittery'" in again["t2i-euler"].reference
    # on another machine class the primary images are the reference
    monkeypatch.setattr(session, "fingerprint", lambda device, threads: {**fingerprint(device, threads), "cpu": "x"})
    other = _by_id(run_goldens(golden_copy, selection=selection))
    assert other["t2i-euler"].reference is None and other["t2i-euler"].verdict is Verdict.EQUIVALENT


def test_an_alternate_needs_a_current_golden_and_a_valid_name(golden_copy: HarnessConfig) -> None:
    from harness.errors import GoldenError

    path = golden_copy.path("golden.cases_dir") / "txt2img.toml"
    path.write_text(path.read_text().replace("seed = 101\n", "seed = 1010\n", 1))  # t2i-euler is stale now
    report = run_goldens(golden_copy, selection=Selection(("t2i-euler",)), alternate="other")
    (change,) = report.changes
    assert change.action == "skipped" and change.note.startswith("stale: an alternate needs")
    assert load_golden_set(golden_copy.path("golden.goldens_dir"), "cpu-fp32").entries["t2i-euler"].alternates == []
    with pytest.raises(GoldenError, match="a name matching"):
        run_goldens(golden_copy, selection=Selection(("t2i-euler",)), alternate="Not A Name")
