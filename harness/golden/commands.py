"""`serena-verify golden …` commands: parse, call the golden functions, render, return an exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.cli_options import JsonOpt, OutputOpt, StrictOpt, choose_format, config
from harness.errors import GoldenError
from harness.golden.coverage_command import coverage_command
from harness.outcome import exit_code
from harness.output import append_step_summary, write_output

if TYPE_CHECKING:
    from harness.config import HarnessConfig
    from harness.golden.report import GoldenReport
    from harness.golden.session import CaseObserver, Progress, UpdateMode

UPDATE_MARKDOWN = "golden-update.md"
FRONTENDS_MARKDOWN = "frontends.md"
FRONTENDS_JSON = "frontends.json"
golden_app = typer.Typer(
    help="Golden outputs: run, update, report, merge, calibrate, selftest, ab, cross, coverage.", no_args_is_help=True
)

FORMATS = ("terminal", "json", "junit", "markdown", "html")
# golden reports have one more format than check results (html), so their --format says so
FormatOpt = Annotated[str, typer.Option("--format", help="terminal, json, junit, markdown or html.")]
# calibrate and selftest give check results, so theirs are the check-result formats
ControlsFormatOpt = Annotated[str, typer.Option("--format", help="terminal, json, markdown, junit or sarif.")]
CaseOpt = Annotated[list[str] | None, typer.Option("--case", "-k", help="Case id or glob (repeatable).")]
ShardOpt = Annotated[str | None, typer.Option("--shard", help="Run only shard k of N, e.g. 2/4.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda: picks the golden set (cpu-fp32, …).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32 or fp16.")]
ReportDirOpt = Annotated[
    Path | None, typer.Option("--report-dir", help="Folder for golden.json, actual images and every report format.")
]
WarnUnusedOpt = Annotated[bool, typer.Option("--warn-unused", help="Unused goldens warn instead of failing.")]


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


def _progress_to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


@contextmanager
def _progress_bar() -> Iterator[Progress]:
    """typer's progress bar on stderr, opened once run_goldens says how many cases it will run."""
    with ExitStack() as stack:
        bars: list[Any] = []

        def advance(case: object, position: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(typer.progressbar(length=total, label="golden", file=sys.stderr)))
            bars[0].update(1)

        yield advance


def _publish_and_emit(report: GoldenReport, folder: Path, chosen: str, output: str, *, strict: bool) -> int:
    """Write the report folder, add the Markdown to the CI step summary, render the chosen format, and say how to
    exit."""
    from harness.golden.publish import write_golden_report
    from harness.golden.render import render_markdown

    write_golden_report(report, folder)
    append_step_summary(render_markdown(report))
    return _emit(report, chosen, output, strict=strict)


def _emit(report: GoldenReport, chosen: str, output: str, *, strict: bool) -> int:
    from harness.golden.render import RENDERERS

    write_output(RENDERERS[chosen](report), output)
    return exit_code(report.outcome(), strict=strict)


def _golden_run(
    cfg: HarnessConfig,
    *,
    cases: list[str] | None,
    shard: str | None,
    device: str,
    precision: str,
    update: UpdateMode | None,
    force: bool = False,
    alternate: str | None = None,
    alongside: Callable[[], AbstractContextManager[CaseObserver]] | None = None,
) -> GoldenReport:
    from harness.golden.selection import Selection, parse_shard
    from harness.golden.session import run_goldens

    _check_choice(device, ("cpu", "cuda"), "--device")
    _check_choice(precision, ("fp32", "fp16"), "--precision")
    selection = Selection(tuple(cases or ()), parse_shard(shard))
    with _progress_bar() as progress:
        return run_goldens(
            cfg,
            selection=selection,
            device=device,
            precision=precision,
            update=update,
            force=force,
            alternate=alternate,
            progress=progress,
            alongside=alongside,
        )


def _report_dir(report_dir: Path | None, cfg: HarnessConfig, default: str) -> Path:
    return report_dir or cfg.path("evidence_dir") / default


