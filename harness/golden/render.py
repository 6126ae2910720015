"""Renderers of a golden report document: terminal, JSON, JUnit XML, Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness.golden.compare import PASSING, Verdict

_TIER_COLOURS = {
    "identical": "#1a7f37",
    "equivalent": "#4c9a2a",
    "changed": "#cf222e",
    "stale": "#bf8700",
    "missing": "#bf8700",
    "unused": "#8250df",
    "degenerate": "#cf222e",
    "skipped": "#6e7781",
}


def _worst_image(case: dict[str, Any]) -> dict[str, Any] | None:
    measured = [i for i in case["images"] if i.get("phash_distance") is not None]
    return max(measured, key=lambda i: (i["phash_distance"], i["mean_abs"] or 0)) if measured else None


def _distance_text(case: dict[str, Any]) -> str:
    image = _worst_image(case)
    if image is None:
        return "-"
    return f"{image['phash_distance']} bits, {image['mean_abs']:.3f}"


def render_terminal(document: dict[str, Any]) -> str:
    width = max([len(c["case"]) for c in document["cases"]] + [4])
    tol = document["tolerances"]
    lines = [
        f"golden set {document['environment_key']} ({document['golden_dir']}); "
        f"tolerance phash16 <= {tol['phash_bits']} bits, mean abs <= {tol['mean_abs']:g}",
        f"{'case'.ljust(width)}  {'verdict':<10}  {'phash16, mean abs':<18}  seconds",
    ]
    for case in document["cases"]:
        seconds = f"{case['seconds']:.3f}" if case.get("seconds") is not None else "-"
        lines.append(f"{case['case'].ljust(width)}  {case['verdict']:<10}  {_distance_text(case):<18}  {seconds}")
        if Verdict(case["verdict"]) not in PASSING:
            if case.get("reason"):
                lines.append(f"{' ' * width}    {case['reason']}")
            if case.get("divergence"):
                lines.append(f"{' ' * width}    {case['divergence']}")
    for case_id in document["unused"]:
        lines.append(f"{case_id.ljust(width)}  {'unused':<10}  recorded but not run")
    counts = ", ".join(f"{n} {name}" for name, n in document["counts"].items() if n)
    lines.append(f"{document['outcome']}: {counts or 'nothing ran'} in {document['seconds']:.2f} s")
    if document.get("updated"):
        lines.append(f"recorded: {', '.join(document['updated'])}")
    return "\n".join(lines) + "\n"


def render_json(document: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in document.items() if not k.startswith("_")}, indent=2) + "\n"


def render_junit(document: dict[str, Any]) -> str:
    suite = ET.Element("testsuite", name=f"serena-golden-{document['environment_key']}")
    failures = skipped = 0
    for case in document["cases"]:
        node = ET.SubElement(suite, "testcase", classname="golden", name=case["case"])
        if case.get("seconds") is not None:
            node.set("time", f"{case['seconds']:.3f}")
        verdict = Verdict(case["verdict"])
        message = f"{verdict}: {case.get('reason') or ''} {case.get('divergence') or ''}".strip()
        if verdict is Verdict.SKIPPED:
            skipped += 1
            ET.SubElement(node, "skipped", message=case.get("reason") or "skipped")
        elif verdict not in PASSING and case["case"] not in document.get("updated", []):
            failures += 1
            ET.SubElement(node, "failure", message=message, type=str(verdict))
        else:
            ET.SubElement(node, "system-out").text = f"{verdict} ({_distance_text(case)})"
    for case_id in document["unused"]:
        node = ET.SubElement(suite, "testcase", classname="golden", name=case_id)
        if document["warn_unused"]:
            ET.SubElement(node, "system-out").text = "unused golden (warning)"
        else:
            failures += 1
            ET.SubElement(node, "failure", message="unused golden: recorded but not run", type="unused")
    suite.set("tests", str(len(document["cases"]) + len(document["unused"])))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode") + "\n"


def render_markdown(document: dict[str, Any]) -> str:
    tol = document["tolerances"]
    lines = [
        f"### Golden outputs — {document['outcome']} ({document['environment_key']})",
        "",
        f"Tolerance: phash16 ≤ {tol['phash_bits']} bits and mean abs ≤ {tol['mean_abs']:g}.",
        "",
        "| case | verdict | phash16, mean abs | note |",
        "| --- | --- | --- | --- |",
    ]
    for case in document["cases"]:
        note = " ".join(filter(None, [case.get("reason"), case.get("divergence")])).replace("|", "∣")
        lines.append(f"| `{case['case']}` | **{case['verdict']}** | {_distance_text(case)} | {note} |")
    for case_id in document["unused"]:
        lines.append(f"| `{case_id}` | **unused** | - | recorded but not run |")
    counts = ", ".join(f"{n} {name}" for name, n in document["counts"].items() if n)
    lines += ["", f"{counts or 'nothing ran'} in {document['seconds']:.2f} s."]
    return "\n".join(lines) + "\n"


def _data_uri(image: Any, scale: int = 4) -> str:
    from PIL import Image

    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _load(path: Path) -> Any | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError):
        return None


def render_html(document: dict[str, Any]) -> str:
    """One self-contained page: per image golden | actual | difference heatmap, with distances and verdict tier."""
    from harness.golden.measures import heatmap

    base_dir = Path(document.get("_base_dir", "."))
    golden_dir = Path(document["golden_dir"])
    tol = document["tolerances"]
    rows = []
    for case in document["cases"]:
        colour = _TIER_COLOURS.get(case["verdict"], "#000")
        notes = " ".join(filter(None, [case.get("reason"), case.get("divergence")]))
        cells = []
        for image in case["images"]:
            golden = _load(golden_dir / image["golden_file"]) if image.get("golden_file") else None
            actual = _load(base_dir / image["actual_file"]) if image.get("actual_file") else None
            figures = []
            for label, picture in (("golden", golden), ("actual", actual)):
                if picture is None:
                    figures.append(
                        f'<figure class="none"><div>no {label} image</div><figcaption>{label}</figcaption></figure>'
                    )
                else:
                    figures.append(
                        f'<figure><img alt="{label} {html.escape(case["case"])} #{image["index"]}" '
                        f'src="{_data_uri(picture)}"><figcaption>{label}</figcaption></figure>'
                    )
            if golden is not None and actual is not None:
                figures.append(
                    f'<figure><img alt="difference {html.escape(case["case"])} #{image["index"]}" '
                    f'src="{_data_uri(heatmap(golden, actual))}"><figcaption>difference ×8</figcaption></figure>'
                )
            distance = (
                f"phash16 {image['phash_distance']} bits · mean abs {image['mean_abs']:.3f}"
                if image.get("phash_distance") is not None
                else ""
            )
            cells.append(
                f'<div class="image"><div class="figures">{"".join(figures)}</div>'
                f"<p>image {image['index']} — <b>{image['verdict']}</b> {distance}</p></div>"
            )
        rows.append(
            f'<section class="case" data-verdict="{case["verdict"]}">'
            f'<h2><span class="tier" style="background:{colour}">{case["verdict"]}</span> '
            f"{html.escape(case['case'])}</h2>"
            f'<p class="note">{html.escape(notes)}</p>{"".join(cells)}</section>'
        )
    for case_id in document["unused"]:
        rows.append(
            f'<section class="case" data-verdict="unused"><h2><span class="tier" style="background:'
            f'{_TIER_COLOURS["unused"]}">unused</span> {html.escape(case_id)}</h2><p class="note">recorded, not run</p>'
            "</section>"
        )
    counts = ", ".join(f"{n} {name}" for name, n in document["counts"].items() if n)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Serena golden report — {html.escape(document["outcome"])}</title>
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
<h1>Golden outputs: {html.escape(document["outcome"])}</h1>
<div class="summary">Environment <b>{html.escape(document["environment_key"])}</b> ·
tolerance phash16 ≤ {tol["phash_bits"]} bits, mean abs ≤ {tol["mean_abs"]:g} · {html.escape(counts or "nothing ran")}
in {document["seconds"]:.2f} s</div>
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
