"""The golden report document: a versioned JSON that every renderer, `golden report` and `golden merge` read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness.errors import GoldenError
from harness.golden.compare import PASSING, Verdict
from harness.golden.session import GoldenReport
from harness.outcome import Outcome

DOCUMENT_SCHEMA_VERSION = 1
DOCUMENT_NAME = "golden.json"
ACTUAL_DIR = "actual"


def to_document(report: GoldenReport) -> dict[str, Any]:
    result = report.check_result()
    return {
        "schema_version": DOCUMENT_SCHEMA_VERSION,
        "kind": "serena-golden-report",
        "environment_key": report.environment_key,
        "golden_dir": report.golden_dir,
        "tolerances": report.tolerances.to_dict(),
        "selection": report.selection.to_dict(),
        "outcome": str(result.outcome),
        "reason": result.reason,
        "counts": report.counts(),
        "seconds": round(report.seconds, 3),
        "warn_unused": report.warn_unused,
        "recorded_ids": report.recorded_ids,
        "unused": report.unused,
        "updated": report.updated,
        "cases": [verdict.to_dict() for verdict in report.verdicts],
    }


def write_report_dir(report: GoldenReport, folder: Path) -> Path:
    """golden.json plus every actual image under actual/, so any format can be rendered later."""
    from serena.fileio import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    actual = folder / ACTUAL_DIR
    if actual.exists():
        shutil.rmtree(actual)
    actual.mkdir()
    document = to_document(report)
    for verdict, case in zip(report.verdicts, document["cases"], strict=True):
        if verdict.run is None:
            continue
        for index, image in enumerate(verdict.run.images):
            name = f"{verdict.case_id}-{index}.png"
            image.save(actual / name, "PNG")
            if index < len(case["images"]):
                case["images"][index]["actual_file"] = f"{ACTUAL_DIR}/{name}"
    path = folder / DOCUMENT_NAME
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return path


def read_document(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / DOCUMENT_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError(f"{path}: no golden report here; run `serena-verify golden run` first") from None
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{path}:{exc.lineno}:{exc.colno}: corrupt golden report: {exc.msg}") from None
    if not isinstance(document, dict) or document.get("kind") != "serena-golden-report":
        raise GoldenError(f"{path}: not a serena golden report")
    if document.get("schema_version") != DOCUMENT_SCHEMA_VERSION:
        raise GoldenError(f"{path}: schema_version {document.get('schema_version')} is not supported")
    document["_base_dir"] = str(path.parent)
    return document


def document_outcome(document: dict[str, Any]) -> Outcome:
    return Outcome(document["outcome"])


def merge_documents(documents: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Combine shard reports: cases concatenated, unused recomputed over the union, outcome recomputed."""
    from serena.fileio import atomic_write_text

    if not documents:
        raise GoldenError("golden merge needs at least one report")
    keys = {doc["environment_key"] for doc in documents}
    if len(keys) != 1:
        raise GoldenError(f"cannot merge reports of different environments: {', '.join(sorted(keys))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ACTUAL_DIR).mkdir(exist_ok=True)
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for doc in documents:
        for case in doc["cases"]:
            if case["case"] in seen:
                raise GoldenError(f"case {case['case']!r} appears in more than one shard report")
            seen.add(case["case"])
            for image in case["images"]:
                if image.get("actual_file"):
                    source = Path(doc["_base_dir"]) / image["actual_file"]
                    shutil.copyfile(source, out_dir / image["actual_file"])
            cases.append(case)
    first = documents[0]
    recorded = sorted(set().union(*(doc["recorded_ids"] for doc in documents)))
    full = all(not doc["selection"]["patterns"] for doc in documents)
    shards = {tuple(doc["selection"]["shard"] or ()) for doc in documents}
    total = next(iter(shards))[1] if shards and all(shards) else None
    complete = full and total is not None and {s[0] for s in shards} == set(range(1, total + 1))
    unused = sorted(case_id for case_id in recorded if case_id not in seen) if complete else []
    counts = {str(v): 0 for v in Verdict}
    for case in cases:
        counts[case["verdict"]] += 1
    counts[str(Verdict.UNUSED)] = len(unused)
    failing = [c for c in cases if Verdict(c["verdict"]) not in PASSING and c["case"] not in first.get("updated", [])]
    skipped = all(Verdict(c["verdict"]) is Verdict.SKIPPED for c in cases) and cases
    if skipped:
        outcome = Outcome.SKIPPED
    elif not cases:
        outcome = Outcome.INCONCLUSIVE
    elif failing or (unused and not first["warn_unused"]):
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.PASSED
    merged = {
        **{k: v for k, v in first.items() if not k.startswith("_")},
        "selection": {"patterns": [], "shard": None, "merged_from": len(documents)},
        "outcome": str(outcome),
        "reason": "every case skipped" if skipped else None,
        "counts": counts,
        "seconds": round(sum(doc["seconds"] for doc in documents), 3),
        "recorded_ids": recorded,
        "unused": unused,
        "cases": sorted(cases, key=lambda c: c["case"]),
    }
    atomic_write_text(out_dir / DOCUMENT_NAME, json.dumps(merged, indent=2) + "\n")
    merged["_base_dir"] = str(out_dir)
    return merged
