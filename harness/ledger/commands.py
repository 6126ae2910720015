"""`serena-verify ledger check` and `serena-verify milestone new | close`: parse, call, render, exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import FormatOpt, JsonOpt, OutputOpt, StrictOpt, config, finish

ledger_app = typer.Typer(help="The milestone ledger (docs/serena.md) and its milestone folders.", no_args_is_help=True)
milestone_app = typer.Typer(help="Scaffold, verify and close milestones.", no_args_is_help=True)


@ledger_app.command("check")
def check_command(
    base: Annotated[
        str | None,
        typer.Option("--base", help="Also require a ledger row and folder change for runtime changes since REF."),
    ] = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """Table schema, status values, unique ids, each milestone's folder and artifacts, contradictions."""
    from harness.ledger.check import ledger_base_check, ledger_check

    cfg = config(strict=strict)
    results = [ledger_check(cfg)]
    if base:
        results.append(ledger_base_check(cfg, base))
    return finish(results, fmt=fmt, as_json=as_json, output=output, strict=cfg["strict"])


@milestone_app.command("new")
def new_command(
    milestone: Annotated[str, typer.Argument(help="Milestone id, M followed by 2-3 digits (M04).")],
    title: Annotated[str, typer.Option("--title", help="One-line title for the ledger row.")],
    branch: Annotated[str, typer.Option("--branch", help="Branch the work happens on.")] = "—",
    posture: Annotated[
        str, typer.Option("--posture", help="behavior-preserving (default), behavior-changing or additive.")
    ] = "behavior-preserving",
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Git ref the head is compared with (default: HEAD now).")
    ] = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> int:
    """Scaffold docs/milestones/MNN/ (a plan with its claim as front matter) and add a planned row to the ledger."""
    from harness.ledger.scaffold import milestone_new

    cfg = config()
    return finish(
        [milestone_new(cfg, milestone, title, branch=branch, posture=posture, baseline=baseline)],
        fmt=fmt,
        as_json=as_json,
        output=output,
    )


@milestone_app.command("verify")
def verify_command(
    milestone: Annotated[str, typer.Argument(help="Milestone id (M08).")],
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Evidence folder (default: docs/milestones/MNN/evidence)."),
    ] = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> int:
    """Measure the plan's claim against its baseline: golden A/B, surfaces, invariants, coverage, exit criteria.

    Exit 0 Met, 1 Not met, 3 inconclusive, 2 a malformed plan."""
    from harness.ledger.verify import verify_milestone

    cfg = config()
    result = verify_milestone(
        cfg, milestone, evidence_dir=evidence.resolve() if evidence else None, progress=_progress_to_stderr
    )
    return finish([result], fmt=fmt, as_json=as_json, output=output)


def _progress_to_stderr(message: str) -> None:
    typer.echo(message, err=True)


@milestone_app.command("close")
def close_command(
    milestone: Annotated[str, typer.Argument(help="Milestone id (M01).")],
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Evidence folder (default: docs/milestones/MNN/evidence)."),
    ] = None,
    commit: Annotated[str, typer.Option("--commit", help="The commit the milestone landed in.")] = "HEAD",
    completed_at: Annotated[
        str, typer.Option("--completed-at", help="now (default), or commit: the commit's own time.")
    ] = "now",
    tag: Annotated[bool, typer.Option("--tag", help="Create the annotated tag v0.0.NN-mNN on the commit.")] = False,
    ci_run: Annotated[
        list[str] | None,
        typer.Option("--ci-run", help="A CI run (URL or id) to record; GITHUB_RUN_ID is added when set."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and show the score; write nothing.")] = False,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> int:
    """Write the summary an auditor signs from the verify evidence, score it, and close the row."""
    from harness.ledger.close import close_milestone

    if completed_at not in ("now", "commit"):
        raise typer.BadParameter(f"{completed_at!r}; use now or commit", param_hint="--completed-at")
    cfg = config()
    result = close_milestone(
        cfg,
        milestone,
        evidence_dir=evidence.resolve() if evidence else None,
        commit_ref=commit,
        completed_at=completed_at,  # type: ignore[arg-type]
        dry_run=dry_run,
        tag=tag,
        ci_runs=tuple(ci_run or ()),
    )
    return finish([result], fmt=fmt, as_json=as_json, output=output)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(milestone_app, name="milestone")
