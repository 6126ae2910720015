"""`pytest --golden` (harness/golden/pytest_plugin.py): golden cases as pytest items, run by a real pytest process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from support import REPO_ROOT

from harness.golden.cases import load_cases

pytest_plugins = ["pytester"]

# The plugin from the working tree, whether or not the installed package's `serena_golden` entry point would load it
# too: pytest refuses one module registered under two names, so the entry point's name is blocked first.
PLUGIN = ("-p", "no:serena_golden", "-p", "harness.golden.pytest_plugin")
# one txt2img and one img2img case keep a generating run short (the imports dominate it)
SAMPLE = ("-k", "t2i-lcm or i2i-ddim-gradient")
SAMPLE_IDS = ["cases/img2img.toml::i2i-ddim-gradient", "cases/txt2img.toml::t2i-lcm"]
PASSING = {"identical", "equivalent"}


@pytest.fixture
def root(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pytester's folder as a repository root: a pyproject.toml whose test paths leave the cases and goldens out (as
    the repository's do), and copies of the cases and of the cpu-fp32 set that SERENA_GOLDEN_CASES_DIR /
    SERENA_GOLDEN_GOLDENS_DIR point the plugin at."""
    for name in list(os.environ):
        if name.startswith("SERENA_"):
            monkeypatch.delenv(name)
    folder = pytester.path
    (folder / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["test"]\n\n[tool.serena]\n', encoding="utf-8"
    )
    (folder / "test").mkdir()
    shutil.copytree(REPO_ROOT / "harness" / "cases", folder / "cases")
    shutil.copytree(REPO_ROOT / "harness" / "goldens" / "cpu-fp32", folder / "goldens" / "cpu-fp32")
    monkeypatch.setenv("SERENA_GOLDEN_CASES_DIR", str(folder / "cases"))
    monkeypatch.setenv("SERENA_GOLDEN_GOLDENS_DIR", str(folder / "goldens"))
    return folder


def pytest_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """`pytest ARGS…` in its own process, with the plugin, as a user runs it."""
    return pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *args, timeout=600
    )


def manifest_path(root: Path) -> Path:
    return root / "goldens" / "cpu-fp32" / "manifest.json"


def read_manifest(root: Path) -> dict:
    return json.loads(manifest_path(root).read_text(encoding="utf-8"))


def write_manifest(root: Path, document: dict) -> None:
    manifest_path(root).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def item_count(root: Path) -> int:
    """How many items `pytest --golden` collects from the copy: one per case, one per unused golden."""
    defined = {case.id for case in load_cases(root / "cases")}
    return len(defined) + len(set(read_manifest(root)["cases"]) - defined)


def report_document(root: Path) -> dict:
    return json.loads((root / "build" / "evidence" / "golden-pytest" / "golden.json").read_text(encoding="utf-8"))


def test_every_case_is_an_item_that_runs_and_passes(pytester: pytest.Pytester, root: Path) -> None:
    result = pytest_run(pytester, "--golden", "-q", *SAMPLE, "--junitxml", "junit.xml")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2, deselected=item_count(root) - 2)
    result.stdout.fnmatch_lines(["*- golden -*", "2 cases on cpu-fp32: *", "report: build/evidence/golden-pytest/*"])
    # the JUnit XML: one testcase per case, named by its file and id
    testcases = ET.parse(root / "junit.xml").getroot().iter("testcase")
    assert sorted(f"{t.get('classname')}::{t.get('name')}" for t in testcases) == [
        "cases.img2img.toml::i2i-ddim-gradient",
        "cases.txt2img.toml::t2i-lcm",
    ]
    # the harness's report folder, written once at the end of the session
    folder = root / "build" / "evidence" / "golden-pytest"
    assert {"golden.json", "golden.html", "golden.junit.xml", "golden.md"} <= {p.name for p in folder.iterdir()}
    document = report_document(root)
    assert document["outcome"] == "passed"
    assert {case["case"]: case["verdict"] in PASSING for case in document["cases"]} == {
        "i2i-ddim-gradient": True,
        "t2i-lcm": True,
    }
    assert sorted(p.name for p in (folder / "actual").iterdir()) == ["i2i-ddim-gradient-0.png", "t2i-lcm-0.png"]


