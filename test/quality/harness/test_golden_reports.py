"""`serena-verify golden` end to end: verdicts, report files and formats, the HTML in Chromium, shards, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from PIL import Image
from support import IN_CI, REPO_ROOT, gradient_image

from harness import exit_codes
from harness.cli import main
from harness.errors import GoldenError
from harness.golden.cases import load_cases

GOLDEN_SET = REPO_ROOT / "harness" / "goldens" / "cpu-fp32"
CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = ["-k", "t2i-euler", "-k", "t2i-euler-?", "-k", "i2i-ddim-gradient"]
SAMPLE_IDS = ["i2i-ddim-gradient", "t2i-euler", "t2i-euler-a"]
PASSING = {"identical", "equivalent"}
REPORT_FILES = {"golden.json", "golden.html", "golden.junit.xml", "golden.md"}
COMMENT = "golden-comment.md"  # the pull-request comment: written only when a case is not identical


def report_files(folder: Path, document: dict) -> None:
    """The report folder holds every format, and the comment exactly when some case is not identical."""
    identical = all(case["verdict"] == "identical" for case in document["cases"]) and not document["unused"]
    expected = REPORT_FILES if identical else REPORT_FILES | {COMMENT}
    assert {path.name for path in folder.iterdir() if path.is_file()} == expected


@dataclass(frozen=True)
class Call:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the committed cases and goldens; no SERENA_* setting or step summary from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("SERENA_") or name == "GITHUB_STEP_SUMMARY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic(monkeypatch)


def verify(*args: str | Path) -> Call:
    """`serena-verify ARGS…` in-process; returns the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    return Call(code, out.getvalue(), err.getvalue())


def error_line(call: Call, *fragments: str, code: int = exit_codes.USAGE) -> str:
    """The exit code, and exactly one `serena-verify: error` line on stderr (the last) holding every fragment."""
    assert call.code == code, call.err
    assert "Traceback" not in call.err, call.err
    errors = [line for line in call.err.splitlines() if line.startswith("serena-verify:")]
    assert len(errors) == 1, call.err
    assert call.err.splitlines()[-1] == errors[0], call.err
    assert errors[0].startswith("serena-verify: error"), call.err
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} missing from {errors[0]!r}"
    return errors[0]


def image_count(document: dict) -> int:
    return sum(len(case["images"]) for case in document["cases"])


@dataclass(frozen=True)
class Run:
    call: Call
    folder: Path


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("sample") / "report"
    with pytest.MonkeyPatch.context() as monkeypatch:
        hermetic(monkeypatch)
        call = verify("golden", "run", *SAMPLE, "--report-dir", folder, "--format", "json")
    return Run(call, folder)


# -- a run against the committed set ----------------------------------------------------------
def test_run_passes_against_the_committed_set(sample_run: Run) -> None:
    call = sample_run.call
    assert call.code == exit_codes.OK, call.err
    document = call.json()

    assert document["outcome"] == "passed"
    assert [case["case"] for case in document["cases"]] == SAMPLE_IDS
    assert {case["verdict"] for case in document["cases"]} <= PASSING
    assert document["environment_key"] == "cpu-fp32"
    assert Path(document["golden_dir"]) == GOLDEN_SET


def test_json_report_has_versioned_schema_counts_and_distances(sample_run: Run) -> None:
    document = sample_run.call.json()

    assert document["schema_version"] == 1
    assert document["kind"] == "serena-golden-report"
    assert set(document["counts"]) >= {"identical", "equivalent", "changed", "stale", "missing", "unused", "skipped"}
    assert document["counts"]["identical"] + document["counts"]["equivalent"] == len(SAMPLE_IDS)
    assert sum(document["counts"].values()) == len(SAMPLE_IDS)
    assert document["selection"] == {"patterns": ["t2i-euler", "t2i-euler-?", "i2i-ddim-gradient"], "shard": None}
    tolerances = document["tolerances"]
    for case in document["cases"]:
        assert case["images"], case["case"]
        for image in case["images"]:
            assert isinstance(image["phash_distance"], int)
            assert image["phash_distance"] <= tolerances["phash_bits"]
            assert isinstance(image["mean_abs"], int | float)
            assert image["mean_abs"] <= tolerances["mean_abs"]


def test_report_dir_holds_every_format_and_the_actual_images(sample_run: Run) -> None:
    folder = sample_run.folder

    report_files(folder, sample_run.call.json())
    assert json.loads((folder / "golden.json").read_text(encoding="utf-8")) == sample_run.call.json()
    actual = sorted(path.name for path in (folder / "actual").iterdir())
    assert actual == [f"{case_id}-0.png" for case_id in SAMPLE_IDS]
    for name in actual:
        with Image.open(folder / "actual" / name) as image:
            assert image.format == "PNG" and image.size == (64, 64)


