"""golden.json: a GoldenReport written as its versioned JSON document, and read back (strictly) into one."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import GoldenError
from harness.golden.report import DOCUMENT_KIND, DOCUMENT_SCHEMA_VERSION, GoldenReport
from harness.output import atomic_write_text

DOCUMENT_NAME = "golden.json"


def document_text(report: GoldenReport) -> str:
    """The report as golden.json holds it (and as `--format json` prints it)."""
    return json.dumps(report.to_document(), indent=2) + "\n"


def write_document(report: GoldenReport, folder: Path) -> Path:
    """Write `folder/golden.json` atomically; returns its path."""
    path = folder / DOCUMENT_NAME
    atomic_write_text(path, document_text(report))
    return path


def read_report(path: Path) -> GoldenReport:
    """The report in golden.json (or in a report folder holding one); GoldenError naming the file if it is not one."""
    if path.is_dir():
        path = path / DOCUMENT_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError(f"{path}: no golden report here; run `serena-verify golden run` first") from None
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{path}:{exc.lineno}:{exc.colno}: corrupt golden report: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{path}: cannot read golden report ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != DOCUMENT_KIND:
        raise GoldenError(f"{path}: not a serena golden report")
    if document.get("schema_version") != DOCUMENT_SCHEMA_VERSION:
        raise GoldenError(f"{path}: schema_version {document.get('schema_version')} is not supported")
    try:
        return GoldenReport.from_document(document, path.parent)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise GoldenError(f"{path}: malformed golden report ({type(exc).__name__}: {exc})") from None
