"""The coverage gate: the total against the one floor, per-module floors, and coverage of lines changed since a base.

The floor is `[tool.coverage.report] fail_under` in pyproject.toml and nowhere else. The total is compared
unrounded (coverage.py rounds to its precision first, so 79.6 % passes an 80 % floor there; here it fails).

A missing coverage.xml is inconclusive (exit 3: the tests did not produce it, so there is no verdict to give);
a coverage.xml that is not valid coverage XML is a usage error (exit 2) naming the file and what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.config import HarnessConfig, repo_relative
from harness.errors import ConfigError, HarnessError
from harness.git import GitError, changed_lines, ref_exists
from harness.outcome import CheckResult, Finding, Outcome, line_containing

_CONDITIONS = re.compile(r"\((\d+)/(\d+)\)")


class CoverageError(HarnessError):
    """coverage.xml is unreadable or not coverage XML."""

    slug = "coverage"


@dataclass(frozen=True)
class ModuleCoverage:
    """One measured file: statements and branches, and the hits per line."""

    path: str  # as recorded: the <source> joined with the class filename, posix
    statements: int
    covered_statements: int
    branches: int
    covered_branches: int
    line_hits: Mapping[int, int]

    @property
    def percent(self) -> float:
        """coverage.py's figure: (covered statements + covered branches) / (statements + branches)."""
        return _percent(self.covered_statements + self.covered_branches, self.statements + self.branches)

    @property
    def first_missed_line(self) -> int | None:
        return min((number for number, hits in self.line_hits.items() if hits == 0), default=None)


@dataclass(frozen=True)
class CoverageData:
    xml_path: Path
    modules: tuple[ModuleCoverage, ...]

    @property
    def statements(self) -> int:
        return sum(m.statements for m in self.modules)

    @property
    def branches(self) -> int:
        return sum(m.branches for m in self.modules)

    @property
    def total_percent(self) -> float:
        covered = sum(m.covered_statements + m.covered_branches for m in self.modules)
        return _percent(covered, self.statements + self.branches)

    def find(self, repo_path: str, repo_root: Path) -> ModuleCoverage | None:
        """The module recorded for `repo_path` (relative to the repository), also when measured elsewhere."""
        wanted = repo_path.replace("\\", "/").removeprefix("./")
        absolute = (repo_root / wanted).resolve().as_posix()
        for module in self.modules:
            if module.path in (wanted, absolute) or module.path.endswith("/" + wanted):
                return module
        return None


