"""pytest in a subprocess, and its JUnit XML read back: totals, and each test's result by node id."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.errors import HarnessError


def run_pytest(repo_root: Path, *args: str, junit: Path) -> subprocess.CompletedProcess[str]:
    """`python -m pytest -q <args> --junitxml=<junit>` in `repo_root`, output captured, no cache written."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, f"--junitxml={junit}"]
    return subprocess.run(command, cwd=repo_root, capture_output=True, text=True)


def _root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise HarnessError(f"{path}: JUnit results not found") from None
    except ET.ParseError as exc:
        raise HarnessError(f"{path}: corrupt JUnit XML ({exc})") from None


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped, summed over every test suite in the file."""
    root = _root(path)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {key: sum(int(s.get(key, 0) or 0) for s in suites) for key in ("tests", "failures", "errors", "skipped")}


def junit_results(path: Path, repo_root: Path) -> dict[str, str]:
    """node id → passed / failed / not run, from a JUnit XML written by pytest."""
    results: dict[str, str] = {}
    for case in _root(path).iter("testcase"):
        parts = case.get("classname", "").split(".")
        name = case.get("name", "")
        # pytest's classname is the dotted module path, followed by the class for tests in a class
        node = f"{'/'.join(parts)}.py::{name}"
        for split in range(len(parts), 0, -1):
            module = "/".join(parts[:split]) + ".py"
            if (repo_root / module).is_file():
                node = "::".join([module, *parts[split:], name])
                break
        if case.find("failure") is not None or case.find("error") is not None:
            results[node] = "failed"
        elif case.find("skipped") is not None:
            results[node] = "not run"
        else:
            results[node] = "passed"
    return results
