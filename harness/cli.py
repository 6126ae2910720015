"""`serena-verify`: wires commands to the checks, renders their results, and exits by the documented codes.

No check logic lives here, and nothing below this module calls sys.exit. Each area registers its own commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from harness import exit_codes
from harness.config import HarnessConfig, find_repo_root, load_config
from harness.errors import HarnessError
from harness.outcome import CheckResult, combine, exit_code
from harness.output import write_output
from harness.report import ResultsFormat, render

app = typer.Typer(
    name="serena-verify",
    help="Verify that Serena's behaviour is unchanged: goldens, invariants and gates.\n\n" + exit_codes.HELP,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)

FormatOpt = Annotated[str, typer.Option("--format", help="terminal, json, markdown or junit.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Write the report here ('-' = stdout).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")]
StrictOpt = Annotated[bool | None, typer.Option("--strict/--no-strict", help="Treat skipped as failed.")]


def config(**flags: object) -> HarnessConfig:
    """The layered configuration of the repository around the working directory."""
    return load_config(find_repo_root(), flags)


def finish(
    results: Sequence[CheckResult],
    *,
    fmt: str = "terminal",
    as_json: bool = False,
    output: str = "-",
    strict: bool = False,
) -> None:
    """Render `results` and exit with the code their combined outcome calls for."""
    chosen = "json" if as_json else fmt
    if chosen not in ("terminal", "json", "markdown", "junit"):
        raise typer.BadParameter(
            f"unknown format {chosen!r}; use terminal, json, markdown or junit", param_hint="--format"
        )
    fmt_name: ResultsFormat = chosen  # type: ignore[assignment]
    write_output(render(results, fmt_name, strict=strict), output)
    raise typer.Exit(exit_code(combine((r.outcome for r in results), strict=strict), strict=strict))


def _fail(message: str, code: int) -> int:
    text = " ".join(str(message).split("\n")).strip()
    print(f"serena-verify: error: {text}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error is one line on stderr and a documented exit code."""
    _register_areas()
    try:
        result = app(args=argv, prog_name="serena-verify", standalone_mode=False)
    except typer.TyperException as exc:
        return _fail(exc.format_message(), exit_codes.USAGE)
    except HarnessError as exc:
        return _fail(f"[{exc.slug}] {exc}", exc.exit_code)
    except typer.Abort:
        return _fail("interrupted", 130)
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("SERENA_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (set SERENA_DEBUG=1 for a traceback)", exit_codes.FAILED)
    return result if isinstance(result, int) else exit_codes.OK


_registered = False


def _register_areas() -> None:
    """Each area adds its commands; imported here so `serena-verify --help` stays light (no torch)."""
    global _registered
    if _registered:
        return
    _registered = True
    from harness.gates.commands import register as register_gates
    from harness.golden.commands import register as register_golden
    from harness.ledger.commands import register as register_ledger
    from invariants.commands import register as register_invariants

    register_golden(app)
    register_gates(app)
    register_ledger(app)
    register_invariants(app)


def repo_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(find_repo_root()))
    except ValueError:
        return str(path)


@app.command("run")
def run_command(
    evidence_dir: Annotated[Path | None, typer.Option("--evidence-dir", help="Where the bundle goes.")] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Also check the ledger and changed-line coverage since REF.")
    ] = None,
    tests_from: Annotated[
        Path | None, typer.Option("--tests-from", help="Reuse junit.xml and coverage.xml of a pytest run in DIR.")
    ] = None,
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> None:
    """The main job: ruff, tests with coverage, coverage gate, goldens, invariants, deps, audit-deps, ledger and
    environment; writes the evidence bundle (summary.md, summary.json, coverage.xml, junit.xml, golden report,
    invariants report, ci_environment.txt, dependency_snapshot.txt, pip-audit JSON) and prints the table.
    audit-deps and env are informational: they set the exit code only with --strict."""
    import json as json_module

    from harness.report import github_annotations, render_json, render_markdown, render_terminal
    from harness.run import INFORMATIONAL, run_all

    flags: dict[str, object] = {"strict": strict}
    if evidence_dir is not None:
        flags["evidence_dir"] = str(evidence_dir.resolve())
    cfg = config(**flags)
    evidence = cfg.path("evidence_dir")
    report = run_all(
        cfg,
        evidence=evidence,
        strict=cfg["strict"],
        base=base,
        tests_from=tests_from.resolve() if tests_from else None,
        progress=lambda text: print(f"serena-verify run: {text}", file=sys.stderr),
    )
    results = report.results
    informational = ", ".join(sorted(INFORMATIONAL))
    note = f"\n{informational}: informational (they set the exit code only with --strict)\n"
    overall = report.overall()
    # the per-check table of render_markdown under a heading that states the run's own overall outcome
    table = render_markdown(results, strict=report.strict).split("\n", 1)[1]
    markdown = f"### serena-verify run: {overall}\n{table}{note}"
    write_output(markdown, evidence / "summary.md")
    document = json_module.loads(render_json(results, strict=report.strict))
    document["outcome"] = str(overall)
    document["informational"] = sorted(INFORMATIONAL)
    write_output(json_module.dumps(document, indent=2) + "\n", evidence / "summary.json")
    write_output(render_json([r for r in results if r.check == "invariants"]), evidence / "invariants.json")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with Path(summary_file).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
    if os.environ.get("GITHUB_ACTIONS") or summary_file:
        counted = [r for r in results if report.strict or r.check not in INFORMATIONAL]
        sys.stdout.write(github_annotations(counted, strict=report.strict))
    if as_json:
        write_output(json_module.dumps(document, indent=2), "-")
    else:
        table = render_terminal(results, strict=report.strict).rsplit("overall:", 1)[0]
        write_output(f"{table}overall: {overall}{note}evidence: {evidence}\n", "-")
    raise typer.Exit(exit_code(overall, strict=report.strict))
