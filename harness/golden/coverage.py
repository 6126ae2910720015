"""`golden coverage`: the lines and branches of serena/ the golden cases execute, and floors for the generation path.

Measured in a fresh process, on purpose. coverage.py records a line only while its tracer is on; in the process
that asks (the CLI, a pytest session) `serena` is often imported already, so its module-level lines (imports, `def`,
`class`, constants) ran before any tracer could see them and would read as missed, and a tracer started there would
fight one the caller may be running (`pytest --cov`). So this module is also the worker: `python -m
harness.golden.coverage --job JOB --out DIR` (from the repository root) starts `coverage.Coverage(branch=True,
source=[<root>/serena], data_file=None)` before anything imports serena (it checks that nothing has), runs
`run_goldens` on the selection, and writes coverage.py's JSON report, which the caller reads back. The project's
coverage settings in pyproject.toml apply (exclusion pragmas, as for the coverage gate); source and branch are fixed.

The percent is coverage.py's: statements and branches together. The floors (config key `golden.coverage_floors`,
{path: percent}) name the generation path; each file under its floor fails the check with a finding at its first
missed line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig, repo_relative
from harness.errors import ConfigError
from harness.golden.selection import Selection
from harness.outcome import CheckResult, Finding, Outcome, line_containing
from harness.output import atomic_write_text
from harness.render import render

CHECK = "golden-coverage"
FLOOR_RULE = "floor"
FLOORS_KEY = "golden.coverage_floors"
# the generation path and its floors (coverage.py percent, statements and branches together), set a little under
# what the shipped cases measured; `golden.coverage_floors` in pyproject.toml ([tool.serena.golden]) replaces them
DEFAULT_FLOORS: dict[str, float] = {
    # 77.8 measured before the inpainting cases, 81.2 with them
    "serena/processing.py": 78.0,
    # 86.7 until the schedule types brought their refusals (a type a scheduler lacks, a contradiction, a web-UI type
    # diffusers cannot compute), which tests run and no golden can; 84.0 measured with them
    "serena/samplers.py": 82.0,
    "serena/processing_runner.py": 85.0,
    "serena/runtime_utils.py": 55.0,
    "serena/options_snapshot.py": 52.0,
    "serena/runtime_context.py": 95.0,
    # the variation noise, the hires fix, the init-image resize modes and inpainting are generation too
    "serena/noise.py": 90.0,
    "serena/hires.py": 72.0,
    "serena/image_resize.py": 68.0,
    "serena/upscalers.py": 75.0,
    # inpainting: 76.6 measured; the rest is reading fields by their infotext names, which tests run
    "serena/masking.py": 72.0,
}
SOURCE_PACKAGE = "serena"
JSON_SCHEMA_VERSION = 1
EXCERPT_WIDTH = 72
_PROGRESS_TAG = "serena-golden-coverage:"
_WORKER_ENV_PREFIXES = ("COVERAGE_", "COV_CORE_")  # a caller's coverage run must not follow the worker

# called as each case starts: its id, its 1-based position and how many cases the run will run
Progress = Callable[[str, int, int], None]


# -- formatting -------------------------------------------------------------------------------------------------


def line_ranges(lines: Iterable[int], statements: Iterable[int] | None = None) -> str:
    """Line numbers as compact ranges: [12, 13, 14, 15, 40] → '12-15, 40'.

    With `statements`, a range runs on across lines that are not statements (blank lines, comments, a docstring's
    continuation), as coverage.py reports it: missed statements 12, 14 with 13 a comment → '12-14'."""
    wanted = sorted(set(lines))
    if not wanted:
        return ""
    order = sorted(set(statements or ()) | set(wanted)) if statements is not None else wanted
    position = {number: index for index, number in enumerate(order)}
    spans: list[list[int]] = []
    for number in wanted:
        adjacent = statements is not None and spans and position[number] == position[spans[-1][1]] + 1
        if spans and (adjacent or number == spans[-1][1] + 1):
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)


def branch_label(arc: Sequence[int]) -> str:
    """A branch as from→to; coverage.py's negative destination (leaving the function) reads 'exit'."""
    source, destination = arc
    return f"{source}→{destination if destination > 0 else 'exit'}"


