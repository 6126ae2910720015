"""Environment classes (device type + dtype) that key golden sets, and the fingerprint recorded with them."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "fp16"]


def environment_key(device: str, precision: str) -> str:
    return f"{device}-{precision}"


def parse_environment_key(key: str) -> tuple[str, str]:
    from harness.errors import ConfigError

    device, sep, precision = key.partition("-")
    if not sep or device not in ("cpu", "cuda") or precision not in ("fp32", "fp16"):
        raise ConfigError(f"environment key {key!r}: expected <cpu|cuda>-<fp32|fp16>")
    return device, precision


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_available() -> tuple[bool, str]:
    """Whether a CUDA device can be used here, and its name or the reason it cannot (imports torch)."""
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device on this machine"
    return True, torch.cuda.get_device_name(0)


def fingerprint(device: str, threads: int) -> dict[str, Any]:
    """What a golden set was recorded on; compared only for information, never for the verdict."""
    gpu = None
    if device == "cuda":
        gpu = cuda_available()[1]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": _version("torch"),
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "imagehash": _version("ImageHash"),
        "pillow": _version("pillow"),
        "numpy": _version("numpy"),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "threads": threads,
    }
