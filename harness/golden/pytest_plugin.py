"""pytest plugin: `pytest --golden` runs every golden case as a test item, judged by the harness's own rules.

Registered through the `pytest11` entry point, so pytest loads it in every run of this repository: at import time it
needs nothing but pytest, and without `--golden` it adds its options and nothing else (no hook, no item, no import).
With `--golden`:

- every case is an item `<case file>::<case id>`, marked `golden` and its mode; it runs the case (`run_case`), judges
  it against the recorded set with the set's tolerances (`compare_case`) and fails by the report's rules
  (`GoldenReport.failing`), with the verdict's reason as its failure; a quarantined case is skipped;
- every recorded golden no case defines is a failing item `<manifest>::unused::<case id>`, or, with
  `--golden-warn-unused`, a warning in the terminal summary;
- the case files join the run unless pytest's own collection reached some (named on the command line, or in a
  folder named there): then those run alone, and unused goldens only if the manifest was reached too;
- with `--golden-update`, a failing case is queued for re-recording as `serena-verify golden update --failed` does
  and its item passes, an unused golden is queued for removal, and the queue is written once, at the session's end;
- at the session's end, the harness's report folder (golden.json, actual images, HTML, JUnit, Markdown) is written
  to `--golden-report-dir`.

Under pytest-xdist each worker runs its items in its own runtime and writes its own report folder, and the controller
merges them (`GoldenReport.merge`) once every worker has finished. `--golden-update` is refused there: one session
writes the golden set, once.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.golden.cases import Case
    from harness.golden.compare import CaseVerdict
    from harness.golden.report import GoldenReport

PLUGIN_NAME = "serena-golden"
REPORT_FOLDER = "golden-pytest"  # under the evidence folder, unless --golden-report-dir says otherwise
WORKERS_FOLDER = "workers"  # under xdist: one report folder per worker, merged by the controller
WORKER_KEY = "serena_golden"  # our entry in xdist's workerinput (report folder) and workeroutput (what was written)
MARKERS = (
    "golden: a golden case (or unused golden) collected by `pytest --golden`",
    "txt2img: a txt2img golden case",
    "img2img: an img2img golden case",
)
UPDATE_HINT = "if the change is intended: pytest --golden --golden-update (or serena-verify golden update --failed)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("serena-golden", "Serena golden cases (harness/golden/pytest_plugin.py)")
    group.addoption(
        "--golden",
        action="store_true",
        help="Collect every golden case as a test item and judge it against the recorded golden set.",
    )
    group.addoption(
        "--golden-update",
        action="store_true",
        help="Re-record the goldens of failing and missing cases and remove unused ones (as `serena-verify golden "
        "update --failed`), written once at the end of the session; re-recorded items pass.",
    )
    group.addoption(
        "--golden-allow-ci",
        action="store_true",
        help="Let --golden-update write goldens even though CI is set (goldens are recorded locally).",
    )
    group.addoption(
        "--golden-warn-unused",
        action="store_true",
        help="Recorded goldens no case defines: a warning in the summary instead of failing unused:: items.",
    )
    group.addoption(
        "--golden-report-dir",
        metavar="DIR",
        default=None,
        help="Folder for the golden report (golden.json, actual images, HTML, JUnit, Markdown); "
        "default <evidence_dir>/golden-pytest, i.e. build/evidence/golden-pytest.",
    )
    group.addoption("--golden-device", choices=("cpu", "cuda"), default="cpu", help="Golden set device (cpu).")
    group.addoption("--golden-precision", choices=("fp32", "fp16"), default="fp32", help="Golden set dtype (fp32).")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("golden"):
        if config.getoption("golden_update"):
            raise pytest.UsageError("--golden-update records goldens of a golden run: add --golden")
        return
    from harness.golden.session import ci_is_set

    if config.getoption("golden_update") and ci_is_set() and not config.getoption("golden_allow_ci"):
        raise pytest.UsageError(
            "--golden-update refuses to write goldens when CI is set: record them locally, or add --golden-allow-ci"
        )
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.pluginmanager.register(GoldenPlugin(config), PLUGIN_NAME)


class GoldenFailure(Exception):
    """A golden item that the harness's rules fail; its message is the whole failure report."""


