"""`serena-verify invariants …`: list, show, check, and snapshot (compare or --update)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import FormatOpt, OutputOpt, StrictOpt, choose_format, config
from harness.errors import InvariantsError
from harness.invariants.registry import Invariant, load_registry
from harness.outcome import CheckResult, Outcome, exit_code
from harness.output import write_output
from harness.render import RESULTS_FORMATS, render

invariants_app = typer.Typer(help="The invariant registry: list, show, nodes, check, snapshot.", no_args_is_help=True)
RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry file (default invariants/registry.toml; [tool.serena.invariants])."),
]
# list and show have no --format: --json is the one alternative to their own text (check has --format too)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _load(registry: Path | None) -> list[Invariant]:
    return load_registry(registry or config().path("invariants.registry"))


@invariants_app.command("list")
def list_command(registry: RegistryOpt = None, as_json: JsonOpt = False) -> int:
    """Every invariant: id, severity, surface, title and how many verifiers back it."""
    invariants = _load(registry)
    if as_json:
        rows = [
            {
                "id": inv.id,
                "title": inv.title,
                "surface": inv.surface,
                "severity": inv.severity,
                "introduced_in": inv.introduced_in,
                "verified_by": [str(ref) for ref in inv.verified_by],
            }
            for inv in invariants
        ]
        typer.echo(json.dumps(rows, indent=2))
        return exit_code(Outcome.PASSED)
    for inv in invariants:
        typer.echo(f"{inv.id}  {inv.severity:<8}  {inv.surface:<21} {inv.title}  ({len(inv.verified_by)} verifiers)")
    return exit_code(Outcome.PASSED)


@invariants_app.command("nodes")
def nodes_command(registry: RegistryOpt = None) -> int:
    """The pytest node ids the registry's verifiers name, one per line (each once), for a test run whose JUnit
    `invariants check --junit` then reads instead of running them again."""
    nodes = sorted({ref.target for inv in _load(registry) for ref in inv.verified_by if ref.kind == "pytest"})
    for node in nodes:
        typer.echo(node)
    return exit_code(Outcome.PASSED)


@invariants_app.command("show")
def show_command(
    invariant_id: Annotated[str, typer.Argument(help="e.g. INV-001")], registry: RegistryOpt = None
) -> int:
    """One invariant in full, with its verifiers."""
    matches = [inv for inv in _load(registry) if inv.id == invariant_id]
    if not matches:
        raise InvariantsError(f"no invariant {invariant_id!r}; see `serena-verify invariants list`")
    inv = matches[0]
    typer.echo(
        f"{inv.id}: {inv.title}\nsurface: {inv.surface}\nseverity: {inv.severity}\nintroduced in: {inv.introduced_in}"
    )
    typer.echo(f"statement: {inv.statement}\nverified by:")
    for ref in inv.verified_by or ():
        typer.echo(f"  - {ref}")
    if not inv.verified_by:
        typer.echo("  (nothing: this invariant is unverified)")
    return exit_code(Outcome.PASSED)


def _render_check(result: CheckResult, chosen: str, strict: bool) -> str:
    if chosen != "terminal":
        return render([result], chosen, strict=strict)  # type: ignore[arg-type]
    lines = []
    for row in result.figures["invariants"]:
        lines.append(f"{row['id']}  {row['status']:<10}  {row['severity']:<8}  {row['title']}")
        for verifier in row["verifiers"]:
            detail = verifier["detail"]
            first = detail.splitlines()[0] if detail else ""
            lines.append(f"      {verifier['status']:<8} {verifier['verifier']}" + (f"  ({first})" if first else ""))
            if "\n" in detail:
                lines += ["        " + line for line in detail.splitlines()[1:]]
        if not row["verifiers"]:
            lines.append("      (no verifier)")
    lines.append(f"{result.outcome}: {result.summary}")
    return "\n".join(lines) + "\n"


@invariants_app.command("check")
def check_command(
    registry: RegistryOpt = None,
    junit: Annotated[
        list[Path] | None,
        typer.Option("--junit", help="Read pytest results from this run's JUnit XML (repeat for one per job)."),
    ] = None,
    golden_report: Annotated[
        Path | None, typer.Option("--golden-report", help="Read golden verdicts from this run's report folder.")
    ] = None,
    fmt: FormatOpt = "terminal",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = None,
) -> int:
    """Validate the registry, resolve every verifier, run them (or read --junit/--golden-report) and judge each
    invariant: verified, violated, unverified or not run. A blocking invariant not verified fails the check."""
    from harness.invariants.check import check_invariants

    chosen = choose_format(fmt, as_json, RESULTS_FORMATS)
    cfg = config(strict=strict)
    report = check_invariants(
        cfg,
        registry=registry,
        junit=junit,
        golden_report=golden_report,
        progress=lambda text: print(text, file=sys.stderr),
    )
    result = report.check_result()
    write_output(_render_check(result, chosen, cfg["strict"]), output)
    return exit_code(result.outcome, strict=cfg["strict"])


@invariants_app.command("snapshot")
def snapshot_command(
    names: Annotated[list[str] | None, typer.Argument(help="Snapshots to compare (default: all).")] = None,
    update: Annotated[bool, typer.Option("--update", help="Rewrite the committed snapshots from the code.")] = False,
) -> int:
    """Compare the snapshot verifiers with the code (a readable diff when they differ); --update rewrites them."""
    from harness.invariants.snapshots import SNAPSHOTS, compare_snapshots

    chosen = names or list(SNAPSHOTS)
    unknown = [name for name in chosen if name not in SNAPSHOTS]
    if unknown:
        raise InvariantsError(f"no snapshot {unknown[0]!r}; known: {', '.join(SNAPSHOTS)}")
    snapshots_dir = config().path("invariants.snapshots_dir")
    failed = False
    for result in compare_snapshots([SNAPSHOTS[name] for name in chosen], snapshots_dir, update=update):
        typer.echo(f"{result.name}: {result.status}" + (f" ({result.detail})" if result.detail else ""))
        if result.diff:
            typer.echo(result.diff.rstrip())
        failed = failed or result.status in ("differs", "missing", "error")
    return exit_code(Outcome.FAILED if failed else Outcome.PASSED)


def register(app: typer.Typer) -> None:
    app.add_typer(invariants_app, name="invariants")
