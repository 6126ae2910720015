"""The golden cases made through the HTTP API and the `serena` CLI have the in-process run's pixels, and a request
field a front end drops fails the check, naming the front end and the case."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

import serena.cli
from harness import exit_codes
from harness.cli import main
from harness.config import HarnessConfig, load_config
from harness.golden.cases import Case, load_cases
from harness.golden.frontends import FrontendRefused, Via, cli_overrides, compare_frontends
from harness.golden.selection import Selection
from harness.outcome import Outcome
from serena.api_models import GenerationRequest

# a negative prompt, an option override, a shipped init image, and batches of a batch (n_iter 2, batch_size 2)
REPRESENTATIVE = ("t2i-dpmpp-2m-negative", "t2i-ddim-eta", "i2i-euler-a-harbour", "t2i-euler-a-batches")


def hermetic_config() -> HarnessConfig:
    """The committed cases and settings, without the caller's SERENA_* variables."""
    return load_config(REPO_ROOT, environ={})


@dataclass
class Invoked:
    code: int
    out: str
    err: str
    report: Path


def invoke(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> Invoked:
    """`serena-verify golden run --report-dir … ARGS`, in-process: its exit status, output and report folder."""
    capsys.readouterr()
    report = tmp_path / "report"
    code = main(["golden", "run", "--report-dir", str(report), *args])
    captured = capsys.readouterr()
    return Invoked(code, captured.out, captured.err, report)


def test_every_front_end_makes_the_in_process_pixels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("SERENA_") or name == "GITHUB_STEP_SUMMARY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(REPO_ROOT)
    selected = [argument for case_id in REPRESENTATIVE for argument in ("-k", case_id)]
    result = invoke(capsys, tmp_path, "--via", "all", *selected)
    assert result.code == exit_codes.OK, result.out + result.err
    assert "golden via api" in result.out and "golden via cli" in result.out
    document = json.loads((result.report / "frontends.json").read_text(encoding="utf-8"))
    assert "golden via api" in (result.report / "frontends.md").read_text(encoding="utf-8")
    checks = {check["check"]: check for check in document["results"]}
    assert set(checks) == {"golden via api", "golden via cli"}
    images = sum(case.image_count for case in load_cases(REPO_ROOT / "harness" / "cases") if case.id in REPRESENTATIVE)
    for check in checks.values():
        assert check["outcome"] == "passed", check
        assert check["figures"]["cases"] == check["figures"]["identical"] == len(REPRESENTATIVE)
        assert check["figures"]["images"] == images == 1 + 1 + 1 + 4
        assert {row["case"] for row in check["figures"]["rows"]} == set(REPRESENTATIVE)
        assert all(image["identical"] for row in check["figures"]["rows"] for image in row["images"])


def test_golden_run_via_all_makes_each_case_once_in_process_for_both_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The front ends are compared with the golden run's own in-process images, not with a second in-process run."""
    import harness.golden.frontends
    import harness.golden.session

    made: list[str] = []
    run_case = harness.golden.session.run_case

    def counted(case: Case, *args: Any, **kwargs: Any) -> Any:
        made.append(case.id)
        return run_case(case, *args, **kwargs)

    monkeypatch.setattr(harness.golden.session, "run_case", counted)
    monkeypatch.setattr(harness.golden.frontends, "run_case", counted)
    monkeypatch.chdir(REPO_ROOT)
    result = invoke(capsys, tmp_path, "--via", "all", "-k", "t2i-euler-a-batches", "-k", "t2i-ddim-eta")
    assert result.code == exit_codes.OK, result.out + result.err
    assert sorted(made) == ["t2i-ddim-eta", "t2i-euler-a-batches"]
    document = json.loads((result.report / "frontends.json").read_text(encoding="utf-8"))
    for check in document["results"]:
        assert [row["case"] for row in check["figures"]["rows"]] == ["t2i-ddim-eta", "t2i-euler-a-batches"]


def test_a_front_end_that_cannot_start_fails_its_check_and_the_golden_verdicts_stand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import contextlib

    import harness.golden.frontends

    @contextlib.contextmanager
    def no_server():
        raise OSError("address already in use")
        yield  # pragma: no cover - never reached

    monkeypatch.setattr(harness.golden.frontends, "api_frontend", no_server)
    monkeypatch.chdir(REPO_ROOT)
    result = invoke(capsys, tmp_path, "--via", "all", "-k", "t2i-ddim-eta")
    assert result.code == exit_codes.FAILED
    document = json.loads((result.report / "frontends.json").read_text(encoding="utf-8"))
    checks = {check["check"]: check for check in document["results"]}
    assert checks["golden via cli"]["outcome"] == "passed" and checks["golden via api"]["outcome"] == "failed"
    assert (
        "api: t2i-ddim-eta errored: the front end did not start: OSError: address already in use"
        in (checks["golden via api"]["problems"])
    )
    golden = json.loads((result.report / "golden.json").read_text(encoding="utf-8"))
    assert [case["verdict"] for case in golden["cases"]] in (["identical"], ["equivalent"])


def _api_dropping(field: str, key: str | None = None) -> Callable[..., Any]:
    """GenerationRequest.processing_args that forgets `field` (or only `key` of override_settings)."""
    original = GenerationRequest.processing_args

    def dropping(self: GenerationRequest) -> dict[str, Any]:
        args = original(self)
        if key is None:
            args.pop(field)
        else:
            args[field] = {k: v for k, v in args[field].items() if k != key}
        return args

    return dropping


def _cli_dropping(field: str, key: str | None = None) -> Callable[..., Any]:
    """serena.cli._processing_kwargs that forgets `field` (or only `key` of override_settings)."""
    original = serena.cli._processing_kwargs

    def dropping(**options: Any) -> dict[str, Any]:
        kwargs = original(**options)
        if key is None:
            kwargs.pop(field)
        else:
            kwargs[field] = {k: v for k, v in kwargs[field].items() if k != key}
        return kwargs

    return dropping


@pytest.mark.parametrize(
    ("via", "field", "key", "case_id"),
    [
        ("api", "negative_prompt", None, "t2i-dpmpp-2m-negative"),
        ("api", "override_settings", "eta_ddim", "t2i-ddim-eta"),
        ("cli", "cfg_scale", None, "t2i-dpmpp-2m-negative"),
        ("cli", "seed", None, "i2i-euler-a-harbour"),
    ],
)
def test_a_dropped_field_fails_naming_the_front_end_and_the_case(
    monkeypatch: pytest.MonkeyPatch, via: Via, field: str, key: str | None, case_id: str
) -> None:
    if via == "api":
        monkeypatch.setattr(GenerationRequest, "processing_args", _api_dropping(field, key))
    else:
        monkeypatch.setattr(serena.cli, "_processing_kwargs", _cli_dropping(field, key))
    report = compare_frontends(hermetic_config(), Selection((case_id,)), (via,))
    (result,) = report.check_results()
    assert result.check == f"golden via {via}"
    assert result.outcome is Outcome.FAILED
    assert result.figures["differs"] == 1
    assert result.problems[0].startswith(f"{via}: {case_id} image 0 differs from the in-process run (phash16 ")


def test_a_dropped_batch_count_is_reported_as_missing_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GenerationRequest, "processing_args", _api_dropping("n_iter"))
    report = compare_frontends(hermetic_config(), Selection(("t2i-euler-a-batches",)), ("api",))
    (result,) = report.check_results()
    assert result.outcome is Outcome.FAILED
    # the first batch is still right: only the count gives the dropped field away
    assert result.problems == ("api: t2i-euler-a-batches made 2 images, the in-process run 4",)