def test_case_ids_markers_and_keywords_select_items(pytester: pytest.Pytester, root: Path) -> None:
    by_id = pytest_run(pytester, "--golden", "--collect-only", "-q", "cases/txt2img.toml::t2i-heun")
    assert by_id.ret == pytest.ExitCode.OK, by_id.stdout.str()
    assert [line for line in by_id.stdout.lines if "::" in line] == ["cases/txt2img.toml::t2i-heun"]

    by_marker = pytest_run(pytester, "--golden", "--collect-only", "-q", "-m", "img2img")
    # collected file by file, as pytest collects any files' items
    img2img = sorted(f"cases/{Path(c.source).name}::{c.id}" for c in load_cases(root / "cases") if c.mode == "img2img")
    assert [line for line in by_marker.stdout.lines if "::" in line] == img2img

    by_keyword = pytest_run(pytester, "--golden", "--collect-only", "-q", *SAMPLE)
    assert [line for line in by_keyword.stdout.lines if "::" in line] == SAMPLE_IDS
    everything = pytest_run(pytester, "--golden", "--collect-only", "-q", "-m", "golden")
    everything.stdout.fnmatch_lines([f"{item_count(root)} tests collected*"])


def plant_stale_and_changed(root: Path) -> None:
    """t2i-lcm's cfg_scale edited without re-recording (stale); i2i-ddim-gradient's golden swapped for t2i-euler's
    image, with the measures of that image so the set stays consistent (changed)."""
    cases = root / "cases" / "txt2img.toml"
    text = cases.read_text(encoding="utf-8")
    lcm = text.index('id = "t2i-lcm"')
    edited = text[lcm:].replace("cfg_scale = 3.0", "cfg_scale = 2.5", 1)
    cases.write_text(text[:lcm] + edited, encoding="utf-8")
    document = read_manifest(root)
    target = document["cases"]["i2i-ddim-gradient"]["images"][0]
    donor = document["cases"]["t2i-euler"]["images"][0]
    folder = manifest_path(root).parent
    shutil.copyfile(folder / donor["file"], folder / target["file"])
    target.update({key: value for key, value in donor.items() if key != "file"})
    write_manifest(root, document)


def test_changed_and_stale_goldens_fail_then_update_rerecords_them(pytester: pytest.Pytester, root: Path) -> None:
    plant_stale_and_changed(root)

    failing = pytest_run(pytester, "--golden", "-q", *SAMPLE)
    out = failing.stdout.str()
    assert failing.ret == pytest.ExitCode.TESTS_FAILED, out
    failing.assert_outcomes(failed=2, deselected=item_count(root) - 2)
    failing.stdout.fnmatch_lines(["*t2i-lcm: stale — case parameters changed since recording: cfg_scale 3.0 → 2.5*"])
    failing.stdout.fnmatch_lines(["*i2i-ddim-gradient: changed — image 0: * beyond tolerance — phash16 distance *"])
    failing.stdout.fnmatch_lines(
        ["*FAILED cases/img2img.toml::i2i-ddim-gradient*", "*FAILED cases/txt2img.toml::t2i-lcm*"]
    )
    assert "Traceback" not in out and "runtest" not in out, out  # the verdict's reason, not the plugin's stack
    assert report_document(root)["outcome"] == "failed"

    update = pytest_run(pytester, "--golden", "--golden-update", "-q", *SAMPLE)
    assert update.ret == pytest.ExitCode.OK, update.stdout.str()
    update.assert_outcomes(passed=2, deselected=item_count(root) - 2)
    update.stdout.fnmatch_lines(
        [
            "re-recorded 2 golden(s) in goldens/cpu-fp32/manifest.json: "
            "i2i-ddim-gradient (was changed), t2i-lcm (was stale)"
        ]
    )
    recorded = read_manifest(root)["cases"]
    assert recorded["t2i-lcm"]["params"]["cfg_scale"] == 2.5
    assert report_document(root)["updated"] == ["i2i-ddim-gradient", "t2i-lcm"]

    again = pytest_run(pytester, "--golden", "-q", *SAMPLE)
    assert again.ret == pytest.ExitCode.OK, again.stdout.str()
    again.assert_outcomes(passed=2, deselected=item_count(root) - 2)
    again.stdout.fnmatch_lines(["2 cases on cpu-fp32: 2 identical"])  # recorded here, so bit-identical here