def _percent(covered: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * covered / total


def read_coverage_xml(path: Path) -> CoverageData:
    """Parse a coverage.py XML report; anything else is a CoverageError naming the file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise CoverageError(f"{path}: not valid XML ({exc}); regenerate it with --cov-report=xml:{path}") from None
    except OSError as exc:
        raise CoverageError(f"{path}: cannot read ({exc.strerror})") from None
    if root.tag != "coverage":
        raise CoverageError(f"{path}: root element is <{root.tag}>, expected <coverage> (a coverage.py XML report)")
    sources = [s.text.strip() for s in root.iter("source") if s.text and s.text.strip()] or [""]
    modules = []
    for element in root.iter("class"):
        filename = element.get("filename")
        if not filename:
            raise CoverageError(f"{path}: a <class> element has no filename attribute")
        line_hits: dict[int, int] = {}
        branches = covered_branches = 0
        for line in element.iter("line"):
            try:
                number, hits = int(line.get("number", "")), int(line.get("hits", ""))
            except ValueError:
                raise CoverageError(
                    f"{path}: {filename}: <line number={line.get('number')!r} hits={line.get('hits')!r}> "
                    "is not a pair of integers"
                ) from None
            line_hits[number] = hits
            if line.get("branch") == "true":
                match = _CONDITIONS.search(line.get("condition-coverage", ""))
                if match:
                    covered_branches += int(match.group(1))
                    branches += int(match.group(2))
        source = sources[0] if len(sources) == 1 else _source_holding(sources, filename)
        recorded = f"{source.rstrip('/')}/{filename}" if source else filename
        modules.append(
            ModuleCoverage(
                path=recorded.replace("\\", "/"),
                statements=len(line_hits),
                covered_statements=sum(1 for hits in line_hits.values() if hits > 0),
                branches=branches,
                covered_branches=covered_branches,
                line_hits=line_hits,
            )
        )
    return CoverageData(xml_path=path, modules=tuple(modules))


def _source_holding(sources: list[str], filename: str) -> str:
    for source in sources:
        if (Path(source) / filename).exists():
            return source
    return sources[0]


def coverage_floor(repo_root: Path) -> float:
    """`[tool.coverage.report] fail_under`: the one place the floor is written down."""
    pyproject = repo_root / "pyproject.toml"
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read the coverage floor ({exc})") from None
    value = document.get("tool", {}).get("coverage", {}).get("report", {}).get("fail_under")
    if value is None:
        raise ConfigError(f"{pyproject}: [tool.coverage.report] fail_under is not set; the coverage gate needs a floor")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ConfigError(f"{pyproject}: [tool.coverage.report] fail_under = {value!r}; expected a number 0-100")
    return float(value)


def module_floors(cfg: HarnessConfig) -> dict[str, float]:
    floors = {}
    for module, floor in dict(cfg["coverage.module_floors"]).items():
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor <= 100:
            where = cfg.sources.get("coverage.module_floors", "config")
            raise ConfigError(f"{where}: coverage.module_floors[{module!r}] = {floor!r}; expected a number 0-100")
        floors[str(module)] = float(floor)
    return floors


def _xml_path(cfg: HarnessConfig, xml_path: Path | None) -> Path:
    return Path(xml_path) if xml_path is not None else cfg.path("coverage.xml")


def _missing(check: str, path: Path) -> CheckResult:
    return CheckResult(
        check=check,
        outcome=Outcome.INCONCLUSIVE,
        summary="no coverage report to judge",
        reason=f"{path} does not exist; run the tests with --cov --cov-report=xml:{path} first",
    )


def coverage_gate(cfg: HarnessConfig, *, xml_path: Path | None = None) -> CheckResult:
    """The total against the floor and each configured module against its own floor."""
    path = _xml_path(cfg, xml_path)
    floor = coverage_floor(cfg.repo_root)
    floors = module_floors(cfg)
    if not path.is_file():
        return _missing("coverage", path)
    data = read_coverage_xml(path)
    total = data.total_percent
    problems = []
    findings = []
    pyproject = cfg.repo_root / "pyproject.toml"
    floors_file = cfg.sources.get("coverage.module_floors", "")
    if total < floor:
        problems.append(f"total {total}% is under the floor {floor:g}% ([tool.coverage.report] fail_under)")
        findings.append(Finding("total", problems[-1], "pyproject.toml", line_containing(pyproject, "fail_under")))
    module_figures = {}
    for module, module_floor in sorted(floors.items()):
        measured = data.find(module, cfg.repo_root)
        if measured is None:
            problems.append(f"{module}: has a floor of {module_floor:g}% but is not in {path.name}")
            module_figures[module] = {"floor": module_floor, "percent": None, "met": False}
            if floors_file.endswith(".toml"):  # the floor's own line; a floor set elsewhere has no file
                line = line_containing(Path(floors_file), f'"{module}"')
                shown = repo_relative(Path(floors_file), cfg.repo_root)
                findings.append(Finding("module-floor", problems[-1], shown, line))
            continue
        met = measured.percent >= module_floor
        module_figures[module] = {"floor": module_floor, "percent": measured.percent, "met": met}
        if not met:
            problems.append(
                f"{module}: {measured.percent}% is under its floor {module_floor:g}% "
                f"({measured.covered_statements}/{measured.statements} statements, "
                f"{measured.covered_branches}/{measured.branches} branches)"
            )
            # the module itself, at its first line the tests did not run
            findings.append(Finding("module-floor", problems[-1], _repo_path(module), measured.first_missed_line))
    met_modules = sum(1 for figure in module_figures.values() if figure["met"])
    summary = f"total {total}% (floor {floor:g}%)"
    if floors:
        summary += f"; {met_modules}/{len(floors)} module floors met"
    return CheckResult(
        check="coverage",
        outcome=Outcome.FAILED if problems else Outcome.PASSED,
        summary=summary,
        figures={
            "total": total,
            "floor": floor,
            "statements": data.statements,
            "branches": data.branches,
            "module_floors": module_figures,
            "coverage_xml": str(path),
        },
        problems=tuple(problems),
        evidence=(str(path),),
        findings=tuple(findings),
    )


def _repo_path(module: str) -> str:
    """A configured module path as the repository shows it: posix, without a leading ./."""
    return module.replace("\\", "/").removeprefix("./")


def changed_lines_coverage(
    cfg: HarnessConfig,
    base: str,
    *,
    xml_path: Path | None = None,
    changed: Mapping[str, set[int]] | None = None,
) -> CheckResult:
    """How many of the measured lines changed since `base` the tests ran: a figure, reported, not a floor."""
    path = _xml_path(cfg, xml_path)
    if not path.is_file():
        return _missing("coverage-diff", path)
    if changed is None:
        try:
            if not ref_exists(cfg.repo_root, base):
                return CheckResult(
                    check="coverage-diff",
                    outcome=Outcome.SKIPPED,
                    summary="changed-line coverage not computed",
                    reason=f"base ref {base!r} does not exist here (a shallow clone? fetch with fetch-depth: 0)",
                )
            changed = changed_lines(cfg.repo_root, base)
        except GitError as exc:
            return CheckResult(
                check="coverage-diff",
                outcome=Outcome.SKIPPED,
                summary="changed-line coverage not computed",
                reason=str(exc),
            )
    data = read_coverage_xml(path)
    measured_total = covered_total = 0
    per_file = {}
    problems = []
    findings = []
    for repo_path, numbers in sorted(changed.items()):
        module = data.find(repo_path, cfg.repo_root)
        if module is None:
            continue
        measured = sorted(n for n in numbers if n in module.line_hits)
        if not measured:
            continue
        missed = [n for n in measured if module.line_hits[n] == 0]
        measured_total += len(measured)
        covered_total += len(measured) - len(missed)
        per_file[repo_path] = {"changed": len(measured), "covered": len(measured) - len(missed), "missed": missed}
        if missed:
            problems.append(f"{repo_path}: changed lines not run by the tests: {_ranges(missed)}")
            # a figure, not a floor: a note at the first changed line the tests missed
            findings.append(Finding("changed-lines", problems[-1], _repo_path(repo_path), missed[0], level="note"))
    percent = None if measured_total == 0 else 100.0 * covered_total / measured_total
    if percent is None:
        summary = f"no measured line changed since {base}"
    else:
        summary = f"{covered_total}/{measured_total} measured lines changed since {base} covered ({percent}%)"
    return CheckResult(
        check="coverage-diff",
        outcome=Outcome.PASSED,
        summary=summary,
        figures={
            "base": base,
            "changed_measured_lines": measured_total,
            "covered": covered_total,
            "percent": percent,
            "files": per_file,
        },
        problems=tuple(problems),
        evidence=(str(path),),
        findings=tuple(findings),
    )


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] → '1-3, 7'."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