@golden_app.command("run")
def run_command(
    cases: CaseOpt = None,
    shard: ShardOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    warn_unused: WarnUnusedOpt = False,
    report_dir: ReportDirOpt = None,
    allow_drift: Annotated[
        bool,
        typer.Option(
            "--allow-drift",
            help="On the machine class a golden was recorded on, judge an in-tolerance difference equivalent "
            "instead of drifted (which fails).",
        ),
    ] = False,
    via: Annotated[
        str | None,
        typer.Option(
            "--via",
            help="Also make the cases through the HTTP API, the CLI or all (both) and require the in-process pixels.",
        ),
    ] = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = None,
) -> int:
    """Run the golden cases and compare them with the recorded set (never writes goldens); with --via, also through
    the front ends, each of which must make the in-process pixels (its results in frontends.json and frontends.md in
    the report folder, and on the terminal)."""
    chosen = choose_format(fmt, as_json, FORMATS)
    cfg = config(
        strict=strict,
        **{"golden.warn_unused": True if warn_unused else None, "golden.drift": "equivalent" if allow_drift else None},
    )
    vias = _parse_vias(via) if via is not None else ()
    if not vias:
        report = _golden_run(cfg, cases=cases, shard=shard, device=device, precision=precision, update=None)
        return _publish_and_emit(report, _report_dir(report_dir, cfg, "golden"), chosen, output, strict=cfg["strict"])
    from harness.golden.frontends import FrontendsAlongside
    from harness.golden.selection import Selection, parse_shard
    from harness.outcome import combine
    from harness.render import render

    # the front ends are compared with the golden run's own in-process images: each case is made once in process
    riding = FrontendsAlongside(cfg, Selection(tuple(cases or ()), parse_shard(shard)), vias)
    report = _golden_run(
        cfg, cases=cases, shard=shard, device=device, precision=precision, update=None, alongside=riding.open
    )
    frontends = riding.finish(report.skipped_reason)
    folder = _report_dir(report_dir, cfg, "golden")
    _publish_and_emit(report, folder, chosen, output, strict=cfg["strict"])
    results = frontends.check_results()
    write_output(render(results, "markdown"), folder / FRONTENDS_MARKDOWN)
    write_output(render(results, "json"), folder / FRONTENDS_JSON)
    append_step_summary(render(results, "markdown"))
    if chosen == "terminal":
        write_output(render(results, "terminal"), output)
    return exit_code(combine([report.outcome(), *(r.outcome for r in results)]), strict=cfg["strict"])


def _parse_vias(via: str) -> tuple[Any, ...]:
    from harness.golden.frontends import parse_vias

    try:
        return parse_vias(via)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--via") from None


@golden_app.command("update")
def update_command(
    missing: Annotated[bool, typer.Option("--missing", help="Record cases that have no golden yet.")] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="Re-record cases that are not identical/equivalent.")
    ] = False,
    record_all: Annotated[
        bool, typer.Option("--all", help="Re-record every selected case that is not identical or equivalent.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Rewrite identical and equivalent images too (with --all: every selected case)."),
    ] = False,
    allow_ci: Annotated[
        bool, typer.Option("--allow-ci", help="Write goldens even though CI is set (goldens are recorded locally).")
    ] = False,
    alternate: Annotated[
        str | None,
        typer.Option(
            "--alternate",
            help="Record this machine class's images as the accepted alternate NAME of each selected case it does "
            "not reproduce exactly (instead of --missing/--failed/--all).",
        ),
    ] = None,
    cases: CaseOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    report_dir: ReportDirOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> int:
    """Record goldens: exactly one of --missing, --failed or --all. Images identical or within tolerance are never
    rewritten unless --force; refused when CI is set unless --allow-ci. Writes are queued and flushed once,
    atomically, and what changed is printed and written to golden-update.md in the report folder."""
    chosen = choose_format(fmt, as_json, FORMATS)
    modes: list[UpdateMode] = [
        name for name, on in (("missing", missing), ("failed", failed), ("all", record_all)) if on
    ]
    if len(modes) + (alternate is not None) != 1:
        raise typer.BadParameter("choose exactly one of --missing, --failed, --all, --alternate", param_hint="update")
    from harness.golden.session import ci_is_set

    if ci_is_set() and not allow_ci:
        raise GoldenError(
            f"golden update refuses to write goldens when CI is set (CI={os.environ['CI']!r}): record them locally "
            "and commit them, or pass --allow-ci"
        )
    cfg = config()
    report = _golden_run(cfg, cases=cases, shard=None, device=device, precision=precision, update=modes[0], force=force)
    from harness.golden.render import render_update_markdown

    folder = _report_dir(report_dir, cfg, "golden")
    folder.mkdir(parents=True, exist_ok=True)
    write_output(render_update_markdown(report), folder / UPDATE_MARKDOWN)
    # recording is not a check: a skipped update (no CUDA device) is not escalated by strict
    return _publish_and_emit(report, _report_dir(report_dir, cfg, "golden"), chosen, output, strict=False)


@golden_app.command("report")
def report_command(
    report_dir: Annotated[Path | None, typer.Option("--dir", help="Report folder of an earlier run.")] = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = None,
) -> int:
    """Render an earlier run's report (golden.json and its images) in any format."""
    from harness.golden.document import read_report

    chosen = choose_format(fmt, as_json, FORMATS)
    cfg = config(strict=strict)
    report = read_report(_report_dir(report_dir, cfg, "golden"))
    return _emit(report, chosen, output, strict=cfg["strict"])


@golden_app.command("merge")
def merge_command(
    shard_dirs: Annotated[list[Path], typer.Argument(help="Report folders of the shard runs.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the merged report.")],
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = None,
) -> int:
    """Combine shard reports into one; unused goldens are computed over all shards together."""
    from harness.golden.document import read_report
    from harness.golden.report import GoldenReport

    chosen = choose_format(fmt, as_json, FORMATS)
    cfg = config(strict=strict)
    merged = GoldenReport.merge([read_report(folder) for folder in shard_dirs])
    return _publish_and_emit(merged, out_dir, chosen, output, strict=cfg["strict"])


