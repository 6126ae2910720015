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

    register_golden(app)
    register_gates(app)
    register_ledger(app)


def repo_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(find_repo_root()))
    except ValueError:
        return str(path)