def test_what_the_cli_cannot_express_is_refused_not_run_differently(tmp_path: Path) -> None:
    (case,) = [case for case in load_cases(REPO_ROOT / "harness" / "cases") if case.id == "t2i-euler"]
    with pytest.raises(FrontendRefused, match=r"override_settings\.samples_format"):
        cli_overrides(case.with_changes(override_settings={"samples_format": "jpg"}), threads=2)
    with pytest.raises(FrontendRefused, match=r"override_settings\.disabled_extensions"):
        cli_overrides(case.with_changes(override_settings={"disabled_extensions": ["a,b"]}), threads=2)
    assert cli_overrides(case.with_changes(override_settings={"eta_ddim": 0.1}), threads=2) == [
        "--override",
        "eta_ddim=0.1",
        "--override",
        "num_threads=2",
    ]

    def jpg_case(cases_dir: Path) -> list[Case]:
        return [case.with_changes(override_settings={"samples_format": "jpg"})]

    report = compare_frontends(hermetic_config(), vias=("api", "cli"), case_source=jpg_case)
    api, cli = report.check_results()
    assert api.outcome is Outcome.PASSED  # the API returns PNGs whatever the saving options say
    assert cli.outcome is Outcome.INCONCLUSIVE
    assert cli.problems[0].startswith("cli: t2i-euler refused: cli cannot run field override_settings.samples_format")


def test_an_empty_selection_or_an_unknown_front_end_is_not_a_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    result = invoke(capsys, tmp_path, "-k", "no-such-case", "--via", "all")
    assert result.code == exit_codes.INCONCLUSIVE, result.out + result.err
    assert "golden via api" in result.out and "no case selected" in result.out
    refused = invoke(capsys, tmp_path, "--via", "web")
    assert refused.code == exit_codes.USAGE and "api, cli, all" in refused.err
