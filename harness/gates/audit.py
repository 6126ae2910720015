"""The vulnerability audit gate: pip-audit over requirements.lock, informational unless strict, never a false pass.

Outcomes: a completed audit passes and lists its findings (with --strict, a finding or a dependency that could
not be audited fails it); an audit that did not complete (service unreachable, pip-audit missing or crashed, a
timeout) or that could not audit a single dependency is INCONCLUSIVE — never a pass, never a fail.

Ignores live in pyproject.toml, each with a reason and an expiry date:
    [tool.serena.audit]
    ignore = [{ id = "GHSA-xxxx-xxxx-xxxx", reason = "not reachable from serena", expires = 2027-01-31 }]
An expired ignore no longer hides its finding and is reported as a warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from harness.config import HarnessConfig, repo_relative
from harness.errors import ConfigError, HarnessError
from harness.gates.deps import read_lock
from harness.outcome import CheckResult, Outcome, line_containing
from harness.outcome import Finding as LocatedProblem
from harness.output import atomic_write_text

REPORT_NAME = "pip_audit.json"
LOG_NAME = "pip_audit.log"
Service = Literal["pypi", "osv"]


@dataclass(frozen=True)
class AuditIgnore:
    id: str
    reason: str
    expires: date

    def expired(self, today: date) -> bool:
        return today > self.expires


@dataclass(frozen=True)
class AuditRun:
    """What one pip-audit invocation left: its exit status, its JSON report if it wrote one, and its stderr."""

    returncode: int
    report_text: str | None
    stderr: str


AuditRunner = Callable[[Sequence[str]], AuditRun]


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def ids(self) -> set[str]:
        return {self.id, *self.aliases}

    def describe(self) -> str:
        fix = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "; no fix released"
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.package} {self.version}: {self.id}{aliases}{fix}"


def parse_ignores(raw: Sequence[Any], where: str) -> tuple[AuditIgnore, ...]:
    """Validate `[tool.serena.audit] ignore`: each entry needs an id, a reason and an expiry date."""
    ignores = []
    for index, entry in enumerate(raw):
        field = f"{where}: audit.ignore[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{field} = {entry!r}; expected {{id, reason, expires}}")
        unknown = set(entry) - {"id", "reason", "expires"}
        if unknown:
            raise ConfigError(f"{field}: unknown field(s) {', '.join(sorted(unknown))}; expected id, reason, expires")
        for name in ("id", "reason"):
            if not isinstance(entry.get(name), str) or not entry[name].strip():
                raise ConfigError(f"{field}.{name} = {entry.get(name)!r}; expected a non-empty string")
        expires = entry.get("expires")
        if isinstance(expires, datetime):
            expires = expires.date()
        elif isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{field}.expires = {expires!r}; expected a date YYYY-MM-DD") from None
        if not isinstance(expires, date):
            raise ConfigError(f"{field}.expires = {expires!r}; every ignore needs an expiry date YYYY-MM-DD")
        ignores.append(AuditIgnore(id=entry["id"].strip(), reason=entry["reason"].strip(), expires=expires))
    return tuple(ignores)


def run_pip_audit(args: Sequence[str], *, timeout: float = 900) -> AuditRun:
    """pip-audit of this interpreter's environment, as a subprocess, with a JSON report to a temporary file."""
    with tempfile.TemporaryDirectory(prefix="serena-audit-") as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip_audit", *args, "--format", "json", "--output", str(report)]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return AuditRun(returncode=-1, report_text=None, stderr=f"pip-audit timed out after {timeout:g} s")
        except OSError as exc:
            return AuditRun(returncode=-1, report_text=None, stderr=f"pip-audit could not start: {exc}")
        text = report.read_text(encoding="utf-8") if report.is_file() else None
        return AuditRun(returncode=completed.returncode, report_text=text or None, stderr=completed.stderr)


