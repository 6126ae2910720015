"""`serena-verify ledger check` and `serena-verify milestone new | close`: parse, call, render, exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import FormatOpt, JsonOpt, OutputOpt, StrictOpt, config, finish

ledger_app = typer.Typer(help="The milestone ledger (docs/serena.md) and its milestone folders.", no_args_is_help=True)
milestone_app = typer.Typer(help="Scaffold and close milestones.", no_args_is_help=True)


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
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> int:
    """Scaffold docs/milestones/MNN/ from the templates and add a planned row to the ledger."""
    from harness.ledger.scaffold import milestone_new

    cfg = config()
    return finish([milestone_new(cfg, milestone, title, branch=branch)], fmt=fmt, as_json=as_json, output=output)


@milestone_app.command("close")
def close_command(
    milestone: Annotated[str, typer.Argument(help="Milestone id (M01).")],
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="Evidence folder (default: [tool.serena] evidence_dir).")
    ] = None,
    commit: Annotated[str, typer.Option("--commit", help="The commit the milestone landed in.")] = "HEAD",
    completed_at: Annotated[
        str, typer.Option("--completed-at", help="now (default), or commit: the commit's own time.")
    ] = "now",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and show the score; write nothing.")] = False,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """Compute the audit score from the evidence, fill the summary's evidence section, and close the row."""
    from harness.ledger.close import close_milestone

    if completed_at not in ("now", "commit"):
        raise typer.BadParameter(f"{completed_at!r}; use now or commit", param_hint="--completed-at")
    cfg = config(strict=strict)
    result = close_milestone(
        cfg,
        milestone,
        evidence_dir=evidence.resolve() if evidence else None,
        commit_ref=commit,
        completed_at=completed_at,  # type: ignore[arg-type]
        dry_run=dry_run,
        strict=cfg["strict"],
    )
    return finish([result], fmt=fmt, as_json=as_json, output=output, strict=cfg["strict"])


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(milestone_app, name="milestone")
