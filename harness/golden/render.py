"""Renderers of a golden report: terminal, JSON, JUnit XML, Markdown and self-contained HTML, each taking it whole."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness.golden.compare import PASSING, CaseVerdict, ImageComparison, Verdict
from harness.golden.document import document_text
from harness.golden.report import REPORT_PNG_LEVEL, GoldenReport, UpdateChange

_TIER_COLOURS = {
    "identical": "#1a7f37",
    "equivalent": "#4c9a2a",
    "drifted": "#bc4c00",
    "changed": "#cf222e",
    "stale": "#bf8700",
    "missing": "#bf8700",
    "unused": "#8250df",
    "degenerate": "#cf222e",
    "skipped": "#6e7781",
    "errored": "#a40e26",
}


# Figures at the precision golden.json keeps them, so a report renders the same live and read back from disk.
def _mean_abs(image: ImageComparison) -> float | None:
    return None if image.mean_abs is None else round(image.mean_abs, 4)


def _case_seconds(verdict: CaseVerdict) -> float | None:
    return None if verdict.seconds is None else round(verdict.seconds, 4)


def _run_seconds(report: GoldenReport) -> float:
    return round(report.seconds, 3)


def _notes(verdict: CaseVerdict) -> list[str]:
    """The case's quarantine, its reason and where it diverged, whichever it has."""
    divergence = verdict.divergence.describe() if verdict.divergence else None
    reference = f"judged against the {verdict.reference}" if verdict.reference else None
    return [text for text in (verdict.quarantine_note(), reference, verdict.reason, divergence) if text]


def _counts_text(report: GoldenReport) -> str:
    return ", ".join(f"{n} {name}" for name, n in report.counts().items() if n)


def _ssim(image: ImageComparison) -> float | None:
    return None if image.ssim is None else round(image.ssim, 6)


def _worst_image(verdict: CaseVerdict) -> ImageComparison | None:
    measured = [image for image in verdict.images if image.phash_distance is not None]
    key = lambda i: (i.phash_distance, _mean_abs(i) or 0, -(_ssim(i) or 1.0))  # noqa: E731
    return max(measured, key=key) if measured else None


def _image_distances(image: ImageComparison) -> str:
    parts = [f"{image.phash_distance} bits", f"{_mean_abs(image):.3f}"]
    similarity = _ssim(image)
    if similarity is not None:
        parts.append(f"{similarity:.4f}")
    return ", ".join(parts)


def _distance_text(verdict: CaseVerdict) -> str:
    image = _worst_image(verdict)
    return "-" if image is None else _image_distances(image)


def _tolerance_text(report: GoldenReport, le: str = "<=", ge: str = ">=") -> str:
    tol = report.tolerances
    return f"phash16 {le} {tol.phash_bits} bits, mean abs {le} {tol.mean_abs:g}, SSIM {ge} {tol.ssim:g}"


def render_terminal(report: GoldenReport) -> str:
    width = max([len(v.case_id) for v in report.verdicts] + [4])
    lines = [
        f"golden set {report.environment_key} ({report.golden_dir}); tolerance {_tolerance_text(report)}",
        f"{'case'.ljust(width)}  {'verdict':<10}  {'phash16, mean abs, SSIM':<26}  seconds",
    ]
    for verdict in report.verdicts:
        case_seconds = _case_seconds(verdict)
        seconds = f"{case_seconds:.3f}" if case_seconds is not None else "-"
        lines.append(
            f"{verdict.case_id.ljust(width)}  {verdict.verdict!s:<10}  {_distance_text(verdict):<26}  {seconds}"
        )
        if verdict.verdict not in PASSING or verdict.quarantine is not None or verdict.reference:
            lines.extend(f"{' ' * width}    {note}" for note in _notes(verdict))
    for case_id in report.unused:
        lines.append(f"{case_id.ljust(width)}  {'unused':<10}  recorded but not run")
    lines.append(f"{report.outcome()}: {_counts_text(report) or 'nothing ran'} in {_run_seconds(report):.2f} s")
    if report.updated:
        lines.append(f"recorded: {', '.join(report.updated)}")
    lines.extend(f"  {_change_text(change)}" for change in report.changes)
    return "\n".join(lines) + "\n"


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "—"


def _change_distances(change: UpdateChange) -> str:
    if change.phash_distance is None:
        return ""
    text = f"phash16 {change.phash_distance} bits, mean abs {change.mean_abs:.3f}"
    return text + ("" if change.ssim is None else f", SSIM {change.ssim:.4f}")