def audit_gate(
    cfg: HarnessConfig,
    *,
    lock_path: Path | None = None,
    service: Service | None = None,
    strict: bool | None = None,
    runner: AuditRunner = run_pip_audit,
    today: date | None = None,
    evidence_dir: Path | None = None,
) -> CheckResult:
    """Audit the lock with pip-audit and judge the report; see the module docstring for the outcomes."""
    strict = bool(cfg["strict"]) if strict is None else strict
    today = today or datetime.now(UTC).date()
    ignores = parse_ignores(cfg["audit.ignore"], cfg.sources.get("audit.ignore", "config"))
    lock_path = Path(lock_path) if lock_path is not None else cfg.repo_root / "requirements.lock"
    folder = Path(evidence_dir) if evidence_dir is not None else cfg.path("evidence_dir")
    args = ["--requirement", str(lock_path), "--no-deps", "--disable-pip", "--progress-spinner", "off"]
    if service:
        args += ["--vulnerability-service", service]

    warnings = [_expired_text(ignore) for ignore in ignores if ignore.expired(today)]
    active = [ignore for ignore in ignores if not ignore.expired(today)]
    run = runner(args)
    report = _parse_report(run.report_text)
    if report is None:
        (folder / REPORT_NAME).unlink(missing_ok=True)  # a stale report must not pass for this run's
        atomic_write_text(folder / LOG_NAME, _log_text(args, run))
        return CheckResult(
            check="audit-deps",
            outcome=Outcome.INCONCLUSIVE,
            summary="the audit did not complete",
            reason=f"pip-audit exited {run.returncode} without a report: {_last_line(run.stderr)}",
            figures={"returncode": run.returncode, "ignores_expired": len(warnings)},
            problems=tuple(warnings),
            evidence=(str(folder / LOG_NAME),),
            findings=_in_config(cfg, ignores, today, unused=()),
        )
    atomic_write_text(folder / REPORT_NAME, run.report_text or "")
    (folder / LOG_NAME).unlink(missing_ok=True)
    evidence = (str(folder / REPORT_NAME),)

    dependencies = report["dependencies"]
    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        first = skipped[0]["skip_reason"] if skipped else "the lock lists no dependency"
        return CheckResult(
            check="audit-deps",
            outcome=Outcome.INCONCLUSIVE,
            summary=f"0 of {len(dependencies)} dependencies audited",
            reason=f"pip-audit could not audit any dependency (e.g. {first})",
            figures={"dependencies": len(dependencies), "audited": 0, "not_audited": len(skipped)},
            problems=tuple(warnings),
            evidence=evidence,
            findings=_in_config(cfg, ignores, today, unused=()),
        )

    findings = [finding for d in audited for finding in _findings(d)]
    shown, hidden, used = [], [], set()
    for finding in findings:
        ignore = next((i for i in active if i.id in finding.ids()), None)
        if ignore is None:
            shown.append(finding)
        else:
            hidden.append(f"ignored: {finding.describe()} — {ignore.reason} (until {ignore.expires})")
            used.add(ignore.id)
    unused = [i for i in active if i.id not in used]
    notes = [_unused_text(ignore) for ignore in unused]
    not_audited = [_not_audited_text(d) for d in skipped]
    problems = [_finding_text(f) for f in shown] + warnings + not_audited + hidden + notes
    located = _in_lock(cfg, lock_path, shown, skipped) + _in_config(cfg, ignores, today, unused)

    failing = strict and bool(shown or skipped)
    summary = (
        f"{len(audited)}/{len(dependencies)} dependencies audited: {len(shown)} finding(s)"
        f"{f', {len(hidden)} ignored' if hidden else ''}"
        f"{'' if strict else ' (informational; --strict fails on findings)'}"
    )
    return CheckResult(
        check="audit-deps",
        outcome=Outcome.FAILED if failing else Outcome.PASSED,
        summary=summary,
        figures={
            "dependencies": len(dependencies),
            "audited": len(audited),
            "not_audited": len(skipped),
            "findings": [f.describe() for f in shown],
            "ignored": len(hidden),
            "ignores_expired": len(warnings),
            "strict": strict,
        },
        problems=tuple(problems),
        evidence=evidence,
        findings=located,
    )


def _finding_text(finding: Finding) -> str:
    return f"finding: {finding.describe()}"


def _not_audited_text(dependency: Mapping[str, Any]) -> str:
    return f"not audited: {dependency['name']}: {dependency['skip_reason']}"


def _expired_text(ignore: AuditIgnore) -> str:
    return (
        f"warning: ignore {ignore.id} expired on {ignore.expires} (reason was: {ignore.reason}); it no longer applies"
    )


def _unused_text(ignore: AuditIgnore) -> str:
    return f"note: ignore {ignore.id} matched no finding (until {ignore.expires})"


def _in_lock(
    cfg: HarnessConfig, lock_path: Path, shown: Sequence[Finding], skipped: Sequence[Mapping[str, Any]]
) -> tuple[LocatedProblem, ...]:
    """Findings and dependencies not audited, each on its pin's line of the lock (the lock itself if not found)."""
    try:
        lock = read_lock(lock_path)
    except HarnessError:
        lock = None
    shown_lock = repo_relative(lock_path, cfg.repo_root)

    def pinned(package: str) -> int | None:
        return lock.line_of(package) if lock is not None else None

    located = [LocatedProblem("vulnerability", _finding_text(f), shown_lock, pinned(f.package)) for f in shown]
    located += [
        LocatedProblem("not-audited", _not_audited_text(d), shown_lock, pinned(str(d["name"]))) for d in skipped
    ]
    return tuple(located)


def _in_config(
    cfg: HarnessConfig, ignores: Sequence[AuditIgnore], today: date, unused: Sequence[AuditIgnore]
) -> tuple[LocatedProblem, ...]:
    """Expired and unused ignores, on their line of the pyproject.toml that sets them (none when set elsewhere)."""
    source = cfg.sources.get("audit.ignore", "")
    if not source.endswith(".toml"):
        return ()
    config_file = Path(source)
    shown_config = repo_relative(config_file, cfg.repo_root)
    located = []
    for ignore in ignores:
        line = line_containing(config_file, ignore.id)
        if ignore.expired(today):
            located.append(LocatedProblem("expired-ignore", _expired_text(ignore), shown_config, line))
        elif ignore in unused:
            located.append(LocatedProblem("unused-ignore", _unused_text(ignore), shown_config, line, level="note"))
    return tuple(located)


def _parse_report(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(report, dict) or not isinstance(report.get("dependencies"), list):
        return None
    return report


def _findings(dependency: Mapping[str, Any]) -> list[Finding]:
    return [
        Finding(
            package=str(dependency.get("name")),
            version=str(dependency.get("version", "?")),
            id=str(vuln.get("id")),
            aliases=tuple(str(alias) for alias in vuln.get("aliases", ())),
            fix_versions=tuple(str(fix) for fix in vuln.get("fix_versions", ())),
        )
        for vuln in dependency.get("vulns", ())
    ]


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _log_text(args: Sequence[str], run: AuditRun) -> str:
    tail = "\n".join(run.stderr.splitlines()[-40:])
    return f"command: pip-audit {' '.join(args)}\nreturncode: {run.returncode}\nstderr (last 40 lines):\n{tail}\n"
