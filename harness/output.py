"""Writing the harness's files: atomically (old file or new, never half), and `-` as standard output.

The harness keeps its own atomic write instead of using the runtime's `serena.fileio`: the instrument must not move
with the thing it measures, so a refactor of the runtime's file writing cannot change how goldens, evidence and the
ledger are recorded. (A deliberate copy of the technique, not shared code.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a short temporary name, so a final name near the 255-byte limit still fits
    fd, tmp_name = tempfile.mkstemp(prefix=".serena-verify-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).chmod(0o644)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_output(text: str, destination: str | Path) -> None:
    """Write rendered text to a file (atomically) or, for `-`, to standard output."""
    if str(destination) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    atomic_write_text(Path(destination), text)


def append_step_summary(markdown: str) -> bool:
    """Append to the GitHub Actions step summary when a workflow provides one; False when there is none."""
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary_file:
        return False
    with Path(summary_file).open("a", encoding="utf-8") as handle:
        handle.write(markdown)
    return True
