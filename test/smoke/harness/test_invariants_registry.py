"""The invariant registry's schema: every problem names the file, the invariant and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO_ROOT

from harness.cli import main
from harness.errors import InvariantsError
from harness.invariants.registry import SURFACES, load_registry

GOOD = """
[[invariant]]
id = "INV-001"
title = "t"
surface = "cli"
statement = "s"
severity = "blocking"
introduced_in = "M01"
verified_by = ["snapshot:cli-help"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def test_a_good_registry_loads(tmp_path: Path) -> None:
    [invariant] = load_registry(write(tmp_path, GOOD))
    assert invariant.id == "INV-001" and invariant.blocking
    assert [str(ref) for ref in invariant.verified_by] == ["snapshot:cli-help"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (('id = "INV-001"', 'id = "X1"'), "field 'id' must look like INV-001"),
        (('surface = "cli"', 'surface = "gui"'), "field 'surface' 'gui' is not one of"),
        (('severity = "blocking"', 'severity = "high"'), "field 'severity'"),
        (('introduced_in = "M01"', 'introduced_in = "v1"'), "field 'introduced_in'"),
        (('title = "t"', 'title = ""'), "field 'title' must be a non-empty string"),
        (('title = "t"', 'owner = "x"\ntitle = "t"'), "unknown field 'owner'"),
        (('["snapshot:cli-help"]', '["cli-help"]'), "verifier 'cli-help' must be one of"),
        (('["snapshot:cli-help"]', '"snapshot:cli-help"'), "field 'verified_by' must be a list of strings"),
        (('statement = "s"\n', ""), "field 'statement' must be a non-empty string"),
    ],
)
def test_schema_errors_name_file_invariant_and_field(tmp_path: Path, change: tuple[str, str], fragment: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(InvariantsError) as caught:
        load_registry(path)
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvariantsError, match="'INV-001' is used twice"):
        load_registry(write(tmp_path, GOOD + GOOD))


@pytest.mark.parametrize(("text", "fragment"), [("", "no invariants declared"), ("[[invariant]\n", "malformed TOML")])
def test_empty_or_malformed_registry(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InvariantsError, match=fragment):
        load_registry(write(tmp_path, text))


def test_the_shipped_registry_covers_the_required_surfaces() -> None:
    invariants = load_registry(REPO_ROOT / "invariants" / "registry.toml")
    surfaces = {inv.surface for inv in invariants}
    for surface in ("image-outputs", "file-outputs", "extensions", "api-schema", "cli", "options-isolation"):
        assert surface in surfaces
    assert surfaces <= set(SURFACES)
    assert all(inv.verified_by for inv in invariants)


def test_list_and_show_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invariants", "list"]) == 0
    assert "INV-001  blocking" in capsys.readouterr().out
    assert main(["invariants", "show", "INV-012"]) == 0
    out = capsys.readouterr().out
    assert "Options are restored after every run" in out and "pytest:test/smoke/serena/test_temporary_opts.py" in out
    assert main(["invariants", "show", "INV-999"]) == 2
    assert "no invariant 'INV-999'" in capsys.readouterr().err
