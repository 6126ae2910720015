"""`serena-verify env`: the record of where a run happened, written to ci_environment.txt.

Versions are read from installed metadata, so torch is not imported; only `--cuda-check` imports it, for the
device line and torch's thread count.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

from harness.config import HarnessConfig
from harness.git import GitError, head_sha, is_dirty
from harness.machine import cpu_name, package_version
from harness.outcome import CheckResult, Outcome
from harness.output import atomic_write_text

ENVIRONMENT_NAME = "ci_environment.txt"
PACKAGES = ("pip", "torch", "diffusers", "transformers", "safetensors", "imagehash", "pillow", "numpy")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _device_lines(cuda_check: bool) -> list[tuple[str, str]]:
    if not cuda_check:
        return [("device", "cpu (no CUDA check; pass --cuda-check to import torch and look)")]
    import torch  # only here: the one line that needs torch itself

    if torch.cuda.is_available():
        device = f"cuda available: {torch.cuda.get_device_name(0)} (cuda {torch.version.cuda})"
    else:
        device = "cpu (cuda not available)"
    return [("device", device), ("torch threads", str(torch.get_num_threads()))]


def environment_record(repo_root: Path, *, cuda_check: bool = False) -> list[tuple[str, str]]:
    """The (key, value) lines of ci_environment.txt."""
    lock = repo_root / "requirements.lock"
    try:
        lock_sha = hashlib.sha256(lock.read_bytes()).hexdigest()
    except OSError as exc:
        lock_sha = f"unreadable ({exc.strerror})"
    try:
        git_sha = head_sha(repo_root) + (" (working tree modified)" if is_dirty(repo_root) else "")
    except GitError as exc:
        git_sha = f"unavailable ({exc})"
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in THREAD_VARIABLES)
    record = [
        ("python", f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"),
        *((package, package_version(package)) for package in PACKAGES),
        ("os", platform.platform()),
        ("cpu", cpu_name()),
        ("cpu count", str(os.cpu_count())),
        ("threads", threads),
        ("requirements.lock sha256", lock_sha),
        ("git sha", git_sha),
    ]
    return record + _device_lines(cuda_check)


def write_environment(cfg: HarnessConfig, *, cuda_check: bool = False, evidence_dir: Path | None = None) -> CheckResult:
    """Write ci_environment.txt into the evidence folder; the result lists what was recorded."""
    record = environment_record(cfg.repo_root, cuda_check=cuda_check)
    target = (Path(evidence_dir) if evidence_dir is not None else cfg.path("evidence_dir")) / ENVIRONMENT_NAME
    width = max(len(key) for key, _ in record)
    atomic_write_text(target, "".join(f"{key.ljust(width)}  {value}\n" for key, value in record))
    values = dict(record)
    return CheckResult(
        check="env",
        outcome=Outcome.PASSED,
        summary=f"python {platform.python_version()}, torch {values['torch']}, git {values['git sha'].split()[0][:12]}",
        figures=values,
        evidence=(str(target),),
    )
