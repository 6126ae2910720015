"""`serena-verify golden …` commands: parse, call the golden functions, render, exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.config import HarnessConfig
from harness.outcome import Outcome, exit_code
from harness.output import write_output

golden_app = typer.Typer(
    help="Golden outputs: run, update, report, merge, calibrate, selftest, ab, cross.", no_args_is_help=True
)

FORMATS = ("terminal", "json", "junit", "markdown", "html")
CaseOpt = Annotated[list[str] | None, typer.Option("--case", "-k", help="Case id or glob (repeatable).")]
ShardOpt = Annotated[str | None, typer.Option("--shard", help="Run only shard k of N, e.g. 2/4.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda: picks the golden set (cpu-fp32, …).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32 or fp16.")]
FormatOpt = Annotated[str, typer.Option("--format", help="terminal, json, junit, markdown or html.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Where the chosen format goes ('-' = stdout).")]
ReportDirOpt = Annotated[
    Path | None, typer.Option("--report-dir", help="Folder for golden.json, actual images and every report format.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat skipped as failed.")]
WarnUnusedOpt = Annotated[bool, typer.Option("--warn-unused", help="Unused goldens warn instead of failing.")]


def _config(**flags: Any) -> HarnessConfig:
    from harness.cli import config

    return config(**flags)


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


def _emit(document: dict[str, Any], fmt: str, as_json: bool, output: str) -> None:
    from harness.golden.render import RENDERERS

    chosen = _check_choice("json" if as_json else fmt, FORMATS, "--format")
    write_output(RENDERERS[chosen](document), output)


def _write_all_formats(document: dict[str, Any], folder: Path) -> None:
    """The report dir always holds every format, so CI can publish whichever it needs."""
    from harness.golden.render import render_html, render_junit, render_markdown

    write_output(render_html(document), folder / "golden.html")
    write_output(render_junit(document), folder / "golden.junit.xml")
    write_output(render_markdown(document), folder / "golden.md")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(render_markdown(document))


def _exit(outcome: Outcome, strict: bool) -> None:
    raise typer.Exit(exit_code(outcome, strict=strict))


def _run(
    *,
    cases: list[str] | None,
    shard: str | None,
    device: str,
    precision: str,
    warn_unused: bool,
    report_dir: Path | None,
    update: str | None,
) -> tuple[dict[str, Any], HarnessConfig]:
    from harness.golden.cases import load_cases
    from harness.golden.document import read_document, write_report_dir
    from harness.golden.session import Selection, parse_shard, run_goldens

    _check_choice(device, ("cpu", "cuda"), "--device")
    _check_choice(precision, ("fp32", "fp16"), "--precision")
    cfg = _config(**{"golden.warn_unused": True if warn_unused else None})
    selection = Selection(tuple(cases or ()), parse_shard(shard))
    total = len(selection.apply(load_cases(cfg.path("golden.cases_dir"))))
    with typer.progressbar(length=total, label="golden", file=sys.stderr) as bar:
        report = run_goldens(
            cfg,
            selection=selection,
            device=device,
            precision=precision,
            update=update,  # type: ignore[arg-type]
            progress=lambda case: bar.update(1),
        )
    folder = report_dir or cfg.path("evidence_dir") / "golden"
    document = read_document(write_report_dir(report, folder))
    _write_all_formats(document, folder)
    return document, cfg


@golden_app.command("run")
def run_command(
    cases: CaseOpt = None,
    shard: ShardOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    warn_unused: WarnUnusedOpt = False,
    report_dir: ReportDirOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
) -> None:
    """Run the golden cases and compare them with the recorded set (never writes goldens)."""
    _check_choice("json" if as_json else fmt, FORMATS, "--format")
    document, _ = _run(
        cases=cases,
        shard=shard,
        device=device,
        precision=precision,
        warn_unused=warn_unused,
        report_dir=report_dir,
        update=None,
    )
    _emit(document, fmt, as_json, output)
    _exit(Outcome(document["outcome"]), strict)


@golden_app.command("update")
def update_command(
    missing: Annotated[bool, typer.Option("--missing", help="Record cases that have no golden yet.")] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="Re-record cases that are not identical/equivalent.")
    ] = False,
    record_all: Annotated[bool, typer.Option("--all", help="Re-record every selected case.")] = False,
    cases: CaseOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    report_dir: ReportDirOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> None:
    """Record goldens: exactly one of --missing, --failed or --all. Writes are queued and flushed once, atomically."""
    _check_choice("json" if as_json else fmt, FORMATS, "--format")
    modes = [name for name, on in (("missing", missing), ("failed", failed), ("all", record_all)) if on]
    if len(modes) != 1:
        raise typer.BadParameter("choose exactly one of --missing, --failed, --all", param_hint="update")
    document, _ = _run(
        cases=cases,
        shard=None,
        device=device,
        precision=precision,
        warn_unused=False,
        report_dir=report_dir,
        update=modes[0],
    )
    _emit(document, fmt, as_json, output)
    _exit(Outcome(document["outcome"]), False)


@golden_app.command("report")
def report_command(
    report_dir: Annotated[Path | None, typer.Option("--dir", help="Report folder of an earlier run.")] = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
) -> None:
    """Render an earlier run's report (golden.json and its images) in any format."""
    from harness.golden.document import read_document

    folder = report_dir or _config().path("evidence_dir") / "golden"
    document = read_document(folder)
    _emit(document, fmt, as_json, output)
    _exit(Outcome(document["outcome"]), strict)