class GoldenPlugin:
    """The state of one `--golden` session in one process (the controller, or one xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        from harness.config import find_repo_root, load_config
        from harness.errors import HarnessError
        from harness.golden.cases import load_cases
        from harness.golden.manifest import Tolerances, UpdateQueue, load_golden_set
        from harness.golden.set_key import environment_key

        self.config = config
        self.device: str = config.getoption("golden_device")
        self.precision: str = config.getoption("golden_precision")
        self.update: bool = config.getoption("golden_update")
        worker_input = getattr(config, "workerinput", None)
        self.worker_id: str | None = None if worker_input is None else str(worker_input["workerid"])
        distributed = bool(getattr(config.option, "tx", None)) and getattr(config.option, "dist", "no") != "no"
        if self.update and (distributed or self.worker_id is not None):
            raise pytest.UsageError(
                "--golden-update writes the golden set once, at the end of one session: run it without xdist (-n)"
            )
        warn_flag = True if config.getoption("golden_warn_unused") else None
        try:
            self.cfg = load_config(find_repo_root(config.rootpath), {"golden.warn_unused": warn_flag})
            self.cases_dir = self.cfg.path("golden.cases_dir")
            self.cases: list[Case] = load_cases(self.cases_dir)
            self.key = environment_key(self.device, self.precision)
            self.golden_set = load_golden_set(self.cfg.path("golden.goldens_dir"), self.key)
            self.tolerances = Tolerances.resolve(self.cfg, self.golden_set)
        except HarnessError as exc:
            raise pytest.UsageError(f"--golden: {exc}") from None
        self.warn_unused: bool = self.cfg["golden.warn_unused"]
        self.recorded_ids = sorted(self.golden_set.entries)
        defined = {case.id for case in self.cases}
        self.unused_ids = [case_id for case_id in self.recorded_ids if case_id not in defined]
        self.report_dir = self._report_dir(worker_input)
        self.today = datetime.now(UTC).date()  # quarantines are judged against the session's start date
        # the case files pytest's own collection reached (named on the command line, or in a folder named there)
        self.collected_files: set[Path] = set()
        self.collected_manifest = False
        # what this process ran
        self.verdicts: list[CaseVerdict] = []
        self.unused_failed: list[str] = []  # unused goldens whose items ran and failed
        self.updated: list[str] = []  # cases queued for re-recording, then unused goldens queued for removal
        self.changes: list[Any] = []  # UpdateChange, what the update writes image by image
        self.queue = UpdateQueue(self.golden_set)
        self.runtime = ExitStack()
        self.started: float | None = None
        self.machine: dict[str, Any] | None = None  # this run's fingerprint, once the runtime is set up
        self.skip_reason: str | None = None
        # what the end of the session did
        self.worker_folders: list[Path] = []  # under xdist, on the controller: the workers' report folders
        self.problems: list[str] = []
        self.report: GoldenReport | None = None
        self.report_path: Path | None = None
        self.written: list[str] = []

    def _report_dir(self, worker_input: dict[str, Any] | None) -> Path:
        if worker_input is not None and WORKER_KEY in worker_input:
            return Path(worker_input[WORKER_KEY]) / WORKERS_FOLDER / str(self.worker_id)
        given = self.config.getoption("golden_report_dir")
        folder = self.config.invocation_params.dir / given if given else self.cfg.path("evidence_dir") / REPORT_FOLDER
        return folder.resolve()

    def _shown(self, path: Path) -> str:
        from harness.config import repo_relative

        return repo_relative(path, self.cfg.repo_root)

    @property
    def is_controller(self) -> bool:
        """Whether this process hands the items to xdist workers instead of running them."""
        return self.worker_id is None and self.config.pluginmanager.hasplugin("dsession")

    # -- collection ----------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> str:
        return (
            f"golden: {len(self.cases)} cases in {self._shown(self.cases_dir)}, set {self.key} "
            f"({self._shown(self.golden_set.manifest_path)}), report {self._shown(self.report_dir)}"
        )

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        """Case files and the set's manifest (when it has unused goldens) that pytest's own collection reaches: a case
        file or id named on the command line, or a folder holding them."""
        path = file_path.resolve()
        if path.suffix == ".toml" and path.parent == self.cases_dir:
            self.collected_files.add(path)
            return GoldenCaseFile.from_parent(parent, path=file_path, golden=self)
        if path == self.golden_set.manifest_path.resolve() and self.unused_ids and not self.warn_unused:
            self.collected_manifest = True
            return GoldenManifestFile.from_parent(parent, path=file_path, golden=self)
        return None

    @pytest.hookimpl(tryfirst=True)  # before -k, -m and --deselect narrow the items
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        """Unless pytest's collection reached case files itself, every case file and the unused goldens join."""
        if self.collected_files:
            return
        for path in sorted({Path(case.source) for case in self.cases}):
            items.extend(session.genitems(GoldenCaseFile.from_parent(session, path=path, golden=self)))
        if self.unused_ids and not self.warn_unused and not self.collected_manifest:
            manifest = GoldenManifestFile.from_parent(session, path=self.golden_set.manifest_path, golden=self)
            items.extend(session.genitems(manifest))

    # -- running -------------------------------------------------------------------------------------
    def _set_up_runtime(self) -> None:
        """One isolated runtime per process (per xdist worker), entered by the first case item, left at the end."""
        if self.started is not None:
            return
        self.started = time.perf_counter()
        if self.device == "cuda":
            from harness.golden.set_key import cuda_available

            available, detail = cuda_available()
            if not available:
                self.skip_reason = f"{detail}: the {self.key} set cannot be run here"
                return
        from harness.golden.runner import isolated_runtime
        from harness.golden.set_key import fingerprint

        self.runtime.enter_context(isolated_runtime(self.device, self.precision, self.cases_dir))
        self.machine = fingerprint(self.device, self.cfg["golden.num_threads"])

    def run_case_item(self, case: Case) -> None:
        from harness.errors import CaseErrored
        from harness.golden.compare import PASSING, CaseVerdict, Verdict, compare_case
        from harness.golden.runner import run_case

        self._set_up_runtime()
        if self.skip_reason is not None:
            self.verdicts.append(CaseVerdict(case.id, Verdict.SKIPPED, reason=self.skip_reason))
            pytest.skip(self.skip_reason)
        try:
            run = run_case(case, self.cases_dir, threads=self.cfg["golden.num_threads"])
        except CaseErrored as exc:
            verdict = CaseVerdict(case.id, Verdict.ERRORED, reason=f"generation raised {exc}")
        else:
            drift_machine = self.machine if self.cfg["golden.drift"] == "fail" else None
            verdict = compare_case(run, self.golden_set, self.tolerances, machine=drift_machine)
        verdict.quarantine = case.quarantine.to_dict(self.today) if case.quarantine else None
        self.verdicts.append(verdict)
        if self.update and verdict.verdict not in PASSING:
            self._queue_update(case, verdict)  # re-recorded when the session ends: passes, the summary says so
        problems = self._report([verdict]).check_result().problems
        if problems:
            hint = verdict.verdict not in (Verdict.ERRORED, Verdict.DEGENERATE) and not verdict.quarantine_expired
            raise GoldenFailure(problems[0] + (f"\n{UPDATE_HINT}" if hint else ""))
        if verdict.verdict not in PASSING and case.id not in self.updated:
            # not failing by the rules, yet not passing: a quarantined case, skipped (as the harness's JUnit shows it)
            pytest.skip(f"{case.id}: {verdict.verdict} — {verdict.reason}; {verdict.quarantine_note()}")

    def _queue_update(self, case: Case, verdict: CaseVerdict) -> None:
        """Queue the case's re-recording as `golden update --failed` does (never an errored or degenerate one)."""
        from harness.golden.compare import Verdict
        from harness.golden.manifest import PendingUpdate
        from harness.golden.report import update_changes
        from harness.golden.set_key import machine_class

        run = verdict.run
        if run is None or verdict.verdict is Verdict.DEGENERATE or self.machine is None:
            return  # errored: nothing made; degenerate: never recorded
        entry = self.golden_set.entries.get(case.id)
        from harness.golden.session import kept_images

        keep = kept_images(verdict, entry)
        pending = PendingUpdate(
            case.id,
            case.params(),
            case.digest(),
            run.images,
            run.measures,
            run.traces,
            machine_class(self.machine),
            keep,
        )
        self.queue.queue(pending)
        self.changes.extend(update_changes(verdict, entry, pending))
        self.updated.append(case.id)

    def run_unused_item(self, case_id: str) -> None:
        if self.update:
            from harness.golden.report import UpdateChange

            self.queue.remove(case_id)
            self.changes.append(UpdateChange(case_id, None, "removed", note="no case defines it any more"))
            self.updated.append(case_id)
            return
        self.unused_failed.append(case_id)
        (problem,) = self._report([], unused=[case_id]).check_result().problems
        raise GoldenFailure(
            f"{problem}: {self._shown(self.golden_set.manifest_path)} records it but no case defines it\n"
            "remove it with pytest --golden --golden-update, or pass --golden-warn-unused"
        )

    def _report(self, verdicts: list[CaseVerdict], unused: list[str] | None = None) -> GoldenReport:
        """A report of `verdicts` by this session's settings: the one home of the pass/fail rules."""
        from harness.golden.report import GoldenReport
        from harness.golden.selection import Selection

        return GoldenReport(
            environment_key=self.key,
            golden_dir=str(self.golden_set.folder),
            tolerances=self.tolerances,
            verdicts=verdicts,
            unused=list(unused or []),
            selection=Selection(),
            recorded_ids=self.recorded_ids,
            warn_unused=self.warn_unused,
            skipped_reason=self.skip_reason,
            updated=list(self.updated),
            changes=list(self.changes),
        )

    # -- xdist -----------------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Tell each worker where the report goes, so its own folder lies beside the controller's."""
        node.workerinput[WORKER_KEY] = str(self.report_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker finished: note its report folder and what went wrong writing it."""
        output = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if output:
            if output["report"]:
                self.worker_folders.append(Path(output["report"]))
            self.problems.extend(output["problems"])

    # -- the end of the session ------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from harness.errors import HarnessError

        self.runtime.close()
        try:
            if self.is_controller:
                self._merge_workers()
            else:
                self._finish()
        except (HarnessError, OSError) as exc:
            self.problems.append(f"golden report not written to {self._shown(self.report_dir)}: {exc}")
        worker_output = getattr(self.config, "workeroutput", None)
        if worker_output is not None:
            report = str(self.report_dir) if self.report_path is not None else None
            worker_output[WORKER_KEY] = {"report": report, "problems": self.problems}
        elif self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _finish(self) -> None:
        """Flush the update queue, then write the report of what ran here (nothing when no golden item ran)."""
        from harness.errors import HarnessError
        from harness.golden.publish import write_golden_report

        if not (self.verdicts or self.unused_failed or self.updated):
            return
        if self.queue:
            golden_set, queue = self.golden_set, self.queue
            # the set's fingerprint stands for the entries recorded without their own machine class, so it changes
            # only when the set is new or every entry is re-recorded now (as in run_goldens)
            if self.machine is not None and (
                not golden_set.recorded_with or set(golden_set.entries) <= set(queue.pending) | queue.removals
            ):
                queue.recorded_with = self.machine
            try:
                self.written = [str(path) for path in queue.flush()]
            except (HarnessError, OSError) as exc:
                self.problems.append(f"golden update not written to {self._shown(golden_set.folder)}: {exc}")
                self.updated, self.changes = [], []  # nothing was re-recorded: those cases fail in the report
        unused = self.unused_ids if self.warn_unused else self.unused_failed
        report = self._report(self.verdicts, unused=unused)
        report.written = self.written
        report.seconds = time.perf_counter() - self.started if self.started is not None else 0.0
        self.report = report
        self.report_path = write_golden_report(report, self.report_dir)

    def _merge_workers(self) -> None:
        """On the xdist controller: the workers' reports as one, in the report folder; their folders removed."""
        from harness.golden.document import read_report
        from harness.golden.publish import write_golden_report
        from harness.golden.report import GoldenReport

        if not self.worker_folders:
            return
        merged = GoldenReport.merge([read_report(folder) for folder in sorted(self.worker_folders)])
        self.report = merged
        self.report_path = write_golden_report(merged, self.report_dir)
        shutil.rmtree(self.report_dir / WORKERS_FOLDER, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from harness.golden.publish import HTML_NAME

        if self.worker_id is not None:
            return
        lines: list[tuple[str, dict[str, bool]]] = []
        if self.report is not None:
            summary = self.report.check_result().summary
            if self.report.unused and not self.warn_unused:
                summary += f"; {len(self.report.unused)} unused golden(s): {', '.join(self.report.unused)}"
            lines.append((summary, {}))
        re_recorded = [case_id for case_id in self.updated if case_id not in self.unused_ids]
        removed = [case_id for case_id in self.updated if case_id in self.unused_ids]
        if re_recorded and self.written:
            before = {verdict.case_id: verdict.verdict for verdict in self.verdicts}
            named = ", ".join(f"{case_id} (was {before[case_id]})" for case_id in re_recorded)
            where = self._shown(self.golden_set.manifest_path)
            lines.append((f"re-recorded {len(re_recorded)} golden(s) in {where}: {named}", {"yellow": True}))
        if removed and self.written:
            lines.append((f"removed {len(removed)} unused golden(s): {', '.join(removed)}", {"yellow": True}))
        if self.warn_unused:
            where = self._shown(self.golden_set.manifest_path)
            for case_id in self.unused_ids:
                text = f"warning: unused golden {case_id}: recorded in {where}, but no case defines it"
                lines.append((text, {"yellow": True}))
        if self.report_path is not None:
            lines.append((f"report: {self._shown(self.report_path.parent / HTML_NAME)}", {}))
        lines += [(f"error: {problem}", {"red": True}) for problem in self.problems]
        if lines:
            terminalreporter.write_sep("-", "golden")
            for text, markup in lines:
                terminalreporter.write_line(text, **markup)


def _short_failure(name: str, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """A golden failure or a harness error (a corrupt golden image…) as its own lines, without a traceback."""
    from harness.errors import HarnessError

    if isinstance(excinfo.value, GoldenFailure):
        return str(excinfo.value)
    if isinstance(excinfo.value, HarnessError):
        return f"{name}: {excinfo.value.slug} error: {excinfo.value}"
    return None


class GoldenCaseFile(pytest.File):
    """A case TOML file: one item per case it defines."""

    def __init__(self, *, golden: GoldenPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.golden = golden

    def collect(self) -> Iterator[GoldenCaseItem]:
        for case in self.golden.cases:
            if Path(case.source).resolve() == self.path.resolve():
                yield GoldenCaseItem.from_parent(self, name=case.id, case=case, golden=self.golden)


class GoldenCaseItem(pytest.Item):
    """One golden case: run it, judge it against its golden."""

    def __init__(self, *, case: Case, golden: GoldenPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.golden = golden
        self.add_marker("golden")
        self.add_marker(case.mode)

    def runtest(self) -> None:
        self.golden.run_case_item(self.case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return _short_failure(self.case.id, excinfo) or super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"golden case {self.case.id}"


class GoldenManifestFile(pytest.File):
    """The golden set's manifest: one item per recorded golden that no case defines."""

    def __init__(self, *, golden: GoldenPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.golden = golden

    def collect(self) -> Iterator[GoldenUnusedItem]:
        for case_id in self.golden.unused_ids:
            yield GoldenUnusedItem.from_parent(self, name=f"unused::{case_id}", case_id=case_id, golden=self.golden)


class GoldenUnusedItem(pytest.Item):
    """A recorded golden that no case defines: fails (or, under --golden-update, is removed)."""

    def __init__(self, *, case_id: str, golden: GoldenPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_id = case_id
        self.golden = golden
        self.add_marker("golden")

    def runtest(self) -> None:
        self.golden.run_unused_item(self.case_id)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return _short_failure(self.case_id, excinfo) or super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"unused golden {self.case_id}"
