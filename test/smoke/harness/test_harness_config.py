"""Harness basics: layered configuration, outcome combination and exit codes, and the check-result renderers."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness import exit_codes
from harness.config import KEYS, find_repo_root, load_config
from harness.errors import ConfigError
from harness.outcome import CheckResult, Outcome, combine, exit_code
from harness.render import (
    github_annotations,
    render,
    render_json,
    render_junit,
    render_markdown,
    render_terminal,
)

PASSED, FAILED, SKIPPED, INCONCLUSIVE = Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED, Outcome.INCONCLUSIVE


def write_pyproject(root: Path, text: str) -> Path:
    path = root / "pyproject.toml"
    path.write_text('[project]\nname = "example"\n\n' + text, encoding="utf-8")
    return path


def config_error(root: Path, *fragments: str, **kwargs: object) -> str:
    """load_config raises ConfigError whose message holds every fragment; returns the message."""
    with pytest.raises(ConfigError) as caught:
        load_config(root, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    return message


# -- configuration layers ---------------------------------------------------------------------
def test_without_pyproject_env_or_flags_every_key_is_its_default(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})

    assert dict(config.values) == {key.name: key.default for key in KEYS}
    assert set(config.sources.values()) == {"default"}
    assert config["golden.num_threads"] == 2
    assert config.path("golden.cases_dir") == (tmp_path / "harness" / "cases").resolve()


def test_each_layer_overrides_the_one_before_and_sources_say_which(tmp_path: Path) -> None:
    pyproject = write_pyproject(
        tmp_path,
        '[tool.serena]\nevidence_dir = "out/evidence"\nstrict = true\n\n'
        "[tool.serena.golden]\nphash_bits = 4\nmean_abs = 2\nnum_threads = 1\n",
    )
    environ = {"SERENA_GOLDEN_PHASH_BITS": "6", "SERENA_GOLDEN_NUM_THREADS": "3", "SERENA_STRICT": "off"}

    config = load_config(tmp_path, {"golden.num_threads": 4, "golden.warn_unused": None}, environ=environ)

    assert config["evidence_dir"] == "out/evidence"
    assert config.sources["evidence_dir"] == str(pyproject)
    assert config["golden.mean_abs"] == 2.0 and isinstance(config["golden.mean_abs"], float)
    assert config.sources["golden.mean_abs"] == str(pyproject)
    assert config["golden.phash_bits"] == 6
    assert config.sources["golden.phash_bits"] == "$SERENA_GOLDEN_PHASH_BITS"
    assert config["strict"] is False
    assert config.sources["strict"] == "$SERENA_STRICT"
    assert config["golden.num_threads"] == 4
    assert config.sources["golden.num_threads"] == "flag"
    # a flag left unset (None) does not override anything
    assert config["golden.warn_unused"] is False
    assert config.sources["golden.warn_unused"] == "default"
    assert config.path("evidence_dir") == (tmp_path / "out" / "evidence").resolve()


def test_nested_tables_and_dict_keys_are_read_from_pyproject(tmp_path: Path) -> None:
    pyproject = write_pyproject(
        tmp_path,
        '[tool.serena.coverage]\nmodule_floors = { "serena/a.py" = 100.0 }\n\n'
        '[[tool.serena.audit.ignore]]\nid = "PYSEC-1"\nreason = "not reachable"\nexpires = "2030-01-01"\n',
    )

    config = load_config(tmp_path, environ={})

    assert config["coverage.module_floors"] == {"serena/a.py": 100.0}
    assert config["audit.ignore"] == [{"id": "PYSEC-1", "reason": "not reachable", "expires": "2030-01-01"}]
    assert config.sources["coverage.module_floors"] == str(pyproject)


def test_a_pyproject_without_tool_serena_keeps_the_defaults(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[tool.other]\nanything = 1\n")

    config = load_config(tmp_path, environ={})

    assert set(config.sources.values()) == {"default"}


def test_malformed_pyproject_names_the_file(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, "[tool.serena\nstrict = true\n")

    config_error(tmp_path, str(pyproject), "malformed TOML", environ={})


def test_unknown_tool_serena_key_names_the_file_and_key(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, "[tool.serena.golden]\nphash_bitz = 4\n")

    config_error(tmp_path, str(pyproject), "'golden.phash_bitz'", "golden.phash_bits", environ={})


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ('[tool.serena.golden]\nphash_bits = "8"\n', "golden.phash_bits", "'8'"),
        ("[tool.serena.golden]\nphash_bits = true\n", "golden.phash_bits", "True"),
        ('[tool.serena.golden]\nmean_abs = "1.0"\n', "golden.mean_abs", "'1.0'"),
        ('[tool.serena]\nstrict = "yes"\n', "strict", "'yes'"),
        ("[tool.serena]\nevidence_dir = 5\n", "evidence_dir", "5"),
        ('[tool.serena.audit]\nignore = "PYSEC-1"\n', "audit.ignore", "'PYSEC-1'"),
    ],
)
def test_wrong_type_in_pyproject_names_file_key_and_value(tmp_path: Path, table: str, key: str, value: str) -> None:
    pyproject = write_pyproject(tmp_path, table)

    config_error(tmp_path, str(pyproject), key, value, environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("", False),
    ],
)
def test_boolean_environment_values(tmp_path: Path, text: str, expected: bool) -> None:
    assert load_config(tmp_path, environ={"SERENA_GOLDEN_WARN_UNUSED": text})["golden.warn_unused"] is expected


def test_numeric_and_text_environment_values(tmp_path: Path) -> None:
    config = load_config(
        tmp_path,
        environ={"SERENA_GOLDEN_MEAN_ABS": "0.25", "SERENA_GOLDEN_GOLDENS_DIR": "/elsewhere/goldens", "OTHER": "x"},
    )

    assert config["golden.mean_abs"] == 0.25
    assert config.path("golden.goldens_dir") == Path("/elsewhere/goldens").resolve()


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("SERENA_STRICT", "maybe"),
        ("SERENA_GOLDEN_PHASH_BITS", "eight"),
        ("SERENA_GOLDEN_PHASH_BITS", "8.5"),
        ("SERENA_GOLDEN_MEAN_ABS", "one"),
    ],
)
def test_unparsable_environment_value_names_the_variable_and_value(tmp_path: Path, variable: str, text: str) -> None:
    config_error(tmp_path, variable, repr(text), environ={variable: text})


def test_structured_keys_cannot_come_from_the_environment(tmp_path: Path) -> None:
    config_error(
        tmp_path, "SERENA_COVERAGE_MODULE_FLOORS", "pyproject.toml", environ={"SERENA_COVERAGE_MODULE_FLOORS": "{}"}
    )


def test_unknown_or_mistyped_flags_are_config_errors(tmp_path: Path) -> None:
    config_error(tmp_path, "'golden.nope'", flags={"golden.nope": 1}, environ={})
    config_error(tmp_path, "command line", "golden.num_threads", "'2'", flags={"golden.num_threads": "2"}, environ={})


def test_repo_root_is_the_nearest_folder_with_a_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)

    assert find_repo_root(nested) == tmp_path.resolve()


# -- outcomes and exit codes ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcomes", "plain", "strict"),
    [
        ([], INCONCLUSIVE, INCONCLUSIVE),
        ([PASSED], PASSED, PASSED),
        ([PASSED, PASSED], PASSED, PASSED),
        ([SKIPPED], SKIPPED, FAILED),
        ([SKIPPED, SKIPPED], SKIPPED, FAILED),
        ([PASSED, SKIPPED], PASSED, FAILED),
        ([FAILED], FAILED, FAILED),
        ([PASSED, FAILED, SKIPPED], FAILED, FAILED),
        ([INCONCLUSIVE], INCONCLUSIVE, INCONCLUSIVE),
        ([PASSED, INCONCLUSIVE], INCONCLUSIVE, INCONCLUSIVE),
        ([SKIPPED, INCONCLUSIVE], INCONCLUSIVE, FAILED),
        ([FAILED, INCONCLUSIVE], FAILED, FAILED),
    ],
)
def test_combine_truth_table(outcomes: list[Outcome], plain: Outcome, strict: Outcome) -> None:
    assert combine(outcomes) is plain
    assert combine(iter(outcomes), strict=True) is strict


@pytest.mark.parametrize(
    ("outcome", "plain", "strict"),
    [
        (PASSED, exit_codes.OK, exit_codes.OK),
        (FAILED, exit_codes.FAILED, exit_codes.FAILED),
        (SKIPPED, exit_codes.OK, exit_codes.FAILED),
        (INCONCLUSIVE, exit_codes.INCONCLUSIVE, exit_codes.INCONCLUSIVE),
    ],
)
def test_exit_code_per_outcome(outcome: Outcome, plain: int, strict: int) -> None:
    assert exit_code(outcome) == plain
    assert exit_code(outcome, strict=True) == strict


def test_exit_code_values_are_the_documented_ones() -> None:
    assert (exit_codes.OK, exit_codes.FAILED, exit_codes.USAGE, exit_codes.INCONCLUSIVE) == (0, 1, 2, 3)
    for code in ("0 passed", "1 a check failed", "2 usage or configuration error", "3 inconclusive"):
        assert code in exit_codes.HELP


def test_nothing_ran_is_never_a_pass() -> None:
    assert exit_code(combine([])) == exit_codes.INCONCLUSIVE


@pytest.mark.parametrize("outcome", [SKIPPED, INCONCLUSIVE])
@pytest.mark.parametrize("reason", [None, ""])
def test_skipped_and_inconclusive_results_need_a_reason(outcome: Outcome, reason: str | None) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        CheckResult("coverage", outcome, "did not run", reason=reason)


def test_passed_and_failed_results_need_no_reason() -> None:
    assert CheckResult("coverage", PASSED, "92%").reason is None
    failed = CheckResult("coverage", FAILED, "70%", problems=("below the floor",), figures={"percent": 70})
    assert failed.to_dict() == {
        "check": "coverage",
        "outcome": "failed",
        "summary": "70%",
        "reason": None,
        "figures": {"percent": 70},
        "problems": ["below the floor"],
        "evidence": [],
    }


# -- renderers --------------------------------------------------------------------------------
RESULTS = [
    CheckResult("pinned", PASSED, "12 pins"),
    CheckResult("coverage", FAILED, "70% | floor 80%", problems=("serena/a.py 50%", "serena/b.py 60%")),
    CheckResult("gpu-goldens", SKIPPED, "not run", reason="no CUDA device"),
    CheckResult("audit", INCONCLUSIVE, "no verdict", reason="advisory database unreachable"),
]


def test_terminal_lists_every_check_with_its_mark_problems_and_overall() -> None:
    text = render_terminal(RESULTS)
    lines = text.splitlines()

    assert any(line.startswith("pinned") and "PASS" in line and "12 pins" in line for line in lines)
    assert any(line.startswith("coverage") and "FAIL" in line for line in lines)
    assert any(line.startswith("gpu-goldens") and "SKIP" in line and "(no CUDA device)" in line for line in lines)
    assert any(line.startswith("audit") and "INCONCLUSIVE" in line and "unreachable" in line for line in lines)
    assert any(line.strip() == "- serena/a.py 50%" for line in lines)
    assert lines[-1] == "overall: failed"
    assert render_terminal([]).splitlines()[-1] == "overall: inconclusive"


def test_json_has_schema_version_outcome_and_every_result() -> None:
    document = json.loads(render_json(RESULTS))

    assert document["schema_version"] == 1
    assert document["outcome"] == "failed"
    assert document["strict"] is False
    assert [r["check"] for r in document["results"]] == ["pinned", "coverage", "gpu-goldens", "audit"]
    assert [r["outcome"] for r in document["results"]] == ["passed", "failed", "skipped", "inconclusive"]
    assert document["results"][2]["reason"] == "no CUDA device"
    assert document["results"][1]["problems"] == ["serena/a.py 50%", "serena/b.py 60%"]


def test_json_outcome_follows_strict_and_the_empty_case() -> None:
    lenient = [RESULTS[0], RESULTS[2]]

    assert json.loads(render_json(lenient))["outcome"] == "passed"
    assert json.loads(render_json(lenient, strict=True))["outcome"] == "failed"
    assert json.loads(render_json([]))["outcome"] == "inconclusive"


def test_markdown_has_a_heading_a_row_per_check_and_the_problems() -> None:
    text = render_markdown(RESULTS)
    lines = text.splitlines()

    assert lines[0] == "### serena-verify: failed"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| check") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["pinned", "coverage", "gpu-goldens", "audit"]
    # a '|' inside a summary must not add a table column
    assert all(row.count("|") == 4 for row in rows)
    assert "**coverage**" in lines and "- serena/b.py 60%" in lines
    assert "no CUDA device" in text


def junit_counts(text: str) -> dict[str, int]:
    suite = ET.fromstring(text)
    cases = suite.findall("testcase")
    return {
        "tests": int(suite.get("tests", "-1")),
        "failures": int(suite.get("failures", "0")),
        "errors": int(suite.get("errors", "0")),
        "skipped": int(suite.get("skipped", "0")),
        "testcases": len(cases),
        "failure_nodes": sum(len(case.findall("failure")) for case in cases),
        "error_nodes": sum(len(case.findall("error")) for case in cases),
        "skipped_nodes": sum(len(case.findall("skipped")) for case in cases),
    }


def test_junit_parses_and_its_counts_match_its_testcases() -> None:
    counts = junit_counts(render_junit(RESULTS))

    assert counts["tests"] == counts["testcases"] == 4
    assert counts["failure_nodes"] == 1 and counts["error_nodes"] == 1 and counts["skipped_nodes"] == 1
    assert counts["skipped"] == 1
    # JUnit consumers read `failures` as <failure> children and `errors` as <error> children
    assert counts["failures"] == counts["failure_nodes"]
    assert counts["errors"] == counts["error_nodes"]


def test_junit_strict_turns_skips_into_failures() -> None:
    counts = junit_counts(render_junit([RESULTS[0], RESULTS[2]], strict=True))

    assert counts["tests"] == 2
    assert counts["failures"] == counts["failure_nodes"] == 1
    assert counts["skipped"] == counts["skipped_nodes"] == 0


def test_junit_names_each_check_and_carries_problems() -> None:
    suite = ET.fromstring(render_junit(RESULTS))
    by_name = {case.get("name"): case for case in suite.findall("testcase")}

    assert list(by_name) == ["pinned", "coverage", "gpu-goldens", "audit"]
    failure = by_name["coverage"].find("failure")
    assert failure is not None and failure.text == "serena/a.py 50%\nserena/b.py 60%"
    skipped = by_name["gpu-goldens"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no CUDA device"


def test_github_annotations_one_error_per_problem_of_failed_or_inconclusive() -> None:
    lines = github_annotations(RESULTS).splitlines()

    assert lines == [
        "::error title=serena-verify coverage::serena/a.py 50%",
        "::error title=serena-verify coverage::serena/b.py 60%",
        "::error title=serena-verify audit::no verdict",
    ]
    assert github_annotations([RESULTS[0], RESULTS[2]]) == ""


@pytest.mark.parametrize(
    ("fmt", "renderer"),
    [("terminal", render_terminal), ("json", render_json), ("markdown", render_markdown), ("junit", render_junit)],
)
def test_render_dispatches_to_each_format(fmt: str, renderer: object) -> None:
    assert render(RESULTS, fmt, strict=True) == renderer(RESULTS, strict=True)  # type: ignore[arg-type, operator]
