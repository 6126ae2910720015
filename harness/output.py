"""Writing rendered output: a path is written atomically, `-` means standard output."""

from __future__ import annotations

import sys
from pathlib import Path

from serena.fileio import atomic_write_text


def write_output(text: str, destination: str | Path) -> None:
    if str(destination) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    atomic_write_text(Path(destination), text)