@golden_app.command("merge")
def merge_command(
    shard_dirs: Annotated[list[Path], typer.Argument(help="Report folders of the shard runs.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the merged report.")],
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
) -> None:
    """Combine shard reports into one; unused goldens are computed over all shards together."""
    from harness.golden.document import merge_documents, read_document

    merged = merge_documents([read_document(folder) for folder in shard_dirs], out_dir)
    _write_all_formats(merged, out_dir)
    _emit(merged, fmt, as_json, output)
    _exit(Outcome(merged["outcome"]), strict)


def register(app: typer.Typer) -> None:
    app.add_typer(golden_app, name="golden")


def _controls_exit(report: Any, fmt: str, as_json: bool, output: str) -> None:
    from harness.report import render

    chosen = _check_choice("json" if as_json else fmt, ("terminal", "json", "markdown", "junit"), "--format")
    result = report.check_result()
    text = render([result], chosen)  # type: ignore[arg-type]
    if chosen == "terminal":
        rows = [
            f"  {r.case_id:<24} {r.variant:<22} expect {r.expect:<10} got {r.verdict!s:<10} "
            f"phash16 {r.phash_distance:>3}  mean abs {r.mean_abs:7.3f}  {'ok' if r.ok else 'FAIL'}"
            for r in report.results
        ]
        text = "\n".join(rows) + "\n" + text
    write_output(text, output)
    _exit(result.outcome, False)


@golden_app.command("calibrate")
def calibrate_command(
    cases: CaseOpt = None,
    no_record: Annotated[bool, typer.Option("--no-record", help="Measure only; leave the manifest alone.")] = False,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> None:
    """Measure the noise floor (threads 1 vs 2, 1e-4 latent jitter, reruns) and record it in the cpu-fp32 set."""
    from harness.golden.calibrate import calibrate

    report = calibrate(
        _config(), patterns=tuple(cases or ()), record=not no_record, progress=lambda text: print(text, file=sys.stderr)
    )
    _controls_exit(report, fmt, as_json, output)


@golden_app.command("selftest")
def selftest_command(
    cases: CaseOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> None:
    """Negative controls (seed+1, steps+1, CFG -0.5, one prompt character, another sampler, strength ±0.1) must be
    judged changed and noise variants equivalent; otherwise the harness cannot be trusted and this fails."""
    from harness.golden.calibrate import selftest

    report = selftest(_config(), patterns=tuple(cases or ()), progress=lambda text: print(text, file=sys.stderr))
    _controls_exit(report, fmt, as_json, output)


@golden_app.command("ab")
def ab_command(
    base: Annotated[str, typer.Option("--base", help="Git ref of the base commit, e.g. HEAD~1 or origin/main.")],
    cases: CaseOpt = None,
    report_dir: ReportDirOpt = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
) -> None:
    """Run the cases on --base (a git worktree, its own process) and on the working tree, and compare them."""
    from harness.golden.ab import run_ab
    from harness.golden.document import read_document, write_report_dir
    from harness.golden.session import Selection

    cfg = _config()
    folder = report_dir or cfg.path("evidence_dir") / "golden-ab"
    report = run_ab(
        cfg,
        base,
        selection=Selection(tuple(cases or ())),
        work_dir=folder / "work",
        progress=lambda text: print(text, file=sys.stderr),
    )
    document = read_document(write_report_dir(report, folder))
    _write_all_formats(document, folder)
    _emit(document, fmt, as_json, output)
    _exit(Outcome(document["outcome"]), False)


@golden_app.command("cross")
def cross_command(
    first: Annotated[str, typer.Option("--from", help="Environment key, e.g. cpu-fp32.")] = "cpu-fp32",
    second: Annotated[str, typer.Option("--to", help="Environment key, e.g. cuda-fp32.")] = "cuda-fp32",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
) -> None:
    """Distances between two recorded sets (informational); skipped, with the reason, when one is not recorded."""
    from harness.golden.cross import cross_sets
    from harness.report import render

    result = cross_sets(_config(), first, second).check_result()
    text = render([result], "json" if as_json else "terminal", strict=strict)
    if not as_json and result.figures.get("rows"):
        rows = [
            f"  {row['case']:<28} #{row['index']}  phash16 {row['phash_distance']:>3}  mean abs {row['mean_abs']:.3f}"
            for row in result.figures["rows"]
        ]
        text = "\n".join(rows) + "\n" + text
    write_output(text, output)
    _exit(result.outcome, strict)