def _change_text(change: UpdateChange) -> str:
    where = change.case_id if change.index is None else f"{change.case_id} #{change.index}"
    if change.action == "removed":
        return f"{where}: removed ({change.note})" if change.note else f"{where}: removed"
    parts = [f"{where}: {change.action} {_short(change.old_sha256)} → {_short(change.new_sha256)}"]
    if change.verdict:
        parts.append(f"was {change.verdict}")
    if distances := _change_distances(change):
        parts.append(distances)
    if change.note:
        parts.append(change.note)
    return "; ".join(parts)


def render_update_markdown(report: GoldenReport) -> str:
    """What a golden update wrote, for the reviewer: case, image, old → new pixel hash, distances."""
    lines = [f"### Golden update — {report.environment_key}", ""]
    if not report.changes:
        lines.append(
            "Nothing written: every selected golden is identical or within tolerance (use --force to rewrite)."
        )
        return "\n".join(lines) + "\n"
    lines += [
        "| case | image | change | old pixels | new pixels | verdict before | phash16 | mean abs | SSIM | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for change in report.changes:
        cells = [
            f"`{change.case_id}`",
            "—" if change.index is None else str(change.index),
            change.action,
            f"`{_short(change.old_sha256)}`" if change.old_sha256 else "—",
            f"`{_short(change.new_sha256)}`" if change.new_sha256 else "—",
            change.verdict or "—",
            "—" if change.phash_distance is None else str(change.phash_distance),
            "—" if change.mean_abs is None else f"{change.mean_abs:.3f}",
            "—" if change.ssim is None else f"{change.ssim:.4f}",
            (change.note or "").replace("|", "∣"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    kept = sum(len(v.images) for v in report.verdicts if v.case_id not in report.updated)
    lines += ["", f"{len(report.changes)} changes; {kept} images of cases not re-recorded left as they were."]
    return "\n".join(lines) + "\n"


def render_json(report: GoldenReport) -> str:
    return document_text(report)


def render_junit(report: GoldenReport) -> str:
    suite = ET.Element("testsuite", name=f"serena-golden-{report.environment_key}")
    failures = skipped = 0
    failing = {verdict.case_id for verdict in report.failing()}
    for verdict in report.verdicts:
        node = ET.SubElement(suite, "testcase", classname="golden", name=verdict.case_id)
        case_seconds = _case_seconds(verdict)
        if case_seconds is not None:
            node.set("time", f"{case_seconds:.3f}")
        divergence = verdict.divergence.describe() if verdict.divergence else ""
        quarantine = verdict.quarantine_note() or ""
        message = f"{verdict.verdict}: {verdict.reason or ''} {divergence} {quarantine}".strip()
        if verdict.verdict is Verdict.SKIPPED:
            skipped += 1
            ET.SubElement(node, "skipped", message=verdict.reason or "skipped")
        elif verdict.case_id in failing:
            failures += 1
            ET.SubElement(node, "failure", message=message, type=str(verdict.verdict))
        elif verdict.quarantined and verdict.verdict not in PASSING:
            skipped += 1  # reported, not failing: the way test runners show a quarantined test
            ET.SubElement(node, "skipped", message=message)
        else:
            ET.SubElement(node, "system-out").text = f"{verdict.verdict} ({_distance_text(verdict)})"
    for case_id in report.unused:
        node = ET.SubElement(suite, "testcase", classname="golden", name=case_id)
        if report.warn_unused:
            ET.SubElement(node, "system-out").text = "unused golden (warning)"
        else:
            failures += 1
            ET.SubElement(node, "failure", message="unused golden: recorded but not run", type="unused")
    suite.set("tests", str(len(report.verdicts) + len(report.unused)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode") + "\n"


def render_markdown(report: GoldenReport) -> str:
    lines = [
        f"### Golden outputs — {report.outcome()} ({report.environment_key})",
        "",
        f"Tolerance: {_tolerance_text(report, '≤', '≥')}.",
        "",
        "| case | verdict | phash16, mean abs, SSIM | note |",
        "| --- | --- | --- | --- |",
    ]
    for verdict in report.verdicts:
        note = " ".join(_notes(verdict)).replace("|", "∣")
        lines.append(f"| `{verdict.case_id}` | **{verdict.verdict}** | {_distance_text(verdict)} | {note} |")
    for case_id in report.unused:
        lines.append(f"| `{case_id}` | **unused** | - | recorded but not run |")
    lines += ["", f"{_counts_text(report) or 'nothing ran'} in {_run_seconds(report):.2f} s."]
    return "\n".join(lines) + "\n"


def _data_uri(image: Any) -> str:
    """The image at its own size: the page scales it up without smoothing (CSS image-rendering: pixelated), so the
    report embeds each pixel once instead of sixteen times."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=REPORT_PNG_LEVEL)
    return _bytes_uri(buffer.getvalue(), "image/png")


def _bytes_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class _Picture:
    """An image file read once: its pixels (for the difference) and, as it lies on disk, its data URI."""

    image: Any
    uri: str


def _load(path: Path) -> Any | None:
    picture = _read(path)
    return None if picture is None else picture.image


def _read(path: Path) -> _Picture | None:
    """The file's RGB pixels and a data URI of them: an RGB PNG (what the harness writes) embedded as it lies on disk,
    anything else re-encoded from the RGB pixels; None when it is missing or does not decode."""
    from PIL import Image

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            kind = image.format
            rgb = image.convert("RGB")
    except (OSError, ValueError):
        return None
    if kind == "PNG" and image.mode == "RGB":
        return _Picture(rgb, _bytes_uri(data, "image/png"))
    return _Picture(rgb, _data_uri(rgb))


def render_html(report: GoldenReport) -> str:
    """One self-contained page: per image golden | actual | difference heatmap, with distances and verdict tier."""
    from harness.golden.measures import heatmap

    golden_dir = Path(report.golden_dir)
    outcome = str(report.outcome())
    rows = []
    for verdict in report.verdicts:
        colour = _TIER_COLOURS.get(str(verdict.verdict), "#000")
        notes = " ".join(_notes(verdict))
        case_name = html.escape(verdict.case_id)
        cells = []
        for image in verdict.images:
            golden = _read(golden_dir / image.golden_file) if image.golden_file else None
            actual = _read(image.actual_file) if image.actual_file is not None else None
            figures = []
            for label, picture in (("golden", golden), ("actual", actual)):
                if picture is None:
                    figures.append(
                        f'<figure class="none"><div>no {label} image</div><figcaption>{label}</figcaption></figure>'
                    )
                else:
                    figures.append(
                        f'<figure><img alt="{label} {case_name} #{image.index}" '
                        f'src="{picture.uri}"><figcaption>{label}</figcaption></figure>'
                    )
            if golden is not None and actual is not None:
                figures.append(
                    f'<figure><img alt="difference {case_name} #{image.index}" '
                    f'src="{_data_uri(heatmap(golden.image, actual.image))}"><figcaption>difference ×8</figcaption>'
                    "</figure>"
                )
            distance = (
                f"phash16 {image.phash_distance} bits · mean abs {_mean_abs(image):.3f}"
                + ("" if image.ssim is None else f" · SSIM {_ssim(image):.4f}")
                if image.phash_distance is not None
                else ""
            )
            cells.append(
                f'<div class="image"><div class="figures">{"".join(figures)}</div>'
                f"<p>image {image.index} — <b>{image.verdict}</b> {distance}</p></div>"
            )
        rows.append(
            f'<section class="case" data-verdict="{verdict.verdict}">'
            f'<h2><span class="tier" style="background:{colour}">{verdict.verdict}</span> '
            f"{case_name}</h2>"
            f'<p class="note">{html.escape(notes)}</p>{"".join(cells)}</section>'
        )
    for case_id in report.unused:
        rows.append(
            f'<section class="case" data-verdict="unused"><h2><span class="tier" style="background:'
            f'{_TIER_COLOURS["unused"]}">unused</span> {html.escape(case_id)}</h2><p class="note">recorded, not run</p>'
            "</section>"
        )
    counts = _counts_text(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Serena golden report — {html.escape(outcome)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2328; }}
.summary {{ padding: 12px; border-radius: 6px; background: #f6f8fa; }}
.case {{ border-top: 1px solid #d0d7de; padding: 8px 0; }}
.tier {{ color: #fff; border-radius: 4px; padding: 2px 8px; font-size: 12px; text-transform: uppercase; }}
.figures {{ display: flex; gap: 12px; }}
figure {{ margin: 0; text-align: center; }}
figure img {{ image-rendering: pixelated; width: 192px; border: 1px solid #d0d7de; }}
figure.none div {{ width: 192px; height: 192px; display: grid; place-items: center; background: #eee; }}
.note {{ color: #57606a; }}
#broken {{ display: none; color: #cf222e; font-weight: bold; }}
</style></head>
<body data-images-loaded="pending">
<h1>Golden outputs: {html.escape(outcome)}</h1>
<div class="summary">Environment <b>{html.escape(report.environment_key)}</b> ·
tolerance {html.escape(_tolerance_text(report, "≤", "≥"))} · {html.escape(counts or "nothing ran")}
in {_run_seconds(report):.2f} s</div>
<p id="broken">Some images in this report failed to render.</p>
{"".join(rows)}
<script>
// Report whether every embedded image decoded, for readers and for automated checks.
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (img) {{ return img.complete && img.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + images.length);
  if (ok !== images.length) {{ document.getElementById("broken").style.display = "block"; }}
}});
</script>
</body></html>
"""


RENDERERS = {
    "terminal": render_terminal,
    "json": render_json,
    "junit": render_junit,
    "markdown": render_markdown,
    "html": render_html,
}
