"""Writing the harness's files: atomically (old file or new, never half), as sets, and `-` as standard output.

The harness keeps its own atomic write instead of using the runtime's `serena.fileio`: the instrument must not move
with the thing it measures, so a refactor of the runtime's file writing cannot change how goldens, evidence and the
ledger are recorded. (A deliberate copy of the technique, not shared code.)

A set of files that must change together (a golden set and its manifest, the snapshots, a milestone's documents
and the ledger row) is written by `write_file_set`, a redo journal kept in one hidden folder beside the set,
`.serena-verify-txn/`:

1. stage: each new file is written whole into that folder and fsynced; nothing a reader looks at has changed;
2. commit: `journal.json` (staged file → target, in order, then the files to remove) appears by one atomic rename;
   from this moment the new set is the set;
3. apply: each staged file is renamed over its target, in the order given (a set's index file can go last), then
   the removals are done;
4. forget: the journal is deleted, then the folder.

A process killed before step 2 leaves every target as it was and a folder without a journal, which no reader
looks at; the next write of the set deletes it. Killed after step 2, the journal says what is left to do, and each
rename and removal is safe to repeat (a staged file that is gone was already moved): `finish_file_set`, which the
readers of a set call before reading it and every write calls first, rolls it forward. So after a kill at any
moment a reader sees the whole old set or the whole new one. Readers never delete a folder without a journal (a
writer may be staging into it); one writer at a time per set, as before.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import HarnessError

FILE_SET_DIR = ".serena-verify-txn"
JOURNAL_NAME = "journal.json"


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


def write_file_set(folder: Path, files: Mapping[Path, bytes], *, remove: Iterable[Path] = ()) -> None:
    """Replace `files` (path → content, renamed in this order) and delete `remove` as one change: after a kill at
    any moment, the readers of the set kept beside `folder/.serena-verify-txn/` see all of it or none of it."""
    folder = Path(folder)
    staging = folder / FILE_SET_DIR
    _settle(staging, discard_uncommitted=True)
    try:
        # 1. stage every file in full
        staging.mkdir(parents=True)
        moves = []
        for index, (target, data) in enumerate(files.items()):
            staged = staging / f"{index}.new"
            with staged.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            staged.chmod(0o644)
            moves.append([staged.name, _relative(target, folder)])
        # 2. commit: the journal appears whole or not at all
        journal = {"moves": moves, "remove": [_relative(path, folder) for path in remove]}
        atomic_write_text(staging / JOURNAL_NAME, json.dumps(journal, indent=1) + "\n")
    except BaseException:
        if not (staging / JOURNAL_NAME).is_file():
            shutil.rmtree(staging, ignore_errors=True)  # not committed: nothing to undo but the staging
        raise
    _fsync_folder(staging)
    # 3. and 4.
    _roll_forward(staging, journal)


def finish_file_set(folder: Path) -> None:
    """Complete the write of the set beside `folder` that a killed process committed but did not apply; readers
    call this before reading the set (it does nothing, at the cost of one stat, when there is none)."""
    _settle(Path(folder) / FILE_SET_DIR, discard_uncommitted=False)


def _relative(path: Path, folder: Path) -> str:
    # relative, so a set whose write was interrupted can still be finished after its repository moved
    return Path(os.path.relpath(Path(path).absolute(), folder.absolute())).as_posix()


def _settle(staging: Path, *, discard_uncommitted: bool) -> None:
    journal_path = staging / JOURNAL_NAME
    if journal_path.is_file():
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            moves = [(str(staged), str(target)) for staged, target in journal["moves"]]
            removals = [str(name) for name in journal["remove"]]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise HarnessError(
                f"{journal_path}: journal of an interrupted write is unreadable ({exc}); restore the set from git "
                f"and delete {staging}"
            ) from None
        _roll_forward(staging, {"moves": moves, "remove": removals})
    elif discard_uncommitted and staging.exists():
        shutil.rmtree(staging)  # staged but never committed: the targets are untouched


def _roll_forward(staging: Path, journal: dict[str, Any]) -> None:
    folder = staging.parent
    try:
        parents = set()
        for staged_name, target_name in journal["moves"]:
            target = folder / target_name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                (staging / staged_name).replace(target)
            except FileNotFoundError:
                if (staging / staged_name).exists():
                    raise
                # moved already, by the process that was killed or by another reader finishing it first
            parents.add(target.parent)
        for name in journal["remove"]:
            (folder / name).unlink(missing_ok=True)
        for parent in parents:
            _fsync_folder(parent)
        (staging / JOURNAL_NAME).unlink(missing_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"{staging}: cannot finish writing a set of files ({exc}); fix the cause and run the command again"
        ) from None
    shutil.rmtree(staging, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    """Make the renames inside `folder` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


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
