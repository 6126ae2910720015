"""The dependency rules in pyproject.toml's [tool.importlinter], checked by import-linter, and the cycle rule twice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from support import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, capture_output=True, text=True)


def test_the_repository_keeps_every_import_contract() -> None:
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "Contracts: 4 kept, 0 broken." in result.stdout


def test_no_module_of_the_harness_is_on_an_import_cycle() -> None:
    """A second, independent look: strongly connected components of grimp's module graph (type-only imports out)."""
    import grimp

    graph = grimp.build_graph("harness", "serena", exclude_type_checking_imports=True, cache_dir=None)
    modules = sorted(m for m in graph.modules if m == "harness" or m.startswith("harness."))
    loops = [
        (module, other)
        for module in modules
        for other in graph.find_modules_directly_imported_by(module)
        if other.startswith("harness") and graph.chain_exists(importer=other, imported=module)
    ]
    assert loops == []


def test_the_contracts_can_fail(tmp_path: Path) -> None:
    """The same kinds of contract turn red on a package that breaks them: a cycle and an upward import."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("from pkg import core\n")
    (package / "core.py").write_text("from pkg import cli\n")  # upward, and a loop
    (tmp_path / "contracts.toml").write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_packages = ["pkg"]

            [[tool.importlinter.contracts]]
            name = "layers"
            type = "layers"
            layers = ["pkg.cli", "pkg.core"]

            [[tool.importlinter.contracts]]
            name = "acyclic"
            type = "acyclic_siblings"
            ancestors = ["pkg"]
            """
        )
    )
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", "contracts.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert result.returncode == 1
    assert "Contracts: 0 kept, 2 broken." in result.stdout
    assert "pkg.core is not allowed to import pkg.cli" in result.stdout