def test_unused_golden_fails_unless_warned_and_update_removes_it(pytester: pytest.Pytester, root: Path) -> None:
    document = read_manifest(root)
    document["cases"]["t2i-retired"] = dict(document["cases"]["t2i-heun"])
    write_manifest(root, document)
    unused = "goldens/cpu-fp32/manifest.json::unused::t2i-retired"
    items = item_count(root)

    failing = pytest_run(pytester, "--golden", "-q", "-k", "unused", "--golden-report-dir", "elsewhere")
    assert failing.ret == pytest.ExitCode.TESTS_FAILED, failing.stdout.str()
    failing.assert_outcomes(failed=1, deselected=items - 1)
    failing.stdout.fnmatch_lines(["t2i-retired: unused golden (recorded, not run)*", f"FAILED {unused} - *"])
    document = json.loads((root / "elsewhere" / "golden.json").read_text(encoding="utf-8"))
    assert document["unused"] == ["t2i-retired"]

    named = pytest_run(pytester, "--golden", "--collect-only", "-q", "cases/txt2img.toml")
    assert named.ret == pytest.ExitCode.OK, named.stdout.str()
    assert not [line for line in named.stdout.lines if "unused::" in line]  # case files named: those run alone

    warned = pytest_run(pytester, "--golden", "--golden-warn-unused", "--collect-only", "-q")
    assert warned.ret == pytest.ExitCode.OK, warned.stdout.str()
    assert not [line for line in warned.stdout.lines if "unused::" in line]
    warned.stdout.fnmatch_lines(
        [
            "warning: unused golden t2i-retired: recorded in goldens/cpu-fp32/manifest.json, but no case defines it",
            f"{len(load_cases(root / 'cases'))} tests collected*",  # the cases, no unused item
        ]
    )

    removed = pytest_run(pytester, "--golden", "--golden-update", "-q", "-k", "unused")
    assert removed.ret == pytest.ExitCode.OK, removed.stdout.str()
    removed.assert_outcomes(passed=1, deselected=items - 1)
    removed.stdout.fnmatch_lines(["removed 1 unused golden(s): t2i-retired"])
    assert "t2i-retired" not in read_manifest(root)["cases"]
    assert "t2i-heun" in read_manifest(root)["cases"]


def test_without_golden_the_plugin_collects_and_imports_nothing(pytester: pytest.Pytester, root: Path) -> None:
    (root / "test" / "test_plain.py").write_text(
        "import sys\n\n\n"
        "def test_plain():\n"
        "    assert 'torch' not in sys.modules\n"
        "    assert [m for m in sys.modules if m.startswith('harness.golden.')] == ['harness.golden.pytest_plugin']\n",
        encoding="utf-8",
    )
    plain = pytest_run(pytester, "-q")
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()
    plain.assert_outcomes(passed=1)
    assert not [line for line in plain.stdout.lines if "- golden -" in line or line.startswith("golden: ")]

    cases_only = pytest_run(pytester, "--collect-only", "-q", "cases")
    assert cases_only.ret == pytest.ExitCode.NO_TESTS_COLLECTED, cases_only.stdout.str()

    markers = pytest_run(pytester, "--markers")
    assert "@pytest.mark.golden" not in markers.stdout.str()


def test_bad_input_is_one_usage_error_line(pytester: pytest.Pytester, root: Path) -> None:
    manifest_path(root).write_text("{ not json", encoding="utf-8")
    corrupt = pytest_run(pytester, "--golden", "--collect-only", "-q")
    assert corrupt.ret == pytest.ExitCode.USAGE_ERROR
    corrupt.stderr.fnmatch_lines(["ERROR: --golden: *goldens/cpu-fp32/manifest.json:1:3: corrupt manifest: *"])
    assert "Traceback" not in corrupt.stderr.str()

    alone = pytest_run(pytester, "--golden-update")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["ERROR: --golden-update records goldens of a golden run: add --golden"])


def test_xdist_workers_share_the_items_and_one_report_is_written(pytester: pytest.Pytester, root: Path) -> None:
    pytest.importorskip("xdist")

    result = pytest_run(pytester, "--golden", "-n", "2", "-q", *SAMPLE)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["2 cases on cpu-fp32: *"])
    document = report_document(root)
    assert sorted(case["case"] for case in document["cases"]) == ["i2i-ddim-gradient", "t2i-lcm"]
    assert document["selection"]["merged_from"] >= 1
    assert not (root / "build" / "evidence" / "golden-pytest" / "workers").exists()

    refused = pytest_run(pytester, "--golden", "--golden-update", "-n", "2")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --golden-update writes the golden set once*without xdist (-n)"])


def test_golden_update_is_refused_when_ci_is_set_unless_allowed(
    pytester: pytest.Pytester, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = manifest_path(root).read_bytes()
    monkeypatch.setenv("CI", "true")
    refused = pytest_run(pytester, "--golden", "--golden-update", "-q", *SAMPLE)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --golden-update refuses to write goldens when CI is set*"])
    assert manifest_path(root).read_bytes() == before
    allowed = pytest_run(pytester, "--golden", "--golden-update", "--golden-allow-ci", "-q", *SAMPLE)
    assert allowed.ret == pytest.ExitCode.OK, allowed.stdout.str()
