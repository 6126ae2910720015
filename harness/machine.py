"""Facts about this machine that evidence records: installed package versions and the CPU's model name.

Read from metadata and /proc, so nothing here imports torch.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path


def package_version(name: str) -> str:
    """The installed version of `name`, or "not installed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows, else "unknown"."""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