# -- golden report: re-rendering an earlier run -----------------------------------------------
def test_report_renders_junit(sample_run: Run) -> None:
    call = verify("golden", "report", "--dir", sample_run.folder, "--format", "junit")

    assert call.code == exit_codes.OK, call.err
    suite = ET.fromstring(call.out)
    assert suite.get("name") == "serena-golden-cpu-fp32"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "0")
    assert [case.get("name") for case in suite.findall("testcase")] == SAMPLE_IDS
    assert call.out == (sample_run.folder / "golden.junit.xml").read_text(encoding="utf-8")


def test_report_renders_markdown(sample_run: Run) -> None:
    call = verify("golden", "report", "--dir", sample_run.folder, "--format", "markdown")

    assert call.code == exit_codes.OK, call.err
    lines = call.out.splitlines()
    assert lines[0] == "### Golden outputs — passed (cpu-fp32)"
    for case_id in SAMPLE_IDS:
        assert any(line.startswith(f"| `{case_id}` |") for line in lines), case_id
    assert call.out == (sample_run.folder / "golden.md").read_text(encoding="utf-8")


def test_report_renders_json_and_writes_to_a_file(sample_run: Run, tmp_path: Path) -> None:
    call = verify("golden", "report", "--dir", sample_run.folder, "--json")
    assert call.code == exit_codes.OK, call.err
    assert call.json() == sample_run.call.json()

    target = tmp_path / "out" / "report.json"
    target.parent.mkdir()
    written = verify("golden", "report", "--dir", sample_run.folder, "--format", "json", "--output", target)
    assert written.code == exit_codes.OK and written.out == ""
    assert json.loads(target.read_text(encoding="utf-8")) == sample_run.call.json()


def test_report_terminal_lists_each_case_and_the_outcome(sample_run: Run) -> None:
    call = verify("golden", "report", "--dir", sample_run.folder)

    assert call.code == exit_codes.OK, call.err
    lines = call.out.splitlines()
    for case_id in SAMPLE_IDS:
        assert any(line.split()[:1] == [case_id] and line.split()[1] in PASSING for line in lines), case_id
    assert lines[-1].startswith("passed: ")


def test_report_without_an_earlier_run_is_a_usage_error(tmp_path: Path) -> None:
    error_line(verify("golden", "report", "--dir", tmp_path / "nothing"), "no golden report here")


def test_markdown_is_appended_to_the_github_step_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    folder = tmp_path / "report"

    call = verify("golden", "run", "-k", "t2i-euler", "--report-dir", folder)

    assert call.code == exit_codes.OK, call.err
    markdown = (folder / "golden.md").read_text(encoding="utf-8")
    assert "`t2i-euler`" in markdown
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + markdown
    assert call.out.splitlines()[-1].startswith("passed: ")


# -- the HTML report --------------------------------------------------------------------------
def test_html_report_is_self_contained(sample_run: Run) -> None:
    page = (sample_run.folder / "golden.html").read_text(encoding="utf-8")

    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page.lower()
    sources = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", page)
    assert len(sources) == 3 * image_count(sample_run.call.json())
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    for case_id in SAMPLE_IDS:
        assert case_id in page


def test_html_embeds_an_rgb_png_as_it_lies_on_disk_and_re_encodes_anything_else(tmp_path: Path) -> None:
    import base64

    from harness.golden.render import _read

    rgb, rgba, text = tmp_path / "rgb.png", tmp_path / "rgba.png", tmp_path / "broken.png"
    gradient_image(16, 8).save(rgb, "PNG")
    gradient_image(16, 8).convert("RGBA").save(rgba, "PNG")
    text.write_bytes(b"not an image")

    as_is = _read(rgb)
    assert as_is is not None and as_is.uri == "data:image/png;base64," + base64.b64encode(rgb.read_bytes()).decode()
    re_encoded = _read(rgba)
    assert re_encoded is not None and re_encoded.image.mode == "RGB"
    shown = Image.open(io.BytesIO(base64.b64decode(re_encoded.uri.split(",", 1)[1])))
    assert shown.mode == "RGB" and shown.tobytes() == re_encoded.image.tobytes()
    assert _read(text) is None and _read(tmp_path / "missing.png") is None


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing; CI installs chromium to check that the HTML report renders")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the HTML render check needs it")


