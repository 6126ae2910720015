"""`serena-verify`: the root command; wires every area's commands, maps errors to one line, and exits once.

No check logic lives here. Commands return their exit status; `main` is the only place that turns errors into
codes, and nothing below this module calls sys.exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness import exit_codes
from harness.cli_options import FormatOpt, JsonOpt, OutputOpt, StrictOpt, choose_format, config
from harness.errors import HarnessError
from harness.gates.commands import register as register_gates
from harness.golden.commands import register as register_golden
from harness.invariants.commands import register as register_invariants
from harness.ledger.commands import register as register_ledger
from harness.outcome import exit_code
from harness.output import write_output

app = typer.Typer(
    name="serena-verify",
    help="Verify that Serena's behaviour is unchanged: goldens, invariants and gates.\n\n" + exit_codes.HELP,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


@app.command("run")
def run_command(
    evidence_dir: Annotated[Path | None, typer.Option("--evidence-dir", help="Where the bundle goes.")] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Also check the ledger and changed-line coverage since REF.")
    ] = None,
    tests_from: Annotated[
        Path | None, typer.Option("--tests-from", help="Reuse junit.xml and coverage.xml of a pytest run in DIR.")
    ] = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """The main job: ruff, tests with coverage, coverage gate, goldens, invariants, deps, audit-deps, ledger and
    environment; writes the evidence bundle (summary.md, summary.json, coverage.xml, junit.xml, golden report,
    invariants report, ci_environment.txt, dependency_snapshot.txt, pip-audit JSON) and prints the table (or
    --format json, markdown, junit, sarif). audit-deps and env are informational: they set the exit code only with
    --strict."""
    from harness.evidence import RUN_TITLE, write_bundle
    from harness.render import RESULTS_FORMATS, render
    from harness.run import INFORMATIONAL_CHECKS, run_all

    chosen = choose_format(fmt, as_json, RESULTS_FORMATS)
    cfg = config(strict=strict, evidence_dir=str(evidence_dir.resolve()) if evidence_dir else None)
    report = run_all(
        cfg,
        evidence=cfg.path("evidence_dir"),
        strict=cfg["strict"],
        base=base,
        tests_from=tests_from.resolve() if tests_from else None,
        progress=lambda text: print(f"serena-verify run: {text}", file=sys.stderr),
    )
    summary = write_bundle(report)
    if os.environ.get("GITHUB_ACTIONS") or os.environ.get("GITHUB_STEP_SUMMARY"):
        sys.stdout.write(summary.annotations)
    rendered = {"terminal": summary.terminal, "json": summary.json, "markdown": summary.markdown}
    if chosen not in rendered:  # junit, sarif: the same results, judged by the run's own rule
        rendered[chosen] = render(
            report.results,
            chosen,  # type: ignore[arg-type]
            overall=report.overall(),
            strict=report.strict,
            title=RUN_TITLE,
            informational=sorted(INFORMATIONAL_CHECKS),
        )
    write_output(rendered[chosen], output)
    return exit_code(report.overall(), strict=report.strict)


register_golden(app)
register_gates(app)
register_ledger(app)
register_invariants(app)


def _fail(message: str, code: int) -> int:
    text = " ".join(str(message).split("\n")).strip()
    print(f"serena-verify: error: {text}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error is one line on stderr and a documented exit code."""
    try:
        result = app(args=argv, prog_name="serena-verify", standalone_mode=False)
    except typer.TyperException as exc:
        return _fail(exc.format_message(), exit_codes.USAGE)
    except HarnessError as exc:
        return _fail(f"[{exc.slug}] {exc}", exc.exit_code)
    except typer.Abort:
        return _fail("interrupted", exit_codes.INTERRUPTED)
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("SERENA_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (set SERENA_DEBUG=1 for a traceback)", exit_codes.FAILED)
    return result if isinstance(result, int) else exit_codes.OK
