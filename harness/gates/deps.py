"""The dependency gate: every lock line pinned with ==, the installed environment matching it, and `pip check`.

Names are compared after PEP 503 normalisation; a requirement whose environment marker does not hold here is
not expected to be installed; `==2.13.0` accepts an installed `2.13.0+cpu` (PEP 440 ignores the local label of
the candidate when the pin has none). Missing, extra and mismatched distributions are reported separately. The
project itself and pip (the venv's own installer) are not expected in the lock.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError
from harness.outcome import CheckResult, Finding, Outcome
from harness.output import atomic_write_text

SNAPSHOT_NAME = "dependency_snapshot.txt"
NOT_LOCKED = frozenset({"pip"})  # the installer that created the venv; the project is added from pyproject.toml


class DepsError(HarnessError):
    """The lock file is missing or unreadable."""

    slug = "deps"


@dataclass(frozen=True)
class Pin:
    """One pinned requirement of the lock: `name==version`, with the line it came from."""

    line_no: int
    text: str
    name: str  # PEP 503 normalised
    requirement: Requirement
    applies: bool  # its environment marker holds here (or it has none)


@dataclass(frozen=True)
class LockFile:
    path: Path
    pins: tuple[Pin, ...]
    problems: tuple[str, ...]  # lines that are not a single == pin, each naming its line
    problem_lines: tuple[int, ...]  # the line number of each problem, in the same order

    def line_of(self, name: str) -> int | None:
        """The line pinning `name` (PEP 503 normalised), if the lock pins it."""
        return next((pin.line_no for pin in self.pins if pin.name == canonicalize_name(name)), None)


@dataclass(frozen=True)
class PipCheck:
    """The outcome of `python -m pip check`; `ran` is False when pip itself could not run."""

    ran: bool
    ok: bool
    output: str


def read_lock(path: Path) -> LockFile:
    """Parse `path`: every non-comment line must be `name==version` (an optional marker after `;`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DepsError(f"{path}: cannot read the lock file ({exc.strerror})") from None
    pins: list[Pin] = []
    problems: list[str] = []
    problem_lines: list[int] = []
    seen: dict[str, int] = {}

    def problem(line_no: int, text: str) -> None:
        problems.append(text)
        problem_lines.append(line_no)

    for line_no, raw in _logical_lines(text):
        line = _strip_comment(raw)
        if not line:
            continue
        where = f"{path.name}:{line_no}"
        if line.startswith("-"):
            problem(line_no, f"{where}: {line!r} is an option line, not a pinned requirement")
            continue
        requirement_text = " ".join(token for token in line.split() if not token.startswith("--hash"))
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            problem(line_no, f"{where}: {line!r} is not a valid requirement ({exc})")
            continue
        why = _unpinned_reason(requirement)
        if why:
            problem(line_no, f"{where}: {line!r} {why}")
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            problem(line_no, f"{where}: {requirement.name} is pinned twice (first on line {seen[name]})")
            continue
        seen[name] = line_no
        applies = requirement.marker is None or requirement.marker.evaluate()
        pins.append(Pin(line_no, line, name, requirement, applies))
    return LockFile(path=path, pins=tuple(pins), problems=tuple(problems), problem_lines=tuple(problem_lines))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines joined across trailing backslashes, each with the number of its first physical line."""
    logical: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        start, prefix = pending if pending else (line_no, "")
        if line.rstrip().endswith("\\"):
            pending = (start, prefix + line.rstrip()[:-1] + " ")
            continue
        pending = None
        logical.append((start, prefix + line))
    if pending:
        logical.append(pending)
    return logical


def _strip_comment(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith("#"):
        return ""
    return stripped.split(" #", 1)[0].split("\t#", 1)[0].strip()


def _unpinned_reason(requirement: Requirement) -> str | None:
    if requirement.url:
        return "is a URL requirement; pin a released version with =="
    specifiers = list(requirement.specifier)
    if not specifiers:
        return "has no version; pin it with =="
    if len(specifiers) > 1:
        return "has more than one version specifier; pin exactly one with =="
    (specifier,) = specifiers
    if specifier.operator not in ("==", "==="):
        return f"uses {specifier.operator}; pin it with =="
    if specifier.version.endswith(".*"):
        return "uses a wildcard; pin an exact version with =="
    return None


def installed_distributions() -> dict[str, str]:
    """The distributions of the running interpreter: PEP 503 name → version (the first found on sys.path wins)."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), distribution.version)
    return found


def run_pip_check() -> PipCheck:
    """`python -m pip check` with this interpreter: broken or missing requirements of what is installed."""
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return PipCheck(ran=False, ok=False, output=str(exc))
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0 and "No module named pip" in output:
        return PipCheck(ran=False, ok=False, output=output)
    return PipCheck(ran=True, ok=completed.returncode == 0, output=output)


def project_name(repo_root: Path) -> str | None:
    try:
        document = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = document.get("project", {}).get("name")
    return canonicalize_name(name) if isinstance(name, str) else None


def deps_gate(
    cfg: HarnessConfig,
    *,
    lock_path: Path | None = None,
    installed: Mapping[str, str] | None = None,
    pip_check: Callable[[], PipCheck] = run_pip_check,
    evidence_dir: Path | None = None,
) -> CheckResult:
    """Compare the lock with the installed environment, run pip check, and write dependency_snapshot.txt."""
    lock_path = Path(lock_path) if lock_path is not None else cfg.repo_root / "requirements.lock"
    lock = read_lock(lock_path)
    found = {
        canonicalize_name(name): version
        for name, version in (installed if installed is not None else installed_distributions()).items()
    }
    ignored = set(NOT_LOCKED) | ({project_name(cfg.repo_root)} - {None})

    missing, mismatched = [], []
    missing_lines, mismatched_lines = [], []
    for pin in lock.pins:
        if not pin.applies:
            continue
        version = found.get(pin.name)
        if version is None:
            missing.append(f"{pin.requirement.name}=={_pinned(pin)} ({lock_path.name}:{pin.line_no})")
            missing_lines.append(pin.line_no)
        elif not _satisfies(pin, version):
            mismatched.append(f"{pin.requirement.name}: locked {_pinned(pin)}, installed {version}")
            mismatched_lines.append(pin.line_no)
    locked_names = {pin.name for pin in lock.pins}
    extra = sorted(f"{name}=={version}" for name, version in found.items() if name not in locked_names | ignored)
    check = pip_check()

    # each problem with the rule it breaks and its line of the lock (None: the lock as a whole)
    located: list[tuple[str, str, int | None]] = [
        ("unpinned", f"unpinned: {problem}", line_no)
        for problem, line_no in zip(lock.problems, lock.problem_lines, strict=True)
    ]
    located += [("missing", f"missing: {item}", n) for item, n in zip(missing, missing_lines, strict=True)]
    located += [("mismatched", f"mismatched: {item}", n) for item, n in zip(mismatched, mismatched_lines, strict=True)]
    located += [("extra", f"extra: {item} is installed but not in {lock_path.name}", None) for item in extra]
    problems = [text for _, text, _ in located]
    if check.ran and not check.ok:
        problems += [f"pip check: {line}" for line in check.output.splitlines() if line.strip()]
    lock_shown = repo_relative(lock_path, cfg.repo_root)
    findings = [Finding(rule, text, lock_shown, line_no) for rule, text, line_no in located]

    snapshot = (Path(evidence_dir) if evidence_dir is not None else cfg.path("evidence_dir")) / SNAPSHOT_NAME
    atomic_write_text(snapshot, _snapshot_text(lock_path, found, check))

    applicable = sum(1 for pin in lock.pins if pin.applies)
    figures = {
        "lock": str(lock_path),
        "pinned": len(lock.pins),
        "applicable": applicable,
        "unpinned": list(lock.problems),
        "missing": missing,
        "extra": extra,
        "mismatched": mismatched,
        "pip_check": "not run" if not check.ran else ("ok" if check.ok else "broken"),
    }
    counts = (
        f"{len(lock.pins)} pins, {len(lock.problems)} unpinned, {len(missing)} missing, "
        f"{len(extra)} extra, {len(mismatched)} mismatched"
    )
    if problems:
        outcome, summary, reason = Outcome.FAILED, counts, None
    elif not check.ran:
        outcome, summary = Outcome.INCONCLUSIVE, counts + "; pip check could not run"
        reason = f"pip check did not run: {check.output.splitlines()[-1] if check.output else 'no output'}"
    else:
        outcome, summary, reason = Outcome.PASSED, f"{applicable} pins match the environment; pip check ok", None
    return CheckResult(
        check="deps",
        outcome=outcome,
        summary=summary,
        reason=reason,
        figures=figures,
        problems=tuple(problems),
        evidence=(str(snapshot),),
        findings=tuple(findings),
    )


def _pinned(pin: Pin) -> str:
    return next(iter(pin.requirement.specifier)).version


def _satisfies(pin: Pin, installed_version: str) -> bool:
    try:
        Version(installed_version)
    except InvalidVersion:
        return installed_version == _pinned(pin)
    return pin.requirement.specifier.contains(installed_version, prereleases=True)


def _snapshot_text(lock_path: Path, found: Mapping[str, str], check: PipCheck) -> str:
    try:
        lock_sha = hashlib.sha256(lock_path.read_bytes()).hexdigest()
    except OSError:
        lock_sha = "unreadable"
    lines = [
        "# dependency snapshot written by `serena-verify deps`",
        f"# python: {platform.python_version()} ({sys.executable})",
        f"# lock: {lock_path.name} sha256 {lock_sha}",
        f"# pip check: {'not run' if not check.ran else ('ok' if check.ok else 'broken')}",
        *(f"{name}=={version}" for name, version in sorted(found.items())),
    ]
    return "\n".join(lines) + "\n"
