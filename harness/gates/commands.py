"""`serena-verify coverage | deps | audit-deps | env`: parse, call the gate functions, render, exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import FormatOpt, JsonOpt, OutputOpt, StrictOpt, config, finish

EvidenceOpt = Annotated[
    Path | None, typer.Option("--evidence-dir", help="Evidence folder (default: [tool.serena] evidence_dir).")
]
LockOpt = Annotated[Path | None, typer.Option("--lock", help="Lock file (default: requirements.lock).")]


def _flags(strict: bool | None = None, evidence_dir: Path | None = None, **more: object) -> dict[str, object]:
    flags: dict[str, object] = {"strict": strict, **more}
    if evidence_dir is not None:
        flags["evidence_dir"] = str(evidence_dir.resolve())
    return flags


def coverage_command(
    xml: Annotated[
        Path | None, typer.Option("--xml", help="coverage.xml (default: [tool.serena.coverage] xml).")
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Also report coverage of the lines changed since this ref.")
    ] = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """Coverage against the floor ([tool.coverage.report] fail_under), per-module floors, changed lines."""
    from harness.gates.coverage import changed_lines_coverage, coverage_gate

    extra = {"coverage.xml": str(xml.resolve())} if xml is not None else {}
    cfg = config(**_flags(strict, **extra))
    results = [coverage_gate(cfg)]
    if base:
        results.append(changed_lines_coverage(cfg, base))
    return finish(results, fmt=fmt, as_json=as_json, output=output, strict=cfg["strict"])


def deps_command(
    lock: LockOpt = None,
    evidence_dir: EvidenceOpt = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """Every lock line pinned with ==, the installed environment matching it, pip check; writes the snapshot."""
    from harness.gates.deps import deps_gate

    cfg = config(**_flags(strict, evidence_dir))
    result = deps_gate(cfg, lock_path=lock.resolve() if lock else None)
    return finish([result], fmt=fmt, as_json=as_json, output=output, strict=cfg["strict"])


def audit_command(
    lock: LockOpt = None,
    service: Annotated[
        str | None,
        typer.Option("--service", help="pypi or osv (default: pip-audit's, or $PIP_AUDIT_VULNERABILITY_SERVICE)."),
    ] = None,
    evidence_dir: EvidenceOpt = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
    strict: StrictOpt = None,
) -> int:
    """pip-audit of the lock: informational (findings listed); --strict fails on findings; unreachable → exit 3."""
    from harness.gates.audit import audit_gate

    if service not in (None, "pypi", "osv"):
        raise typer.BadParameter(f"unknown service {service!r}; use pypi or osv", param_hint="--service")
    cfg = config(**_flags(strict, evidence_dir))
    result = audit_gate(cfg, lock_path=lock.resolve() if lock else None, service=service)  # type: ignore[arg-type]
    return finish([result], fmt=fmt, as_json=as_json, output=output, strict=cfg["strict"])


def env_command(
    cuda_check: Annotated[
        bool, typer.Option("--cuda-check", help="Import torch to record CUDA availability and its thread count.")
    ] = False,
    evidence_dir: EvidenceOpt = None,
    fmt: FormatOpt = "terminal",
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> int:
    """Write ci_environment.txt: python, pip, OS, CPU, package versions, lock sha256, git sha, threads, device."""
    from harness.gates.ci_environment import write_environment

    cfg = config(**_flags(None, evidence_dir))
    result = write_environment(cfg, cuda_check=cuda_check)
    return finish([result], fmt=fmt, as_json=as_json, output=output)


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage_command)
    app.command("deps")(deps_command)
    app.command("audit-deps")(audit_command)
    app.command("env")(env_command)