golden_app.command("coverage")(coverage_command)


def register(app: typer.Typer) -> None:
    app.add_typer(golden_app, name="golden")


def _controls_exit(report: Any, fmt: str, as_json: bool, output: str) -> int:
    from harness.render import RESULTS_FORMATS, render

    chosen = choose_format(fmt, as_json, RESULTS_FORMATS)
    result = report.check_result()
    text = render([result], chosen)  # type: ignore[arg-type]
    if chosen == "terminal":
        rows = [
            f"  {r.case_id:<24} {r.variant:<22} expect {r.expect:<10} got {r.verdict!s:<10} "
            f"phash16 {r.phash_distance:>3}  mean abs {r.mean_abs:7.3f}  SSIM {r.ssim:.4f}  "
            f"{'ok' if r.ok else 'FAIL'}" + (f" (beyond: {', '.join(r.beyond)})" if r.beyond else "")
            for r in report.results
        ]
        text = "\n".join(rows) + "\n" + text
    write_output(text, output)
    return exit_code(result.outcome)


@golden_app.command("calibrate")
def calibrate_command(
    cases: CaseOpt = None,
    no_record: Annotated[bool, typer.Option("--no-record", help="Measure only; leave the manifest alone.")] = False,
    retune: Annotated[
        bool,
        typer.Option("--retune", help="Derive the set's SSIM tolerance from the floor even if it has one already."),
    ] = False,
    fmt: ControlsFormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> int:
    """Measure the noise floor (threads 1 vs 2, 1e-4 latent jitter, reruns) and record it in the cpu-fp32 set; a set
    without an SSIM tolerance (or with --retune) gets one derived from the floor."""
    from harness.golden.calibrate import calibrate

    report = calibrate(
        config(), patterns=tuple(cases or ()), record=not no_record, retune=retune, progress=_progress_to_stderr
    )
    return _controls_exit(report, fmt, as_json, output)


@golden_app.command("selftest")
def selftest_command(
    cases: CaseOpt = None,
    fmt: ControlsFormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> int:
    """Negative controls (seed+1, steps+1, CFG -0.5, one prompt character, another sampler, strength ±0.1, and a
    slight blur, contrast and saturation change of the decoded image) must be judged changed and noise variants
    equivalent; otherwise the harness cannot be trusted and this fails."""
    from harness.golden.calibrate import selftest

    report = selftest(config(), patterns=tuple(cases or ()), progress=_progress_to_stderr)
    return _controls_exit(report, fmt, as_json, output)


@golden_app.command("ab")
def ab_command(
    base: Annotated[str, typer.Option("--base", help="Git ref of the base commit, e.g. HEAD~1 or origin/main.")],
    cases: CaseOpt = None,
    report_dir: ReportDirOpt = None,
    noise_runs: Annotated[
        int,
        typer.Option(
            "--noise-runs",
            min=0,
            help="Run the base this many more times and judge each case against the base's own rerun distance.",
        ),
    ] = 0,
    allow_drift: Annotated[
        bool, typer.Option("--allow-drift", help="Judge an in-tolerance difference equivalent instead of drifted.")
    ] = False,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> int:
    """Run the cases on --base (a git worktree, its own process) and on the working tree, and compare them; both
    run here, so an in-tolerance difference is drifted (a change) unless the base's own reruns differ as much."""
    from harness.golden.ab import run_ab
    from harness.golden.selection import Selection

    chosen = choose_format(fmt, as_json, FORMATS)
    cfg = config(**{"golden.drift": "equivalent" if allow_drift else None})
    folder = _report_dir(report_dir, cfg, "golden-ab")
    report = run_ab(
        cfg,
        base,
        selection=Selection(tuple(cases or ())),
        work_dir=folder / "work",
        progress=_progress_to_stderr,
        noise_runs=noise_runs,
    )
    return _publish_and_emit(report, folder, chosen, output, strict=False)


@golden_app.command("cross")
def cross_command(
    first: Annotated[str, typer.Option("--from", help="Environment key, e.g. cpu-fp32.")] = "cpu-fp32",
    second: Annotated[str, typer.Option("--to", help="Environment key, e.g. cuda-fp32.")] = "cuda-fp32",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = None,
) -> int:
    """Distances between two recorded sets (informational); skipped, with the reason, when one is not recorded."""
    from harness.golden.cross import cross_sets
    from harness.render import render

    cfg = config(strict=strict)
    result = cross_sets(cfg, first, second).check_result()
    text = render([result], "json" if as_json else "terminal", strict=cfg["strict"])
    if not as_json and result.figures.get("rows"):
        rows = [
            f"  {row['case']:<28} #{row['index']}  phash16 {row['phash_distance']:>3}  mean abs {row['mean_abs']:.3f}"
            for row in result.figures["rows"]
        ]
        text = "\n".join(rows) + "\n" + text
    write_output(text, output)
    return exit_code(result.outcome, strict=cfg["strict"])
