"""A golden report folder: golden.json, the actual images under actual/, golden.html, .junit.xml and .md, and the
pull-request comment (golden-comment.md and comment-thumbnails/) when a case is not identical.

The folder always holds every format, so CI can publish whichever it needs and `golden report` can render any of
them later.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import GoldenError
from harness.golden.comment import write_pr_comment
from harness.golden.compare import ImageComparison
from harness.golden.document import write_document
from harness.golden.render import render_html, render_junit, render_markdown
from harness.golden.report import ACTUAL_DIR, REPORT_PNG_LEVEL, GoldenReport
from harness.output import atomic_write, write_output

HTML_NAME = "golden.html"
JUNIT_NAME = "golden.junit.xml"
MARKDOWN_NAME = "golden.md"


def write_golden_report(report: GoldenReport, folder: Path) -> Path:
    """Write the whole report folder; returns the path of its golden.json.

    Actual images come from the run (in memory) or, for a report read back or merged from shards, from the files
    its images point at. Afterwards every image of `report` points at its file in `folder/actual/`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pictures = _actual_pictures(report)  # read before actual/ is replaced: a source may lie inside it
    actual = folder / ACTUAL_DIR
    if actual.exists():
        shutil.rmtree(actual)
    actual.mkdir()
    for name, (write, images) in pictures.items():
        path = actual / name
        atomic_write(path, write)
        for image in images:
            image.actual_file = path
    json_path = write_document(report, folder)
    write_output(render_html(report), folder / HTML_NAME)
    write_output(render_junit(report), folder / JUNIT_NAME)
    write_output(render_markdown(report), folder / MARKDOWN_NAME)
    write_pr_comment(report, folder)  # golden-comment.md and its thumbnails, when a case is not identical
    return json_path


Writer = Callable[[BinaryIO], Any]


def _actual_pictures(report: GoldenReport) -> dict[str, tuple[Writer, list[ImageComparison]]]:
    """File name under actual/ → (how to write the PNG, the image comparisons that show it)."""
    pictures: dict[str, tuple[Writer, list[ImageComparison]]] = {}
    for verdict in report.verdicts:
        if verdict.run is not None:
            # every image the run made, compared or not (a stale case has no comparisons but still has pictures)
            for index, picture in enumerate(verdict.run.images):
                shown = [image for image in verdict.images if image.index == index]
                pictures[f"{verdict.case_id}-{index}.png"] = (_png_writer(picture), shown)
            continue
        for image in verdict.images:
            if image.actual_file is not None:
                try:
                    data = image.actual_file.read_bytes()
                except OSError as exc:
                    raise GoldenError(f"{image.actual_file}: actual image of the report unreadable ({exc})") from None
                pictures[image.actual_file.name] = (_bytes_writer(data), [image])
    return pictures


def _png_writer(picture: Any) -> Writer:
    return lambda handle: picture.save(handle, "PNG", compress_level=REPORT_PNG_LEVEL)


def _bytes_writer(data: bytes) -> Writer:
    return lambda handle: handle.write(data)
