"""The pull-request comment of a golden run: only the cases that are not identical, thumbnails on disk, the marker,
the size limit and escaping."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from support import REPO_ROOT

import serena.processing
from harness.config import HarnessConfig, load_config
from harness.golden.comment import (
    COMMENT_LIMIT,
    COMMENT_NAME,
    MARKER,
    RUN_URL_TOKEN,
    THUMBNAIL_SIDE,
    THUMBNAILS_DIR,
    THUMBNAILS_TOKEN,
    TOKEN_URL_ALLOWANCE,
    render_pr_comment,
    write_pr_comment,
)
from harness.golden.compare import CaseVerdict, ImageComparison, Verdict, compare_images
from harness.golden.document import read_report
from harness.golden.manifest import GoldenSet, load_golden_set
from harness.golden.measures import measure
from harness.golden.publish import write_golden_report
from harness.golden.report import GoldenReport
from harness.golden.selection import Selection
from harness.golden.session import run_goldens

GOLDENS = REPO_ROOT / "harness" / "goldens"
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\{\{SERENA_THUMBNAILS\}\}/([^)]+)\)")


@pytest.fixture(scope="module")
def golden_set() -> GoldenSet:
    return load_golden_set(GOLDENS, "cpu-fp32")


def comparison(golden_set: GoldenSet, case_id: str, actual: Image.Image | None, folder: Path) -> ImageComparison:
    """Image 0 of `case_id` judged against `actual` (None: the golden itself), saved where a report folder keeps it."""
    name, golden_measures = golden_set.entries[case_id].images[0]
    golden = golden_set.load_image(name, golden_measures)
    actual = golden if actual is None else actual
    actual_measures = measure(actual)
    judgement = compare_images(actual, actual_measures, golden, golden_measures, golden_set.tolerances)
    image = ImageComparison.judged(0, judgement, actual_measures, golden_measures, name)
    image.actual_file = folder / "actual" / f"{case_id}-0.png"
    image.actual_file.parent.mkdir(parents=True, exist_ok=True)
    actual.save(image.actual_file)
    return image


def case(golden_set: GoldenSet, case_id: str, folder: Path, *, change: bool = False, reason: str | None = None):
    """A verdict for `case_id`: identical, or (change) its golden inverted, which is changed."""
    golden = golden_set.load_image(*golden_set.entries[case_id].images[0])
    image = comparison(golden_set, case_id, ImageOps.invert(golden) if change else None, folder)
    return CaseVerdict(case_id, image.verdict, [image], reason=reason)


def report_of(golden_set: GoldenSet, verdicts: list[CaseVerdict], unused: list[str] | None = None) -> GoldenReport:
    return GoldenReport(
        environment_key="cpu-fp32",
        golden_dir=str(golden_set.folder),
        tolerances=golden_set.tolerances,
        verdicts=verdicts,
        unused=unused or [],
        selection=Selection(),
        recorded_ids=sorted(golden_set.entries),
    )


def posted(body: str, url_length: int = TOKEN_URL_ALLOWANCE) -> str:
    """The body as the workflow posts it, with each placeholder replaced by a URL of `url_length` characters."""
    return body.replace(THUMBNAILS_TOKEN, "u" * url_length).replace(RUN_URL_TOKEN, "r" * url_length)


def summary_rows(body: str) -> list[str]:
    """The rows of the summary table (case | verdict | … | reason)."""
    lines = body.splitlines()
    start = lines.index("| case | verdict | phash16 | mean abs | SSIM | reason |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows.append(line)
    return rows


def test_a_report_whose_cases_are_all_identical_has_no_comment_and_leaves_no_file(
    golden_set: GoldenSet, tmp_path: Path
) -> None:
    report = report_of(golden_set, [case(golden_set, "t2i-euler", tmp_path), case(golden_set, "t2i-euler-a", tmp_path)])
    assert {v.verdict for v in report.verdicts} == {Verdict.IDENTICAL}
    # what an earlier run left in the folder would be posted again: it goes
    (tmp_path / COMMENT_NAME).write_text(f"{MARKER}\nold\n")
    (tmp_path / THUMBNAILS_DIR).mkdir()
    (tmp_path / THUMBNAILS_DIR / "old-0-golden.png").write_bytes(b"old")

    assert render_pr_comment(report, tmp_path / "thumbnails") is None
    assert not (tmp_path / "thumbnails").exists()
    assert write_pr_comment(report, tmp_path) is None
    assert not (tmp_path / COMMENT_NAME).exists()
    assert not (tmp_path / THUMBNAILS_DIR).exists()


def test_one_changed_case_is_the_only_one_listed_with_its_three_thumbnails_on_disk(
    golden_set: GoldenSet, tmp_path: Path
) -> None:
    report = report_of(
        golden_set,
        [case(golden_set, "t2i-euler", tmp_path, change=True, reason="image 0: beyond tolerance"),
         case(golden_set, "t2i-euler-a", tmp_path)],
    )  # fmt: skip

    path = write_pr_comment(report, tmp_path)

    assert path == tmp_path / COMMENT_NAME
    body = path.read_text(encoding="utf-8")
    assert body.splitlines()[0] == MARKER
    assert body.count(MARKER) == 1
    [row] = summary_rows(body)
    assert row.startswith("| t2i-euler | **changed** | ")
    assert "image 0: beyond tolerance" in row
    assert "t2i-euler-a" not in body
    names = IMAGE_LINK.findall(body)
    assert names == ["t2i-euler-0-golden.png", "t2i-euler-0-actual.png", "t2i-euler-0-diff.png"]
    assert sorted(p.name for p in (tmp_path / THUMBNAILS_DIR).iterdir()) == sorted(names)
    golden = golden_set.load_image(*golden_set.entries["t2i-euler"].images[0])
    for name in names:
        with Image.open(tmp_path / THUMBNAILS_DIR / name) as thumbnail:
            assert thumbnail.format == "PNG"
            assert thumbnail.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE)  # 64 px scaled up twice
    with Image.open(tmp_path / THUMBNAILS_DIR / "t2i-euler-0-golden.png") as thumbnail:
        # NEAREST: each golden pixel becomes a 2x2 block of the same colour
        assert thumbnail.convert("RGB").getpixel((21, 41)) == golden.getpixel((10, 20))
    assert RUN_URL_TOKEN in body  # where the full report is

    # the same report gives the same comment and the same thumbnail bytes
    again = tmp_path / "again"
    write_pr_comment(report, again)
    assert (again / COMMENT_NAME).read_text(encoding="utf-8") == body
    for name in names:
        assert (again / THUMBNAILS_DIR / name).read_bytes() == (tmp_path / THUMBNAILS_DIR / name).read_bytes()


def test_a_long_comment_is_cut_to_the_limit_and_says_how_many_cases_it_left_out(
    golden_set: GoldenSet, tmp_path: Path
) -> None:
    changed = case(golden_set, "t2i-euler", tmp_path, change=True)
    reason = "image 0: phash16, mean abs, SSIM beyond tolerance — " + "a long explanation " * 20
    verdicts = [
        CaseVerdict(f"case-{number:03d}", Verdict.CHANGED, changed.images, reason=reason) for number in range(300)
    ]
    thumbnails = tmp_path / "thumbnails"

    body = render_pr_comment(report_of(golden_set, verdicts), thumbnails)

    assert body is not None
    assert len(posted(body)) <= COMMENT_LIMIT
    shown = summary_rows(body)
    assert 10 < len(shown) < 300
    assert [row.split(" | ")[0] for row in shown] == [f"| case-{number:03d}" for number in range(len(shown))]
    assert f"**{300 - len(shown)} more cases not shown**" in body
    assert "full report" in body
    # thumbnails only for the cases shown, and each one the comment names exists
    names = IMAGE_LINK.findall(body)
    assert len(names) == 3 * len(shown)
    assert sorted(p.name for p in thumbnails.iterdir()) == sorted(names)


def test_a_hostile_case_id_and_reason_cannot_change_the_comments_layout(golden_set: GoldenSet, tmp_path: Path) -> None:
    hostile_reason = (
        "a | b <img src=x onerror=alert(1)> `code` [link](https://example.com) *bold* $x$ {{SERENA_THUMBNAILS}} "
        f"{MARKER} \\|\n| forged | row | with | cells | here | too |\r\n\u202eevil"
    )
    hostile_id = "evil|`id`<b>[x](y)"
    changed = case(golden_set, "t2i-euler", tmp_path, change=True)
    verdict = CaseVerdict(hostile_id, Verdict.CHANGED, changed.images, reason=hostile_reason)

    body = render_pr_comment(report_of(golden_set, [verdict]), tmp_path / "thumbnails")

    assert body is not None
    [row] = summary_rows(body)
    cells = re.split(r"(?<!\\)\|", row)[1:-1]  # a cell ends at an unescaped pipe only
    assert len(cells) == 6, row
    assert cells[0].strip() == r"evil\|\`id\`&lt;b&gt;\[x\](y)"
    for raw in ("<img", "<b>", "`code`", "[link]", "*bold*", "$x$", "\u202e"):
        assert raw not in body, raw
    assert body.count(MARKER) == 1
    assert body.count(THUMBNAILS_TOKEN) == len(IMAGE_LINK.findall(body)) == 3  # only the thumbnails' own links
    assert "| forged |" not in body
    # file names keep only letters, digits, `_` and `-`
    assert sorted(p.name for p in (tmp_path / "thumbnails").iterdir()) == [
        f"evil__id__b__x__y_-0-{role}.png" for role in ("actual", "diff", "golden")
    ]


def test_a_run_with_nothing_identical_to_say_still_comments_when_it_did_not_pass(
    golden_set: GoldenSet, tmp_path: Path
) -> None:
    """No case ran (inconclusive) and an unused golden (failed): neither is a silent pass."""
    nothing_ran = render_pr_comment(report_of(golden_set, []), tmp_path / "a")
    assert nothing_ran is not None and "inconclusive" in nothing_ran and "no case selected" in nothing_ran
    unused = render_pr_comment(report_of(golden_set, [case(golden_set, "t2i-euler", tmp_path)], ["gone"]), tmp_path)
    assert unused is not None
    assert summary_rows(unused) == ["| gone | **unused** | — | — | — | recorded but not run |"]


# -- a real run ----------------------------------------------------------------------------------------------------


@pytest.fixture
def golden_copy(tmp_path: Path) -> HarnessConfig:
    """The shipped cases and cpu-fp32 set, copied so a run cannot touch them."""
    shutil.copytree(REPO_ROOT / "harness" / "cases", tmp_path / "cases")
    shutil.copytree(GOLDENS / "cpu-fp32", tmp_path / "goldens" / "cpu-fp32")
    return load_config(
        REPO_ROOT,
        {"golden.cases_dir": str(tmp_path / "cases"), "golden.goldens_dir": str(tmp_path / "goldens")},
        environ={},
    )


def test_a_seed_change_in_one_case_of_a_real_run_gives_a_comment_on_that_case_beside_the_merged_report(
    golden_copy: HarnessConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """run → shard report folder → merge → merged report folder, as CI does; the comment comes from the last."""
    original = serena.processing.process_images_inner

    def seed_bumped_for_t2i_euler(p):
        if p.seed == 101:  # t2i-euler's seed (t2i-euler-a has 102)
            p.seed += 1
        return original(p)

    monkeypatch.setattr(serena.processing, "process_images_inner", seed_bumped_for_t2i_euler)
    shard = tmp_path / "shard"
    write_golden_report(run_goldens(golden_copy, selection=Selection(("t2i-euler", "t2i-euler-a"))), shard)
    merged = GoldenReport.merge([read_report(shard)])
    folder = tmp_path / "merged"
    write_golden_report(merged, folder)

    path = write_pr_comment(merged, folder)

    verdicts = {v.case_id: v.verdict for v in merged.verdicts}
    assert verdicts["t2i-euler"] is Verdict.CHANGED
    listed = {row.split(" | ")[0].removeprefix("| ") for row in summary_rows(path.read_text(encoding="utf-8"))}
    # t2i-euler-a is identical on the recording's CPU model, and may be equivalent on another
    assert listed == {case_id for case_id, verdict in verdicts.items() if verdict is not Verdict.IDENTICAL}
    assert "t2i-euler" in listed
    body = path.read_text(encoding="utf-8")
    assert body.startswith(MARKER + "\n")
    for role in ("golden", "actual", "diff"):
        name = f"t2i-euler-0-{role}.png"
        assert f"({THUMBNAILS_TOKEN}/{name})" in body
        assert (folder / THUMBNAILS_DIR / name).is_file()
