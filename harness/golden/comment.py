"""The pull-request comment of a golden run: every case that is not identical, with golden | actual | difference
thumbnails written as small PNG files beside it.

GitHub comments do not show `data:` URIs, so the thumbnails are files that the posting workflow
(.github/workflows/pr-comment.yml) publishes. The Markdown names them under the placeholder `{{SERENA_THUMBNAILS}}/`
and links the workflow run as `{{SERENA_RUN_URL}}`; that workflow replaces both. The first line is a hidden marker
by which it finds its earlier comment and updates it instead of adding another. Every text that comes from a case
(its id, its reason) is escaped, so a case cannot change the comment's layout or add HTML to it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from harness.golden.compare import CaseVerdict, ImageComparison, Verdict
from harness.golden.measures import heatmap
from harness.golden.report import REPORT_PNG_LEVEL, GoldenReport
from harness.outcome import Outcome
from harness.output import atomic_write, atomic_write_text

MARKER = "<!-- serena-golden-comment -->"
THUMBNAILS_TOKEN = "{{SERENA_THUMBNAILS}}"  # the posting workflow puts the base URL of the published thumbnails here
RUN_URL_TOKEN = "{{SERENA_RUN_URL}}"  # … and the address of the workflow run (its artifacts hold the full report)
COMMENT_NAME = "golden-comment.md"
THUMBNAILS_DIR = "comment-thumbnails"
COMMENT_LIMIT = 65_536  # GitHub's limit on a comment's body, in characters
TOKEN_URL_ALLOWANCE = 256  # the longest URL a placeholder may become; the workflow refuses longer ones
THUMBNAIL_SIDE = 128  # 64 px images are scaled up (NEAREST, whole pixels) until their longest side reaches this
DIFFERENCE_SCALE = 8.0
CASE_ID_LIMIT = 100
REASON_LIMIT = 600

# What could start a link, an image, emphasis, code, math, strikethrough or a new table cell inside a cell; `&`, `<`
# and `>` become entities instead (HTML), and `{` `}` also break a placeholder a case might carry.
_MARKDOWN_SIGNIFICANT = re.compile(r"([\\`*_{}\[\]!|~$])")
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9_-]")
_ROLE_NAMES = {"golden": "golden", "actual": "actual", "diff": "difference"}
_EXPLANATIONS = {
    Verdict.EQUIVALENT: "within the set's tolerance, on another machine class than the one it was recorded on",
    Verdict.UNUSED: "recorded but not run",
}


@dataclass(frozen=True)
class _Thumbnail:
    name: str
    picture: Callable[[], Any]  # makes the full-size PIL image, only for the cases the comment shows


@dataclass(frozen=True)
class _Entry:
    """One listed case: its summary row, its picture rows, and the thumbnails those rows show."""

    row: str
    picture_rows: tuple[str, ...]
    thumbnails: tuple[_Thumbnail, ...]

    def posted_length(self) -> int:
        return sum(_posted_length(line) + 1 for line in (self.row, *self.picture_rows))


def render_pr_comment(report: GoldenReport, thumbnails_dir: Path) -> str | None:
    """The comment's Markdown, with the thumbnails of the cases it shows written into `thumbnails_dir`; None (and
    nothing written) when every case is identical and the run passed.

    Failing cases come first; when the comment would pass GitHub's size limit, the cases at the end are left out
    and a line says how many.
    """
    listed = _listed(report)
    if not listed and report.outcome() is Outcome.PASSED:
        return None
    stems: set[str] = set()
    entries = [_entry(report, item, stems) for item in listed]
    shown = _fit(report, entries)
    body = _assemble(report, shown, left_out=len(entries) - len(shown))
    for entry in shown:
        for thumbnail in entry.thumbnails:
            _write_png(thumbnails_dir / thumbnail.name, _thumbnail(thumbnail.picture()))
    return body


def write_pr_comment(report: GoldenReport, folder: Path) -> Path | None:
    """Write `folder/golden-comment.md` and its `folder/comment-thumbnails/`; returns the comment's path, or None
    when there is nothing to say. A comment an earlier run left in `folder` is removed either way: it would be
    posted again."""
    comment_path = folder / COMMENT_NAME
    thumbnails_dir = folder / THUMBNAILS_DIR
    comment_path.unlink(missing_ok=True)
    if thumbnails_dir.exists():
        shutil.rmtree(thumbnails_dir)
    body = render_pr_comment(report, thumbnails_dir)
    if body is None:
        return None
    atomic_write_text(comment_path, body)  # after the thumbnails: a comment never names a file not yet written
    return comment_path


# -- what is listed, and in which order ------------------------------------------------------------------------


def _listed(report: GoldenReport) -> list[CaseVerdict | str]:
    """The verdicts that are not identical (or fail: an expired quarantine) and the unused goldens, failing first."""
    failing = {verdict.case_id for verdict in report.failing()}
    items: list[tuple[bool, CaseVerdict | str]] = [
        (verdict.case_id in failing, verdict)
        for verdict in report.verdicts
        if verdict.verdict is not Verdict.IDENTICAL or verdict.case_id in failing
    ]
    items += [(not report.warn_unused, case_id) for case_id in report.unused]
    return [item for _fails, item in sorted(items, key=lambda pair: not pair[0])]  # a stable sort keeps the order


def _entry(report: GoldenReport, item: CaseVerdict | str, stems: set[str]) -> _Entry:
    if isinstance(item, str):
        cells = [_escape(item, CASE_ID_LIMIT), "**unused**", "—", "—", "—", _EXPLANATIONS[Verdict.UNUSED]]
        return _Entry(_table_row(cells), (), ())
    stem = _file_stem(item.case_id, stems)
    worst = _worst_image(item)
    label = f"**{item.verdict}**" + (" (quarantined)" if item.quarantined else "")
    cells = [
        _escape(item.case_id, CASE_ID_LIMIT),
        label,
        "—" if worst is None else f"{worst.phash_distance} bits",
        "—" if worst is None or worst.mean_abs is None else f"{worst.mean_abs:.3f}",
        "—" if worst is None or worst.ssim is None else f"{worst.ssim:.4f}",
        _escape(_reason(item), REASON_LIMIT),
    ]
    picture_rows = []
    thumbnails: list[_Thumbnail] = []
    for image in item.images:
        if image.verdict is Verdict.IDENTICAL:
            continue
        golden = _load(Path(report.golden_dir) / image.golden_file) if image.golden_file else None
        actual = _actual_picture(item, image)
        if golden is None and actual is None:
            continue
        pictures: dict[str, Callable[[], Any] | None] = {
            "golden": None if golden is None else partial(_as_is, golden),
            "actual": None if actual is None else partial(_as_is, actual),
            "diff": None if golden is None or actual is None else partial(heatmap, golden, actual, DIFFERENCE_SCALE),
        }
        picture_cells = [_escape(item.case_id, CASE_ID_LIMIT), f"{image.index}: {image.verdict}"]
        for role, picture in pictures.items():
            if picture is None:
                picture_cells.append("—")
                continue
            name = f"{stem}-{image.index}-{role}.png"
            thumbnails.append(_Thumbnail(name, picture))
            alt = f"{_ROLE_NAMES[role]} {_escape(stem)} {image.index}"
            picture_cells.append(f"![{alt}]({THUMBNAILS_TOKEN}/{name})")
        picture_rows.append(_table_row(picture_cells))
    return _Entry(_table_row(cells), tuple(picture_rows), tuple(thumbnails))


def _reason(verdict: CaseVerdict) -> str:
    divergence = verdict.divergence.describe() if verdict.divergence else None
    notes = [text for text in (verdict.quarantine_note(), verdict.reason, divergence) if text]
    return " ".join(notes) or _EXPLANATIONS.get(verdict.verdict, "—")


def _worst_image(verdict: CaseVerdict) -> ImageComparison | None:
    measured = [image for image in verdict.images if image.phash_distance is not None]
    if not measured:
        return None
    return max(measured, key=lambda i: (i.phash_distance, i.mean_abs or 0.0, -(i.ssim if i.ssim is not None else 1)))


# -- the Markdown, within the size limit -----------------------------------------------------------------------

_SUMMARY_HEAD = ("| case | verdict | phash16 | mean abs | SSIM | reason |", "| --- | --- | --- | --- | --- | --- |")
_PICTURES_HEAD = ("| case | image | golden | actual | difference ×8 |", "| --- | --- | --- | --- | --- |")


def _assemble(report: GoldenReport, shown: list[_Entry], *, left_out: int) -> str:
    listed = len(shown) + left_out
    total = len(report.verdicts) + len(report.unused)
    counts = ", ".join(f"{n} {name}" for name, n in report.counts().items() if n and name != str(Verdict.IDENTICAL))
    tol = report.tolerances
    lines = [
        MARKER,
        f"### Golden outputs: {report.outcome()} ({_escape(report.environment_key, CASE_ID_LIMIT)})",
        "",
        f"{listed} of {total} cases not identical" + (f" ({counts})" if counts else "") + ". "
        f"Tolerance: phash16 ≤ {tol.phash_bits} bits, mean abs ≤ {tol.mean_abs:g}, SSIM ≥ {tol.ssim:g}.",
    ]
    if reason := report.reason():
        lines += ["", f"**{report.outcome()}:** {_escape(reason, REASON_LIMIT)}"]
    if shown:
        lines += ["", *_SUMMARY_HEAD, *(entry.row for entry in shown)]
    picture_rows = [row for entry in shown for row in entry.picture_rows]
    if picture_rows:
        lines += ["", *_PICTURES_HEAD, *picture_rows]
    if left_out:
        cases = "case" if left_out == 1 else "cases"
        lines += [
            "",
            f"**{left_out} more {cases} not shown**: a comment holds at most {COMMENT_LIMIT} characters. "
            "Every case is in the full report.",
        ]
    lines += ["", f"Full report: `golden.html` in the golden report artifact of [the workflow run]({RUN_URL_TOKEN})."]
    return "\n".join(lines) + "\n"


def _fit(report: GoldenReport, entries: list[_Entry]) -> list[_Entry]:
    """The longest prefix of `entries` whose comment, once its placeholders are replaced, stays within the limit."""
    fixed = _posted_length(_assemble(report, [], left_out=len(entries)))
    fixed += sum(len(line) + 1 for line in ("", *_SUMMARY_HEAD, "", *_PICTURES_HEAD))
    shown: list[_Entry] = []
    used = fixed
    for entry in entries:
        used += entry.posted_length()
        if used > COMMENT_LIMIT:
            break
        shown.append(entry)
    # the estimate above is an upper bound; the assembled text is what counts
    while shown and _posted_length(_assemble(report, shown, left_out=len(entries) - len(shown))) > COMMENT_LIMIT:
        shown.pop()
    return shown


def _posted_length(text: str) -> int:
    """The length `text` may reach once the workflow has replaced its placeholders with URLs."""
    grown = sum(text.count(token) * (TOKEN_URL_ALLOWANCE - len(token)) for token in (THUMBNAILS_TOKEN, RUN_URL_TOKEN))
    return len(text) + grown


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _escape(text: str, limit: int | None = None) -> str:
    """`text` as literal Markdown on one line: no table cell ends, no HTML, link, image, code, emphasis or math."""
    flat = "".join(char for char in " ".join(text.split()) if char.isprintable())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SIGNIFICANT.sub(r"\\\1", flat)


# -- thumbnails ----------------------------------------------------------------------------------------------------


def _file_stem(case_id: str, taken: set[str]) -> str:
    """A file name part for the case: its id with anything but letters, digits, `_` and `-` replaced, unique."""
    base = _UNSAFE_IN_FILE_NAME.sub("_", case_id)[:CASE_ID_LIMIT] or "case"
    stem, number = base, 1
    while stem in taken:
        number += 1
        stem = f"{base}-{number}"
    taken.add(stem)
    return stem


def _actual_picture(verdict: CaseVerdict, image: ImageComparison) -> Any | None:
    """The actual image: its file in a report folder, else the run's picture in memory."""
    if image.actual_file is not None:
        return _load(image.actual_file)
    if verdict.run is not None and image.index < len(verdict.run.images):
        return verdict.run.images[image.index].convert("RGB")
    return None


def _as_is(picture: Any) -> Any:
    return picture


def _load(path: Path) -> Any | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError):
        return None


def _thumbnail(image: Any) -> Any:
    """Small images scaled up by whole pixels (NEAREST keeps them sharp), large ones scaled down to the side."""
    from PIL import Image

    longest = max(image.size)
    if 0 < longest < THUMBNAIL_SIDE:
        factor = -(-THUMBNAIL_SIDE // longest)
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    if longest > THUMBNAIL_SIDE:
        scaled = image.copy()
        scaled.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
        return scaled
    return image


def _write_png(path: Path, image: Any) -> None:
    atomic_write(path, lambda handle: image.save(handle, "PNG", compress_level=REPORT_PNG_LEVEL))
