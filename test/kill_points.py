"""The child of the kill-loop tests (test/quality/harness/test_kill_loop.py): one real command, stopped at a write step.

Usage: python kill_points.py WRITER ROOT STOP_AT [STEPS_FILE], with the write end of a pipe in KILL_POINT_FD.

The command runs in ROOT through its real entry point (`harness.cli.main` or `serena.cli.main`), with stand-ins
where it would otherwise need the model (golden images, snapshot texts) and a frozen clock, so that two runs write
the same bytes. Every file-system primitive a write is made of (opening for writing, fsync, chmod, mkdir, rename,
unlink, rmdir) is counted; at step STOP_AT the child writes `stop N` to the pipe and sleeps until the parent kills
it, before that step runs. A run that ends writes `done STEPS EXIT_CODE`. STOP_AT 0 never stops; then STEPS_FILE,
when given, receives the path each step touched (JSON, "" for a file descriptor), so the parent can aim its kills
at the steps that write the state it watches.
"""

from __future__ import annotations

import builtins
import functools
import io
import json
import os
import shutil  # noqa: F401 - imported before the primitives are counted: rmtree picks its fd functions at import
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FROZEN_NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
COUNTED = ("open", "fsync", "chmod", "mkdir", "replace", "rename", "unlink", "remove", "rmdir")
GOLDEN_CASES = ("t2i-euler", "t2i-ddim-batch", "i2i-ddim-gradient")
OLD_JPEG_QUALITY, NEW_JPEG_QUALITY = 70, 80

COMMANDS: dict[str, tuple[str, ...]] = {
    "golden-update": (
        "serena-verify",
        "golden",
        "update",
        "--all",
        *(f"--case={case_id}" for case_id in GOLDEN_CASES),
    ),
    "snapshot-update": ("serena-verify", "invariants", "snapshot", "--update"),
    "milestone-close": ("serena-verify", "milestone", "close", "M01"),
    "milestone-new": ("serena-verify", "milestone", "new", "M02", "--title", "The next step", "--baseline", "base"),
    "options-set": ("serena", "--data-dir", "data", "options", "set", "jpeg_quality", str(NEW_JPEG_QUALITY)),
}


class FrozenClock(datetime):
    """`datetime` whose now() is FROZEN_NOW: recorded-at and completed-at fields come out the same in every run."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return FROZEN_NOW.astimezone(tz) if tz is not None else FROZEN_NOW.replace(tzinfo=None)


def stand_in_surface(name: str) -> str:
    """A snapshot text as a changed runtime would render it (the parent compares with the same text)."""
    return "".join(f"{name} line {number}: rendered by a changed runtime\n" for number in range(200))


def stand_in_golden_runs() -> None:
    """Generation replaced by noise images drawn from the case id, with a trace, and the manifest's clock frozen:
    the golden write is what is under test."""
    from contextlib import nullcontext

    import numpy as np
    from PIL import Image

    import harness.golden.session as session
    from harness.golden.measures import degenerate_reason, measure
    from harness.golden.runner import CaseRun
    from harness.golden.trace import Trace

    def run_case(case: Any, cases_dir: Path, *, threads: int, **_: Any) -> CaseRun:
        rng = np.random.default_rng(zlib.crc32(case.id.encode()))
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(case.batch_size)]
        measures = [measure(image) for image in images]
        traces = [Trace({"latents after step 1": rng.standard_normal((4, 8, 8)).astype(np.float16)}) for _ in images]
        degenerate = [degenerate_reason(image, m) for image, m in zip(images, measures, strict=True)]
        return CaseRun(case, images, measures, traces, [""] * len(images), 0.0, degenerate)

    session.run_case = run_case  # type: ignore[assignment]
    session.isolated_runtime = lambda *args, **kwargs: nullcontext()  # type: ignore[assignment]
    freeze_clock("harness.golden.manifest")
    time.time = FROZEN_NOW.timestamp  # the zip entries of a trace .npz carry the time, and its name is their hash


def stand_in_surfaces() -> None:
    from dataclasses import replace

    from harness.invariants.snapshots import SNAPSHOTS

    for name, snapshot in list(SNAPSHOTS.items()):
        SNAPSHOTS[name] = replace(snapshot, produce=functools.partial(stand_in_surface, name))


def freeze_clock(module_name: str) -> None:
    import importlib

    importlib.import_module(module_name).datetime = FrozenClock  # type: ignore[attr-defined]


PREPARE: dict[str, Callable[[], None]] = {
    "golden-update": stand_in_golden_runs,
    "snapshot-update": stand_in_surfaces,
    "milestone-close": lambda: freeze_clock("harness.ledger.close"),
    "milestone-new": lambda: freeze_clock("harness.ledger.scaffold"),
    "options-set": lambda: None,
}


def count_write_steps(stop_at: int, pipe: int, touched: list[str]) -> None:
    """Count every write primitive from now on, noting the path of each in `touched`; at step `stop_at`, tell the
    parent and wait to be killed."""

    def step(target: Any) -> None:
        touched.append(os.path.realpath(target) if isinstance(target, (str, bytes, os.PathLike)) else "")
        if len(touched) == stop_at:
            os.write(pipe, f"stop {stop_at}\n".encode())
            time.sleep(600)  # the parent SIGKILLs us here, before this step's primitive runs

    def counted(primitive: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(primitive)
        def run(target: Any, *args: Any, **kwargs: Any) -> Any:
            step("" if "dir_fd" in kwargs else target)  # a name relative to a folder descriptor: not a path
            return primitive(target, *args, **kwargs)

        return run

    for name in COUNTED:
        setattr(os, name, counted(getattr(os, name)))
    plain_open = io.open

    def open_file(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wxa+"):
            step(file)
        return plain_open(file, mode, *args, **kwargs)

    io.open = builtins.open = open_file  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    writer, root, stop_at = argv[0], Path(argv[1]), int(argv[2])
    steps_file = Path(argv[3]) if len(argv) > 3 else None
    pipe = int(os.environ["KILL_POINT_FD"])
    os.chdir(root)
    program, *args = COMMANDS[writer]
    if program == "serena":
        from serena.cli import main as run_command
    else:
        from harness.cli import main as run_command
    PREPARE[writer]()
    touched: list[str] = []
    count_write_steps(stop_at, pipe, touched)
    code = run_command(args)
    steps = len(touched)
    if steps_file is not None:
        steps_file.write_text(json.dumps(touched), encoding="utf-8")
    os.write(pipe, f"done {steps} {code}\n".encode())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
