"""Writes survive being killed: each writer of a set of files, SIGKILLed at a random write step, leaves the old state
or the new one, and the readers see one of them whole (never a manifest naming a missing or altered file, a summary
without its ledger row, or some snapshots new and some old).

Each writer runs as its real command in a child process (test/kill_points.py) on a temporary copy of the state it
writes. The child counts the file-system primitives the command calls (open for writing, fsync, chmod, mkdir,
rename, unlink, rmdir) and stops at the step the parent drew, which SIGKILLs it there. Then:

- a kill "landed mid-write" when it left the files neither as they were before the run nor as an uninterrupted run
  leaves them; each test requires a good share of its kills to land there, so it cannot pass vacuously;
- the real readers run (they finish a write that was committed) and must report no corrupt set, and the files must
  be exactly the old state or exactly the new one; anything else left over must be a harmless leftover (for the
  harness, the set's `.serena-verify-txn/` folder, without a journal);
- while the state is still the old one, the next run starts on it, leftovers and all, and the loop ends with an
  uninterrupted run that must leave exactly the new state: the next write cleans up what a killed one left.

The counts are printed (and recorded as properties) for the issue note; KILL_LOOP_SEED replays a run's kill steps,
KILL_LOOP_KILLS changes how many kills each writer takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest
from kill_points import NEW_JPEG_QUALITY, OLD_JPEG_QUALITY, stand_in_surface
from support import REPO_ROOT, git, verify_document, write_verify

from harness.config import load_config
from harness.golden.manifest import load_golden_set
from harness.invariants.snapshots import SNAPSHOTS, compare_snapshots
from harness.ledger.check import ledger_check
from harness.ledger.scaffold import milestone_new
from harness.outcome import Outcome
from harness.output import FILE_SET_DIR, JOURNAL_NAME

TEST_DIR = Path(__file__).resolve().parents[2]
DRIVER = TEST_DIR / "kill_points.py"
KILLS = int(os.environ.get("KILL_LOOP_KILLS", "40"))
SEED = int(os.environ.get("KILL_LOOP_SEED", random.SystemRandom().randrange(2**32)))
CHILD_TIMEOUT = 120.0

State = dict[str, str]  # path relative to the root → sha256 of the file


@dataclass(frozen=True)
class Writer:
    name: str  # the command in test/kill_points.py
    watched: tuple[str, ...]  # folders whose files are the state the command writes
    build: Callable[[Path], None]  # the state before the command, in an empty folder
    read: Callable[[Path], None]  # the real readers; they raise or fail on a corrupt set
    leftover: Callable[[str], bool]  # whether a file may be left over by a kill (and must not be read)
    cleans_up: bool = True  # whether the next run removes what a killed one left


@dataclass(frozen=True)
class ChildRun:
    killed: bool
    steps: int  # the step it was killed before, or every step it took
    exit_code: int | None
    log: str


# -- running and killing the child ----------------------------------------------------------------------------
def run_child(writer: str, root: Path, stop_at: int, steps_file: Path | None = None) -> ChildRun:
    """Run the writer's command in a child on `root`; kill it with SIGKILL when it reports step `stop_at`."""
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERENA_", "GITHUB_"))}
    env |= {
        "KILL_POINT_FD": str(write_end),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join((str(TEST_DIR), str(REPO_ROOT))),
    }
    log_path = root.parent / f"{root.name}.log"
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(DRIVER), writer, str(root), str(stop_at), *([str(steps_file)] if steps_file else [])],
            pass_fds=(write_end,),
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    os.close(write_end)
    try:
        message = _read_message(read_end, child)
    finally:
        os.close(read_end)
    words = message.split()
    if words and words[0] == "stop":
        child.kill()  # SIGKILL: no handler, no finally block, no flush runs in the child
        child.wait()
        return ChildRun(True, int(words[1]), None, log_path.read_text(errors="replace"))
    code = child.wait(timeout=CHILD_TIMEOUT)
    text = log_path.read_text(errors="replace")
    assert words and words[0] == "done", f"{writer}: the child ended without a report (exit {code}):\n{text}"
    return ChildRun(False, int(words[1]), int(words[2]), text)