def test_html_report_renders_every_image_in_headless_chromium(sample_run: Run, tmp_path: Path) -> None:
    require_chromium()
    expected = 3 * image_count(sample_run.call.json())  # golden, actual and difference per compared image
    page = sample_run.folder / "golden.html"

    completed = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    body = re.search(r"<body[^>]*>", completed.stdout)
    assert body is not None, completed.stdout[:2000]
    assert f'data-images-loaded="{expected}/{expected}"' in body.group(0)


# -- shards and merge -------------------------------------------------------------------------
@dataclass(frozen=True)
class Shards:
    first: Run
    second: Run


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory: pytest.TempPathFactory) -> Shards:
    root = tmp_path_factory.mktemp("shards")
    runs = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        hermetic(monkeypatch)
        for shard in ("1/2", "2/2"):
            folder = root / f"shard-{shard[0]}"
            runs.append(Run(verify("golden", "run", "--shard", shard, "--report-dir", folder, "--json"), folder))
    return Shards(*runs)


def test_shards_each_pass_and_split_the_suite(shard_runs: Shards) -> None:
    full_ids = [case.id for case in load_cases(REPO_ROOT / "harness" / "cases")]
    first, second = shard_runs.first.call, shard_runs.second.call

    assert first.code == exit_codes.OK, first.err
    assert second.code == exit_codes.OK, second.err
    first_ids = {case["case"] for case in first.json()["cases"]}
    second_ids = {case["case"] for case in second.json()["cases"]}
    assert first_ids and second_ids and not first_ids & second_ids
    assert first_ids | second_ids == set(full_ids)
    # a shard alone cannot tell which recorded goldens are unused
    assert first.json()["unused"] == [] and second.json()["unused"] == []


def test_merge_combines_shards_into_the_full_suite(shard_runs: Shards, tmp_path: Path) -> None:
    full_ids = sorted(case.id for case in load_cases(REPO_ROOT / "harness" / "cases"))
    merged_dir = tmp_path / "merged"

    call = verify(
        "golden",
        "merge",
        shard_runs.first.folder,
        shard_runs.second.folder,
        "--out-dir",
        merged_dir,
        "--format",
        "json",
    )

    assert call.code == exit_codes.OK, call.err
    merged = call.json()
    assert [case["case"] for case in merged["cases"]] == full_ids
    assert merged["outcome"] == "passed"
    assert merged["unused"] == [] and merged["counts"]["unused"] == 0
    assert sum(merged["counts"].values()) == len(full_ids)
    report_files(merged_dir, merged)
    assert len(list((merged_dir / "actual").glob("*.png"))) == image_count(merged)
    assert json.loads((merged_dir / "golden.json").read_text(encoding="utf-8")) == merged


def test_a_report_read_back_gives_the_same_document(sample_run: Run) -> None:
    from harness.golden.document import read_report

    document = sample_run.call.json()

    report = read_report(sample_run.folder)

    assert report.to_document() == document
    for case in report.verdicts:
        for image in case.images:
            assert image.actual_file is not None and image.actual_file.parent == sample_run.folder / "actual"


def _shard_report(shard: tuple[int, int] | None, verdicts: dict[str, str], **fields):
    from harness.golden.compare import CaseVerdict, Verdict
    from harness.golden.manifest import Tolerances
    from harness.golden.report import GoldenReport
    from harness.golden.selection import Selection

    return GoldenReport(
        environment_key="cpu-fp32",
        golden_dir="goldens/cpu-fp32",
        tolerances=Tolerances(8, 1.0),
        verdicts=[CaseVerdict(case_id, Verdict(verdict)) for case_id, verdict in verdicts.items()],
        unused=[],
        selection=Selection(shard=shard),
        recorded_ids=["a", "b", "c", "gone"],
        **fields,
    )


def test_merge_judges_shards_by_the_rules_of_a_single_run() -> None:
    from harness.golden.report import GoldenReport
    from harness.outcome import Outcome

    first = _shard_report((1, 2), {"a": "identical", "c": "equivalent"})
    second = _shard_report((2, 2), {"b": "changed"}, updated=["b"])

    merged = GoldenReport.merge([first, second])

    # a case re-recorded by any shard does not fail the merge (not only the first shard's)
    assert [v.case_id for v in merged.verdicts] == ["a", "b", "c"]
    assert merged.unused == ["gone"] and merged.outcome() is Outcome.FAILED
    assert [p.split(":")[0] for p in merged.check_result().problems] == ["gone"]
    assert merged.selection.to_dict() == {"patterns": [], "shard": None, "merged_from": 2}
    warned = GoldenReport.merge([first, _shard_report((2, 2), {"b": "identical"}, warn_unused=True)])
    assert warned.outcome() is Outcome.FAILED  # warn_unused must hold for every shard
    both_warned = GoldenReport.merge(
        [_shard_report((1, 2), {"a": "identical"}, warn_unused=True), _shard_report((2, 2), {}, warn_unused=True)]
    )
    assert both_warned.outcome() is Outcome.PASSED and both_warned.unused == ["b", "c", "gone"]


