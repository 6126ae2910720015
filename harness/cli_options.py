"""What every area's commands share: option types, the layered `config()`, and `finish()`; imports no area.

Commands compute results and *return* an exit status; `harness.cli.main` is the one place that exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from harness.config import HarnessConfig, find_repo_root, load_config
from harness.outcome import CheckResult, combine, exit_code
from harness.output import write_output
from harness.render import RESULTS_FORMATS, ResultsFormat, render

FormatOpt = Annotated[str, typer.Option("--format", help="terminal, json, markdown, junit or sarif.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Write the report here ('-' = stdout).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")]
# one meaning everywhere: unset → [tool.serena] strict / $SERENA_STRICT; the flag wins
StrictOpt = Annotated[
    bool | None,
    typer.Option("--strict/--no-strict", help="Treat skipped as failed (default: [tool.serena] strict)."),
]


def config(**flags: object) -> HarnessConfig:
    """The layered configuration of the repository around the working directory (flags set to None are unset)."""
    return load_config(find_repo_root(), flags)


def choose_format(fmt: str, as_json: bool, choices: Sequence[str]) -> str:
    """`--json` or `--format`, checked against the formats the command offers."""
    chosen = "json" if as_json else fmt
    if chosen not in choices:
        raise typer.BadParameter(f"unknown format {chosen!r}; use {', '.join(choices)}", param_hint="--format")
    return chosen


def finish(
    results: Sequence[CheckResult],
    *,
    fmt: str = "terminal",
    as_json: bool = False,
    output: str = "-",
    strict: bool = False,
) -> int:
    """Render `results` and return the exit status their combined outcome calls for."""
    chosen: ResultsFormat = choose_format(fmt, as_json, RESULTS_FORMATS)  # type: ignore[assignment]
    write_output(render(results, chosen, strict=strict), output)
    return exit_code(combine((r.outcome for r in results), strict=strict), strict=strict)