def _read_message(pipe: int, child: subprocess.Popen[bytes]) -> str:
    """The child's one line on the pipe (empty if it exited without one)."""
    data = b""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([pipe], [], [], max(remaining, 0))
        if not ready:
            child.kill()
            child.wait()
            pytest.fail(f"the child took more than {CHILD_TIMEOUT:.0f} s")
        chunk = os.read(pipe, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


# -- the state on disk ------------------------------------------------------------------------------------------
def files_under(root: Path, watched: tuple[str, ...]) -> State:
    state: State = {}
    for top in watched:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                state[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def difference(seen: State, expected: State) -> str:
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    changed = sorted(p for p in set(seen) & set(expected) if seen[p] != expected[p])
    return f"missing {missing}, extra {extra}, changed {changed}"


def in_file_set_folder(path: str) -> bool:
    return FILE_SET_DIR in Path(path).parts


def write_window(touched: list[str], root: Path, watched: tuple[str, ...]) -> tuple[int, int]:
    """The first and the last step (1-based) of a run that touched a watched folder: where the kills are aimed."""
    folders = tuple(str((root / top).resolve()) + os.sep for top in watched)
    steps = [number for number, path in enumerate(touched, start=1) if path.startswith(folders)]
    assert steps, f"no write step touched {watched}"
    return steps[0], steps[-1]


# -- the kill loop ---------------------------------------------------------------------------------------------
def kill_loop(writer: Writer, tmp_path: Path) -> Counter[str]:
    rng = random.Random(f"{SEED}-{writer.name}")
    template = tmp_path / "template"
    template.mkdir()
    writer.build(template)
    old = files_under(template, writer.watched)
    root = tmp_path / "root"
    shutil.copytree(template, root, symlinks=True)
    # one uninterrupted run: the new state, and which of its write steps touch that state
    steps_file = tmp_path / "steps.json"
    calibration = run_child(writer.name, root, 0, steps_file)
    assert calibration.exit_code == 0, calibration.log
    new = files_under(root, writer.watched)
    writer.read(root)
    assert new != old and not any(writer.leftover(p) for p in new), difference(new, old)
    first, last = write_window(json.loads(steps_file.read_text(encoding="utf-8")), root, writer.watched)

    counts: Counter[str] = Counter(steps=calibration.steps, window=last - first + 1)
    last_aim = min(last + 1, calibration.steps)  # just after the last step that touched the state, if there is one
    state_is_new = True
    # KILLS kills, and on until one leaves the old state, so that the last run below starts on a kill's leftovers
    while counts["kills"] < KILLS or state_is_new:
        assert counts["kills"] < KILLS + 20, f"{writer.name}: no kill left the old state"
        if state_is_new:  # start again from the old state; otherwise the next run starts on what the kill left
            shutil.rmtree(root)
            shutil.copytree(template, root, symlinks=True)
        before = files_under(root, writer.watched)
        counts["started on leftovers"] += before != old
        run = run_child(writer.name, root, rng.randint(first, last_aim))
        killed_state = files_under(root, writer.watched)
        if run.killed:
            counts["kills"] += 1
            counts["mid-write"] += killed_state not in (before, new)
        else:  # a run that started on leftovers has a few more steps (removing them) and may outrun the aim
            assert run.exit_code == 0, run.log
            counts["finished"] += 1
        writer.read(root)
        seen = files_under(root, writer.watched)
        leftovers = {path for path in seen if writer.leftover(path)}
        visible = {path: digest for path, digest in seen.items() if path not in leftovers}
        assert visible in (old, new), (
            f"{writer.name} killed before step {run.steps}: neither the old state ({difference(visible, old)}) "
            f"nor the new one ({difference(visible, new)})"
        )
        assert not any(Path(path).name == JOURNAL_NAME for path in leftovers), "a reader left a committed write"
        state_is_new = visible == new
        counts["left new" if state_is_new else "left old"] += 1
    # the next write after a kill: the new state, and (for the harness) nothing left over
    final = run_child(writer.name, root, 0)
    assert final.exit_code == 0, final.log
    writer.read(root)
    after = files_under(root, writer.watched)
    assert {path: digest for path, digest in after.items() if not writer.leftover(path)} == new
    if writer.cleans_up:
        assert after == new, difference(after, new)
    else:
        counts["leftovers never cleaned"] = sum(1 for path in after if writer.leftover(path))
    return counts


@pytest.fixture
def report_counts(record_property, capsys):
    """Record and print one writer's counts (shown without -s too: they are quoted in the issue note)."""

    def report(name: str, counts: Counter[str], started: float) -> None:
        seconds = time.perf_counter() - started
        for key, value in counts.items():
            record_property(key.replace(" ", "_"), value)
        with capsys.disabled():
            print(
                f"\nkill loop {name}: {counts['kills']} kills, {counts['mid-write']} mid-write, "
                f"{counts['left old']} left old, {counts['left new']} left new, "
                f"{counts['started on leftovers']} runs started on a killed run's leftovers, "
                f"kills drawn from {counts['window']} of the {counts['steps']} write steps of a run, "
                f"{seconds:.1f} s (seed {SEED})"
                + (
                    f"; {counts['leftovers never cleaned']} leftover temporary files never cleaned"
                    if "leftovers never cleaned" in counts
                    else ""
                )
            )

    return report


def check_counts(counts: Counter[str]) -> None:
    assert counts["kills"] >= KILLS
    assert counts["mid-write"] >= KILLS // 3, counts


# -- the writers ------------------------------------------------------------------------------------------------
def minimal_pyproject(root: Path) -> None:
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")


def build_goldens(root: Path) -> None:
    """The shipped cases and cpu-fp32 set: `golden update --all` re-records three cases (stand-in images)."""
    minimal_pyproject(root)
    shutil.copytree(REPO_ROOT / "harness/cases", root / "harness/cases")
    shutil.copytree(REPO_ROOT / "harness/goldens/cpu-fp32", root / "harness/goldens/cpu-fp32")


def read_goldens(root: Path) -> None:
    """What `golden run` reads: the manifest, then every image (pixels against its sha256) and trace it names."""
    golden_set = load_golden_set(root / "harness/goldens", "cpu-fp32")
    assert golden_set.exists
    for entry in golden_set.entries.values():
        for name, measures in entry.images:
            golden_set.load_image(name, measures)
        golden_set.load_traces(entry)


def build_snapshots(root: Path) -> None:
    minimal_pyproject(root)
    shutil.copytree(REPO_ROOT / "invariants/snapshots", root / "invariants/snapshots")


def read_snapshots(root: Path) -> None:
    """`invariants snapshot` against the changed runtime's texts: every snapshot differs, or every one matches."""
    chosen = [replace(s, produce=partial(stand_in_surface, s.name)) for s in SNAPSHOTS.values()]
    statuses = [result.status for result in compare_snapshots(chosen, root / "invariants/snapshots")]
    assert set(statuses) in ({"differs"}, {"match"}), statuses


def build_repository(root: Path) -> None:
    """A git repository tagged `base` with milestone M01 scaffolded and its plan's prose written."""
    minimal_pyproject(root)
    (root / "serena").mkdir()
    (root / "serena/core.py").write_text("VALUE = 1\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    milestone_new(load_config(root, environ={}), "M01", "The runtime", today="2026-11-20")
    plan = root / "docs/milestones/M01/M01_plan.md"
    plan.write_text(
        plan.read_text(encoding="utf-8")
        .replace("<!-- What this milestone delivers, in one or two sentences. -->", "Make it work.")
        .replace("<!-- In: what changes. Out: what deliberately does not. -->", "core.py"),
        encoding="utf-8",
    )


def build_closable(root: Path) -> None:
    build_repository(root)
    write_verify(root, verify_document(git(root, "rev-parse", "HEAD")))


def read_ledger(root: Path) -> None:
    """`ledger check`: the ledger, each row against its folder and documents, and folders without a row."""
    result = ledger_check(load_config(root, environ={}))
    assert result.outcome is Outcome.PASSED, result.problems


def build_options(root: Path) -> None:
    config = root / "data/config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"jpeg_quality": OLD_JPEG_QUALITY, "samples_format": "png"}, indent=2) + "\n")


def read_options(root: Path) -> None:
    """How `serena` reads its config at start-up: a bad file is a ConfigError."""
    from serena.options import Options

    options = Options()
    assert options.load(root / "data/config.json") == []
    assert options.jpeg_quality in (OLD_JPEG_QUALITY, NEW_JPEG_QUALITY)


def serena_temporary_file(path: str) -> bool:
    name = Path(path).name
    return name.startswith(".serena-") and name.endswith(".tmp")


WRITERS = {
    writer.name: writer
    for writer in (
        Writer("golden-update", ("harness/goldens",), build_goldens, read_goldens, in_file_set_folder),
        Writer("snapshot-update", ("invariants/snapshots",), build_snapshots, read_snapshots, in_file_set_folder),
        Writer("milestone-close", ("docs",), build_closable, read_ledger, in_file_set_folder),
        Writer("milestone-new", ("docs",), build_repository, read_ledger, in_file_set_folder),
        # serena's atomic write leaves its temporary file beside config.json when killed, and nothing removes it
        Writer("options-set", ("data",), build_options, read_options, serena_temporary_file, cleans_up=False),
    )
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_killed_write_leaves_the_old_state_or_the_new_one(name: str, tmp_path: Path, report_counts) -> None:
    started = time.perf_counter()
    counts = kill_loop(WRITERS[name], tmp_path)
    report_counts(name, counts, started)
    check_counts(counts)
