"""Golden-set keys (device type + dtype, e.g. cpu-fp32) and the fingerprint of the machine a set was recorded on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Literal

from harness.machine import cpu_name, package_version

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


def cuda_available() -> tuple[bool, str]:
    """Whether a CUDA device can be used here, and its name or the reason it cannot (imports torch)."""
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device on this machine"
    return True, torch.cuda.get_device_name(0)


# What decides whether a rerun is bit-identical: the numeric stack, the hardware it runs on and the thread count.
# Two fingerprints that agree on these are one machine class (python, platform or pillow do not change pixels).
MACHINE_CLASS_FIELDS = ("torch", "diffusers", "transformers", "cpu", "gpu", "threads")


def machine_class(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The fields of a fingerprint that make its machine class."""
    return {name: fingerprint.get(name) for name in MACHINE_CLASS_FIELDS}


def same_machine_class(recorded: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Whether `recorded` (a golden's fingerprint) names every class field and agrees with `current` on all."""
    if not recorded or any(name not in recorded for name in MACHINE_CLASS_FIELDS):
        return False
    return machine_class(recorded) == machine_class(current)


def fingerprint(device: str, threads: int) -> dict[str, Any]:
    """What a golden set was recorded on; its machine class decides `drifted` against `equivalent`."""
    gpu = None
    if device == "cuda":
        gpu = cuda_available()[1]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": package_version("torch"),
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "imagehash": package_version("ImageHash"),
        "pillow": package_version("pillow"),
        "numpy": package_version("numpy"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "threads": threads,
    }