def _percent(covered: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * covered / total


def shown_percent(value: float) -> str:
    """One decimal, truncated: 84.96 shows as 84.9, never as the 85.0 it does not reach."""
    return f"{math.floor(round(value * 10, 6)) / 10:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "∣").replace("\n", " ")


# -- measurement ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UncoveredRegion:
    """A run of statements no golden executes: one file, one function, with its first line's source."""

    path: str
    first: int
    last: int
    function: str  # "" at module level
    excerpt: str

    @property
    def lines(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class UntakenBranch:
    """A branch whose line runs but which no golden takes (its destination is reached some other way, or never)."""

    path: str
    arc: tuple[int, int]
    function: str
    excerpt: str

    @property
    def label(self) -> str:
        return branch_label(self.arc)


@dataclass(frozen=True)
class FileCoverage:
    """One file of serena/ as the golden run left it: statements and branches, and which of them no golden ran."""

    path: str  # relative to the repository root, posix
    statements: tuple[int, ...]
    missed_lines: tuple[int, ...]
    branches: int
    missed_branches: tuple[tuple[int, int], ...]
    owners: Mapping[int, str] = field(default_factory=dict)  # missed line or branch source → its function

    @property
    def covered_statements(self) -> int:
        return len(self.statements) - len(self.missed_lines)

    @property
    def covered_branches(self) -> int:
        return self.branches - len(self.missed_branches)

    @property
    def percent(self) -> float:
        """coverage.py's figure: (covered statements + covered branches) / (statements + branches)."""
        return _percent(self.covered_statements + self.covered_branches, len(self.statements) + self.branches)

    @property
    def line_percent(self) -> float:
        return _percent(self.covered_statements, len(self.statements))

    @property
    def branch_percent(self) -> float:
        return _percent(self.covered_branches, self.branches)

    @property
    def missed_ranges(self) -> str:
        return line_ranges(self.missed_lines, self.statements)

    @property
    def first_missed_line(self) -> int | None:
        """Where a finding points: the first missed statement, else the first line with a branch not taken."""
        if self.missed_lines:
            return self.missed_lines[0]
        return min((source for source, _ in self.missed_branches), default=None)

    def regions(self, source_lines: Sequence[str]) -> list[UncoveredRegion]:
        """The missed statements as runs (across non-statement lines), split where the enclosing function changes."""
        order = {number: index for index, number in enumerate(self.statements)}
        runs: list[list[int]] = []
        for number in self.missed_lines:
            last = runs[-1][-1] if runs else None
            same_run = (
                last is not None
                and order.get(number, -2) == order.get(last, -3) + 1
                and self.owners.get(number, "") == self.owners.get(last, "")
            )
            if same_run:
                runs[-1].append(number)
            else:
                runs.append([number])
        return [
            UncoveredRegion(self.path, run[0], run[-1], self.owners.get(run[0], ""), _excerpt(source_lines, run[0]))
            for run in runs
        ]

    def untaken_branches(self, source_lines: Sequence[str]) -> list[UntakenBranch]:
        """Missed branches that the missed lines do not already show: their line ran, their destination is not a
        missed line (it runs by another way, or the branch leaves the function)."""
        missed = set(self.missed_lines)
        return [
            UntakenBranch(self.path, arc, self.owners.get(arc[0], ""), _excerpt(source_lines, arc[0]))
            for arc in self.missed_branches
            if arc[0] not in missed and arc[1] not in missed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "statements": len(self.statements),
            "covered_statements": self.covered_statements,
            "missed_lines": self.missed_ranges,
            "branches": self.branches,
            "covered_branches": self.covered_branches,
            "missed_branches": [branch_label(arc) for arc in self.missed_branches],
            "percent": self.percent,
            "line_percent": self.line_percent,
            "branch_percent": self.branch_percent,
        }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _excerpt(source_lines: Sequence[str], number: int) -> str:
    return _clip(source_lines[number - 1].strip() if 0 < number <= len(source_lines) else "", EXCERPT_WIDTH)


def files_from_report(document: Mapping[str, Any], repo_root: Path) -> tuple[FileCoverage, ...]:
    """The files of a coverage.py JSON report (format 3: with `functions`), keyed relative to `repo_root`."""
    measured = []
    for name, entry in document.get("files", {}).items():
        path = repo_relative(repo_root / name, repo_root)
        executed, missed = entry["executed_lines"], entry["missing_lines"]
        owners: dict[int, str] = {}
        for function, part in (entry.get("functions") or {}).items():
            if not function:
                continue  # module level
            lines = [*part.get("missing_lines", ()), *(source for source, _ in part.get("missing_branches", ()))]
            for number in lines:
                if len(function) > len(owners.get(number, "")):  # the innermost function: `outer.inner` is longer
                    owners[number] = function
        measured.append(
            FileCoverage(
                path=path,
                statements=tuple(sorted(set(executed) | set(missed))),
                missed_lines=tuple(sorted(missed)),
                branches=int(entry["summary"].get("num_branches", 0)),
                missed_branches=tuple(sorted((int(a), int(b)) for a, b in entry.get("missing_branches", ()))),
                owners=owners,
            )
        )
    return tuple(sorted(measured, key=lambda file: file.path))


def coverage_floors(cfg: HarnessConfig) -> dict[str, float]:
    """{path: percent} from `golden.coverage_floors`; DEFAULT_FLOORS while nothing sets it (the key unknown to the
    configuration, or left at its default), so an empty default in the key list cannot switch the floors off."""
    where = cfg.sources.get(FLOORS_KEY, "default")
    configured = DEFAULT_FLOORS if where == "default" else cfg.values.get(FLOORS_KEY)
    if not isinstance(configured, Mapping):
        raise ConfigError(f"{where}: {FLOORS_KEY} = {configured!r}; expected a table {{path = percent}}")
    floors = {}
    for path, floor in configured.items():
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor <= 100:
            raise ConfigError(f"{where}: {FLOORS_KEY}[{path!r}] = {floor!r}; expected a number 0-100")
        floors[str(path).replace("\\", "/").removeprefix("./")] = float(floor)
    return floors


@dataclass(frozen=True)
class GoldenCoverage:
    """What a golden run executed of serena/, the floors it is judged against, and why nothing was measured if so."""

    repo_root: Path
    selection: Selection
    floors: Mapping[str, float]
    files: tuple[FileCoverage, ...] = ()
    verdicts: Mapping[str, str] = field(default_factory=dict)  # case id → its golden verdict in the measured run
    seconds: float = 0.0
    reason: str | None = None  # set when nothing was measured
    floors_source: str = "default"

    @property
    def statements(self) -> int:
        return sum(len(file.statements) for file in self.files)

    @property
    def covered_statements(self) -> int:
        return sum(file.covered_statements for file in self.files)

    @property
    def branches(self) -> int:
        return sum(file.branches for file in self.files)

    @property
    def covered_branches(self) -> int:
        return sum(file.covered_branches for file in self.files)

    @property
    def percent(self) -> float:
        return _percent(self.covered_statements + self.covered_branches, self.statements + self.branches)

    def file(self, path: str) -> FileCoverage | None:
        return next((file for file in self.files if file.path == path), None)

    def _source_lines(self, path: str) -> list[str]:
        try:
            return (self.repo_root / path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []

    def regions(self) -> list[UncoveredRegion]:
        """The generation path's (the floor files') statements no golden executes."""
        return [
            region
            for path in sorted(self.floors)
            if (file := self.file(path)) is not None
            for region in file.regions(self._source_lines(path))
        ]

    def untaken_branches(self) -> list[UntakenBranch]:
        return [
            branch
            for path in sorted(self.floors)
            if (file := self.file(path)) is not None
            for branch in file.untaken_branches(self._source_lines(path))
        ]

    def check_result(self, evidence: Sequence[str] = ()) -> CheckResult:
        """Failed when a floor file is under its floor (or not measured), inconclusive when nothing ran."""
        if self.reason is not None:
            return CheckResult(
                check=CHECK,
                outcome=Outcome.INCONCLUSIVE,
                summary="no golden coverage measured",
                reason=self.reason,
                figures={"selection": self.selection.to_dict()},
                evidence=tuple(evidence),
            )
        problems: list[str] = []
        findings: list[Finding] = []
        floor_figures: dict[str, Any] = {}
        for path, floor in sorted(self.floors.items()):
            measured = self.file(path)
            if measured is None:
                problems.append(f"{path}: has a golden-coverage floor of {floor:g}% but is not a file of serena/")
                floor_figures[path] = {"floor": floor, "percent": None, "met": False}
                if self.floors_source.endswith(".toml"):
                    floors_file = Path(self.floors_source)
                    shown = repo_relative(floors_file, self.repo_root)
                    findings.append(Finding(FLOOR_RULE, problems[-1], shown, line_containing(floors_file, path)))
                continue
            met = measured.percent >= floor
            floor_figures[path] = {"floor": floor, "percent": measured.percent, "met": met}
            if not met:
                first = measured.first_missed_line
                problems.append(
                    f"{path}: {shown_percent(measured.percent)}% executed by the goldens is under its floor {floor:g}% "
                    f"({measured.covered_statements}/{len(measured.statements)} statements, "
                    f"{measured.covered_branches}/{measured.branches} branches; missed lines {measured.missed_ranges})"
                )
                findings.append(Finding(FLOOR_RULE, problems[-1], path, first))
        met_count = sum(1 for figure in floor_figures.values() if figure["met"])
        errored = sorted(case for case, verdict in self.verdicts.items() if verdict == "errored")
        summary = (
            f"{len(self.verdicts)} golden cases execute {shown_percent(self.percent)}% of serena/ "
            f"(lines {self.covered_statements}/{self.statements}, branches {self.covered_branches}/{self.branches})"
            f"; {met_count}/{len(self.floors)} generation-path floors met"
        )
        if errored:
            summary += f"; {len(errored)} case(s) errored part-way: {', '.join(errored)}"
        if not self.selection.is_full:
            summary += " (a selection: the floors are set for the full suite)"
        return CheckResult(
            check=CHECK,
            outcome=Outcome.FAILED if problems else Outcome.PASSED,
            summary=summary,
            figures={
                "percent": self.percent,
                "statements": self.statements,
                "covered_statements": self.covered_statements,
                "branches": self.branches,
                "covered_branches": self.covered_branches,
                "cases": dict(self.verdicts),
                "seconds": self.seconds,
                "selection": self.selection.to_dict(),
                "floors": floor_figures,
                "floors_source": self.floors_source,
            },
            problems=tuple(problems),
            evidence=tuple(evidence),
            findings=tuple(findings),
        )

    def to_dict(self, evidence: Sequence[str] = ()) -> dict[str, Any]:
        """The evidence document: the verdict, every file's figures, and the generation path's uncovered regions."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "result": self.check_result(evidence).to_dict(),
            "files": {file.path: file.to_dict() for file in self.files},
            "uncovered_regions": [
                {"path": r.path, "lines": r.lines, "function": r.function, "source": r.excerpt} for r in self.regions()
            ],
            "untaken_branches": [
                {"path": b.path, "branch": b.label, "function": b.function, "source": b.excerpt}
                for b in self.untaken_branches()
            ],
        }

    # -- tables -----------------------------------------------------------------------------------------------

    def _floor_cell(self, path: str) -> str:
        if path not in self.floors:
            return ""
        measured = self.file(path)
        met = measured is not None and measured.percent >= self.floors[path]
        return f"{self.floors[path]:g} {'ok' if met else 'UNDER'}"

    def markdown(self, *, title: str = "serena-verify golden coverage", evidence: Sequence[str] = ()) -> str:
        """The verdict, every file of serena/, and what no golden executes on the generation path, as Markdown."""
        lines = [render([self.check_result(evidence)], "markdown", title=title).rstrip("\n")]
        if self.reason is not None:
            return "\n".join(lines) + "\n"
        lines += [
            "",
            f"{len(self.verdicts)} cases ({', '.join(sorted(self.verdicts))}) in {self.seconds:.1f} s. Percent is "
            "coverage.py's: statements and branches together. A floor marks the generation path.",
            "",
            "| file | statements | missed lines | branches | missed branches | line % | branch % | percent | floor |",
            "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
        ]
        for file in self.files:
            missed_branches = [branch_label(arc) for arc in file.missed_branches]
            shown_branches = ", ".join(missed_branches[:8]) + (
                f", … {len(missed_branches) - 8} more" if len(missed_branches) > 8 else ""
            )
            lines.append(
                f"| {file.path} | {len(file.statements)} | {file.missed_ranges} | {file.branches} | {shown_branches} "
                f"| {shown_percent(file.line_percent)} | {shown_percent(file.branch_percent)} "
                f"| {shown_percent(file.percent)} | {self._floor_cell(file.path)} |"
            )
        lines.append(
            f"| **total** | {self.statements} | {self.statements - self.covered_statements} missed | {self.branches} "
            f"| {self.branches - self.covered_branches} missed "
            f"| {shown_percent(_percent(self.covered_statements, self.statements))} "
            f"| {shown_percent(_percent(self.covered_branches, self.branches))} | {shown_percent(self.percent)} | |"
        )
        regions = self.regions()
        lines += ["", "#### Generation-path lines no golden executes", ""]
        if regions:
            lines += ["| file | lines | in | source (first line) |", "| --- | --- | --- | --- |"]
            lines += [f"| {r.path} | {r.lines} | {_code(r.function)} | {_code(r.excerpt)} |" for r in regions]
        else:
            lines.append("Every statement of the generation path runs under the goldens.")
        branches = self.untaken_branches()
        if branches:
            lines += [
                "",
                "#### Generation-path branches no golden takes (their line runs)",
                "",
                "| file | branch | in | source |",
                "| --- | --- | --- | --- |",
            ]
            lines += [f"| {b.path} | {b.label} | {_code(b.function)} | {_code(b.excerpt)} |" for b in branches]
        return "\n".join(lines) + "\n"

    def terminal(self) -> str:
        """The files of the generation path and their uncovered regions, as plain-text tables."""
        if self.reason is not None:
            return ""
        width = max([len(path) for path in self.floors] + [len("file")])
        lines = [
            f"{'file'.ljust(width)}  stmts  miss  branches  miss  line%  branch%  percent  floor",
        ]
        for path in sorted(self.floors):
            file = self.file(path)
            if file is None:
                lines.append(f"{path.ljust(width)}  (not a file of serena/)  floor {self.floors[path]:g}")
                continue
            lines.append(
                f"{path.ljust(width)}  {len(file.statements):>5}  {len(file.missed_lines):>4}  {file.branches:>8}  "
                f"{len(file.missed_branches):>4}  {shown_percent(file.line_percent):>5}  "
                f"{shown_percent(file.branch_percent):>7}  {shown_percent(file.percent):>7}  {self._floor_cell(path)}"
            )
        lines.append(
            f"{'all of serena/'.ljust(width)}  {self.statements:>5}  {self.statements - self.covered_statements:>4}  "
            f"{self.branches:>8}  {self.branches - self.covered_branches:>4}  "
            f"{shown_percent(_percent(self.covered_statements, self.statements)):>5}  "
            f"{shown_percent(_percent(self.covered_branches, self.branches)):>7}  {shown_percent(self.percent):>7}"
        )
        regions = self.regions()
        if regions:
            lines += ["", "generation-path lines no golden executes:"]
            place = max(len(f"{r.path}:{r.lines}") for r in regions)
            lines += [
                f"  {f'{r.path}:{r.lines}'.ljust(place)}  {_clip(r.function or '<module>', 40):<40}  {r.excerpt}"
                for r in regions
            ]
        branches = self.untaken_branches()
        if branches:
            lines += ["", "generation-path branches no golden takes (their line runs):"]
            place = max(len(f"{b.path}:{b.label}") for b in branches)
            lines += [
                f"  {f'{b.path}:{b.label}'.ljust(place)}  {_clip(b.function or '<module>', 40):<40}  {b.excerpt}"
                for b in branches
            ]
        return "\n".join(lines) + "\n"


def write_coverage_report(golden: GoldenCoverage, folder: Path) -> CheckResult:
    """Write coverage.json (verdict, every file, uncovered regions) and coverage.md into `folder`, each atomically;
    the check result, naming them as its evidence."""
    evidence = (str(folder / "coverage.json"), str(folder / "coverage.md"))
    atomic_write_text(folder / "coverage.json", json.dumps(golden.to_dict(evidence), indent=2) + "\n")
    atomic_write_text(folder / "coverage.md", golden.markdown(evidence=evidence))
    return golden.check_result(evidence)


def _code(text: str) -> str:
    return f"`{_cell(text).replace('`', '´')}`" if text else ""


# -- the run ----------------------------------------------------------------------------------------------------


def golden_coverage(
    cfg: HarnessConfig,
    *,
    selection: Selection = Selection(),
    progress: Progress | None = None,
) -> GoldenCoverage:
    """Run the selected golden cases in a fresh process under coverage.py and read back what they executed."""
    from harness.golden.cases import load_cases

    floors = coverage_floors(cfg)
    floors_source = cfg.sources.get(FLOORS_KEY, "default")
    measured = GoldenCoverage(cfg.repo_root, selection, floors, floors_source=floors_source)
    chosen = selection.apply(load_cases(cfg.path("golden.cases_dir")))
    if not chosen:
        wanted = ", ".join(selection.patterns) or "all cases"
        return replace(measured, reason=f"no golden case matches the selection ({wanted}): nothing ran or was measured")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serena-golden-coverage-") as scratch:
        out = Path(scratch)
        job = {
            "repo_root": str(cfg.repo_root),
            "values": dict(cfg.values),
            "sources": dict(cfg.sources),
            "selection": selection.to_dict(),
        }
        (out / "job.json").write_text(json.dumps(job, default=str), encoding="utf-8")
        failure = _run_worker(cfg.repo_root, out, progress)
        if failure is not None:
            return replace(measured, reason=f"the golden run under coverage did not finish: {failure}")
        document = json.loads((out / "coverage.py.json").read_text(encoding="utf-8"))
        run = json.loads((out / "cases.json").read_text(encoding="utf-8"))
    verdicts = {entry["case"]: entry["verdict"] for entry in run["cases"]}
    if not verdicts:
        return replace(measured, reason="the golden run ran no case: nothing was measured")
    return replace(
        measured,
        files=files_from_report(document, cfg.repo_root),
        verdicts=verdicts,
        seconds=time.perf_counter() - started,
    )


def _worker_environment(repo_root: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_WORKER_ENV_PREFIXES)}
    # the measured checkout's harness and serena come first, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _run_worker(repo_root: Path, out: Path, progress: Progress | None) -> str | None:
    """Run the worker, passing its progress lines on; None when it finished, else its last line of complaint."""
    command = [sys.executable, "-m", "harness.golden.coverage", "--job", str(out / "job.json"), "--out", str(out)]
    log = out / "worker.log"
    with (
        log.open("w", encoding="utf-8") as errors,
        subprocess.Popen(
            command,
            cwd=repo_root,
            env=_worker_environment(repo_root),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as worker,
    ):
        assert worker.stdout is not None
        for line in worker.stdout:
            if progress is not None and line.startswith(_PROGRESS_TAG):
                position, total, case_id = line[len(_PROGRESS_TAG) :].split(maxsplit=2)
                progress(case_id.strip(), int(position), int(total))
        code = worker.wait()
    if code == 0 and (out / "coverage.py.json").is_file() and (out / "cases.json").is_file():
        return None
    complaint = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return f"exit status {code}: {complaint[-1].strip() if complaint else 'no output'}"


def _worker(argv: Sequence[str] | None = None) -> int:
    """The measuring process: coverage on before serena is imported, the golden run, coverage.py's JSON report."""
    parser = argparse.ArgumentParser(prog="python -m harness.golden.coverage", description=__doc__)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text(encoding="utf-8"))
    repo_root = Path(job["repo_root"])
    source = (repo_root / SOURCE_PACKAGE).resolve()
    early = sorted(name for name in sys.modules if name == SOURCE_PACKAGE or name.startswith(SOURCE_PACKAGE + "."))
    if early:
        print(f"golden coverage worker: {', '.join(early)} imported before coverage started", file=sys.stderr)
        return 2
    import coverage

    pyproject = repo_root / "pyproject.toml"
    measurer = coverage.Coverage(
        data_file=None,
        branch=True,
        source=[str(source)],
        config_file=str(pyproject) if pyproject.is_file() else False,
    )
    cfg = HarnessConfig(repo_root=repo_root, values=job["values"], sources=job["sources"])

    def announce(case: Any, position: int, total: int) -> None:
        print(f"{_PROGRESS_TAG} {position} {total} {case.id}", flush=True)

    measurer.start()
    try:
        from harness.golden.session import run_goldens

        report = run_goldens(cfg, selection=Selection.from_dict(job["selection"]), progress=announce)
        imported = sys.modules.get(SOURCE_PACKAGE)
    finally:
        measurer.stop()
    where = Path(getattr(imported, "__file__", "") or "").resolve()
    if imported is None or not where.is_relative_to(source):
        print(f"golden coverage worker: serena came from {where}, not from {source}", file=sys.stderr)
        return 2
    measurer.json_report(outfile=str(args.out / "coverage.py.json"))
    cases = [{"case": verdict.case_id, "verdict": str(verdict.verdict)} for verdict in report.verdicts]
    (args.out / "cases.json").write_text(json.dumps({"cases": cases}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