def test_merge_refuses_a_missing_shard_or_shards_of_different_splits() -> None:
    from harness.golden.report import GoldenReport

    with pytest.raises(GoldenError, match="shard 2/3, 3/3 missing"):
        GoldenReport.merge([_shard_report((1, 3), {"a": "identical"})])
    with pytest.raises(GoldenError, match="different splits"):
        GoldenReport.merge([_shard_report((1, 2), {"a": "identical"}), _shard_report((2, 3), {"b": "identical"})])


def test_merge_of_skipped_shards_is_skipped_with_their_reason() -> None:
    from harness.golden.report import GoldenReport
    from harness.outcome import Outcome

    reason = "no CUDA device on this machine: the cuda-fp32 set cannot be run here"
    skipped = [
        _shard_report((k, 2), {case_id: "skipped"}, skipped_reason=reason) for k, case_id in ((1, "a"), (2, "b"))
    ]

    merged = GoldenReport.merge(skipped)

    assert merged.outcome() is Outcome.SKIPPED and merged.check_result().reason == reason
    mixed = GoldenReport.merge([skipped[0], _shard_report((2, 2), {"b": "identical"})])
    assert mixed.outcome() is Outcome.FAILED


def test_merging_a_report_with_itself_is_a_duplicate_case(shard_runs: Shards, tmp_path: Path) -> None:
    folder = shard_runs.first.folder

    call = verify("golden", "merge", folder, folder, "--out-dir", tmp_path / "merged")

    error_line(call, "more than one shard report")


# -- corrupt, truncated and deleted goldens ---------------------------------------------------
@pytest.fixture
def golden_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed cpu-fp32 set that SERENA_GOLDEN_GOLDENS_DIR points at; returns its folder."""
    root = tmp_path / "goldens"
    shutil.copytree(GOLDEN_SET, root / "cpu-fp32")
    monkeypatch.setenv("SERENA_GOLDEN_GOLDENS_DIR", str(root))
    return root / "cpu-fp32"


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def golden_png(folder: Path, case_id: str = "t2i-euler") -> Path:
    return folder / manifest_of(folder)["cases"][case_id]["images"][0]["file"]


def run_one(tmp_path: Path, *extra: str) -> Call:
    return verify("golden", "run", "-k", "t2i-euler", "--report-dir", tmp_path / "report", *extra)


def test_the_copied_set_passes_and_a_run_leaves_it_untouched(golden_copy: Path, tmp_path: Path) -> None:
    before = {path.name: path.read_bytes() for path in golden_copy.iterdir()}

    call = run_one(tmp_path, "--json")

    assert call.code == exit_codes.OK, call.err
    assert Path(call.json()["golden_dir"]) == golden_copy
    assert {path.name: path.read_bytes() for path in golden_copy.iterdir()} == before


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "empty"])
def test_truncated_manifest_names_file_and_line(golden_copy: Path, tmp_path: Path, keep: float) -> None:
    manifest = golden_copy / "manifest.json"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text[: int(len(text) * keep)], encoding="utf-8")

    line = error_line(run_one(tmp_path), str(manifest))

    assert re.search(re.escape(str(manifest)) + r":\d+:\d+", line), line


def test_deleted_manifest_makes_every_case_missing(golden_copy: Path, tmp_path: Path) -> None:
    (golden_copy / "manifest.json").unlink()

    call = verify("golden", "run", "-k", "t2i-euler", "-k", "t2i-lcm", "--report-dir", tmp_path / "r", "--json")

    assert call.code == exit_codes.FAILED, call.err
    document = call.json()
    assert document["outcome"] == "failed"
    assert [case["case"] for case in document["cases"]] == ["t2i-euler", "t2i-lcm"]
    for case in document["cases"]:
        assert case["verdict"] == "missing"
        assert "no set recorded" in case["reason"]
    assert not (golden_copy / "manifest.json").exists()  # a run never records goldens


def test_deleted_golden_png_is_named(golden_copy: Path, tmp_path: Path) -> None:
    png = golden_png(golden_copy)
    png.unlink()

    error_line(run_one(tmp_path), str(png), "missing")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_golden_png_is_named(golden_copy: Path, tmp_path: Path, damage: str) -> None:
    png = golden_png(golden_copy)
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"this is not a PNG file at all")

    error_line(run_one(tmp_path), str(png), "corrupt")


def test_golden_png_replaced_by_another_image_is_altered(golden_copy: Path, tmp_path: Path) -> None:
    png = golden_png(golden_copy)
    gradient_image(64, 64).save(png, "PNG")

    error_line(run_one(tmp_path), str(png), "altered")


def _drop_digest(manifest: dict) -> None:
    del manifest["cases"]["t2i-euler"]["digest"]


def _drop_tolerances(manifest: dict) -> None:
    del manifest["tolerances"]


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda m: m.update(schema_version=99), ("schema_version", "99")),
        (lambda m: m.update(schema_version="1"), ("schema_version",)),
        (lambda m: m.pop("schema_version"), ("missing field 'schema_version'",)),
        (_drop_tolerances, ("missing field 'tolerances'",)),
        (lambda m: m["tolerances"].update(phash_bits="8"), ("'phash_bits'",)),
        (_drop_digest, ("'t2i-euler'", "missing field 'digest'")),
        (lambda m: m.pop("cases"), ("missing field 'cases'",)),
        (lambda m: m.update(environment_key="cuda-fp32"), ("environment_key", "cuda-fp32")),
    ],
    ids=[
        "future-schema",
        "schema-as-text",
        "no-schema",
        "no-tolerances",
        "tolerance-type",
        "no-digest",
        "no-cases",
        "wrong-key",
    ],
)
def test_malformed_manifest_names_the_field(golden_copy: Path, tmp_path: Path, edit, fragments: tuple) -> None:
    manifest_path = golden_copy / "manifest.json"
    manifest = manifest_of(golden_copy)
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    error_line(run_one(tmp_path), str(manifest_path), *fragments)


# -- devices, strictness and usage errors -----------------------------------------------------
@pytest.fixture
def no_cuda() -> Iterator[None]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; this checks the GPU-less behaviour")
    yield


def test_cuda_run_without_a_gpu_skips_every_case_with_the_reason(no_cuda: None, tmp_path: Path) -> None:
    folder = tmp_path / "report"

    call = verify(
        "golden", "run", "--device", "cuda", "-k", "t2i-euler", "-k", "t2i-euler-?", "--report-dir", folder, "--json"
    )

    assert call.code == exit_codes.OK, call.err
    document = call.json()
    assert document["outcome"] == "skipped"
    assert "no CUDA device" in document["reason"]
    assert [case["case"] for case in document["cases"]] == ["t2i-euler", "t2i-euler-a"]
    for case in document["cases"]:
        assert case["verdict"] == "skipped"
        assert "no CUDA device" in case["reason"]
    suite = ET.fromstring((folder / "golden.junit.xml").read_text(encoding="utf-8"))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "2")


def test_cuda_run_without_a_gpu_fails_under_strict(no_cuda: None, tmp_path: Path) -> None:
    call = verify("golden", "run", "--device", "cuda", "-k", "t2i-euler*", "--report-dir", tmp_path / "r", "--strict")

    assert call.code == exit_codes.FAILED, call.err


def test_a_selection_that_matches_nothing_is_inconclusive(tmp_path: Path) -> None:
    call = verify("golden", "run", "-k", "no-such-case", "--report-dir", tmp_path / "r", "--json")

    assert call.code == exit_codes.INCONCLUSIVE, call.err
    assert call.json()["outcome"] == "inconclusive"


@pytest.mark.parametrize("modes", [[], ["--missing", "--all"], ["--failed", "--missing"]], ids=["none", "two", "two-b"])
def test_update_needs_exactly_one_mode(golden_copy: Path, tmp_path: Path, modes: list[str]) -> None:
    before = (golden_copy / "manifest.json").read_bytes()

    call = verify("golden", "update", *modes, "-k", "t2i-euler", "--report-dir", tmp_path / "r")

    error_line(call, "--missing", "--failed", "--all")
    assert (golden_copy / "manifest.json").read_bytes() == before
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("shard", ["3/2", "0/2", "two/three"])
def test_bad_shard_is_a_usage_error(tmp_path: Path, shard: str) -> None:
    error_line(verify("golden", "run", "--shard", shard, "--report-dir", tmp_path / "r"), "--shard", shard)


def test_unknown_format_is_a_usage_error(sample_run: Run, tmp_path: Path) -> None:
    error_line(verify("golden", "report", "--dir", sample_run.folder, "--format", "yaml"), "--format", "yaml")
    error_line(verify("golden", "run", "-k", "t2i-euler", "--report-dir", tmp_path / "r", "--format", "yaml"), "yaml")
