"""The sampler-schedules snapshot: every sampler name's scheduler and schedule, and a slip in one is named."""

from __future__ import annotations

import dataclasses

import pytest
from support import REPO_ROOT

from harness.cli import main
from serena import samplers

# never run by a golden or a test: the shipped model predicts the clean sample, which these samplers refuse
NOISE_ONLY = ("DPM2", "DPM2 Karras", "DPM2 a", "DPM2 a Karras", "PLMS")


def test_every_sampler_name_is_recorded_with_its_schedule() -> None:
    text = (REPO_ROOT / "invariants" / "snapshots" / "sampler-schedules.txt").read_text(encoding="utf-8")
    records = [line.split(" | ") for line in text.splitlines() if not line.startswith("#") and " | " in line]
    recorded = {fields[0] for fields in records} - set(samplers.schedule_type_labels())
    assert recorded == set(samplers.sampler_names()) and len(recorded) == 19
    # and every sampler under every schedule type but Automatic: its sigmas, or why it is refused
    for label in samplers.schedule_type_labels()[1:]:
        assert {fields[1] for fields in records if fields[0] == label} == {"table", *samplers.sampler_names()}
    for name in samplers.sampler_names():
        assert f"{name} | epsilon | 20 steps | timesteps " in text
    for name in NOISE_ONLY:
        assert f"{name} | sample | refused by build_scheduler" in text
        assert f"{name} | epsilon | 10 steps | timesteps " in text
    assert "DPM2 Karras | epsilon | config use_karras_sigmas = True" in text


def test_karras_sigmas_off_for_one_sampler_fails_naming_only_that_sampler(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slipped = tuple(
        dataclasses.replace(info, config={}) if info.name == "DPM2 Karras" else info for info in samplers.SAMPLERS
    )
    monkeypatch.setattr(samplers, "SAMPLERS", slipped)
    monkeypatch.chdir(REPO_ROOT)
    assert main(["invariants", "snapshot", "sampler-schedules"]) == 1
    out = capsys.readouterr().out
    assert "sampler-schedules: differs" in out
    changed = [line for line in out.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert "-DPM2 Karras | epsilon | config use_karras_sigmas = True" in changed
    assert "+DPM2 Karras | epsilon | config use_karras_sigmas = False" in changed
    assert any(line.startswith("+DPM2 Karras | epsilon | 10 steps | sigmas ") for line in changed)
    # each changed line is that sampler's: its own records, or its line under a schedule type (which it now accepts)
    assert all("DPM2 Karras" in line[1:].split(" | ")[:2] for line in changed), changed


def _schedule_snapshot(tmp_path, recorded: str, current: str):
    from harness.invariants.snapshots import SCHEDULE_REL_TOL, Snapshot

    (tmp_path / "s.txt").write_text(recorded, encoding="utf-8")
    return Snapshot("s", "s.txt", lambda: current, rel_tol=SCHEDULE_REL_TOL)


RECORDED = "# 6 digits\nEuler | sample | 20 steps | sigmas 10.425 0.922953 0.0413145 0\nDDIM | sample | order 1\n"


def test_figures_another_cpu_moves_in_their_last_digit_match_and_the_file_is_left_alone(tmp_path) -> None:
    """On another CPU float32 exp and log differ in the last bits: 0.922953 becomes 0.922952. That matches, says so,
    and an update does not rewrite the committed text."""
    from harness.invariants.snapshots import compare_snapshots

    moved = RECORDED.replace("0.922953", "0.922952").replace("10.425", "10.4251")
    snapshot = _schedule_snapshot(tmp_path, RECORDED, moved)
    result = compare_snapshots([snapshot], tmp_path)[0]
    assert result.status == "match" and result.detail.startswith("2 numbers within relative tolerance 2e-05")
    assert compare_snapshots([snapshot], tmp_path, update=True)[0].status == "match"
    assert (tmp_path / "s.txt").read_text(encoding="utf-8") == RECORDED


def test_a_figure_beyond_the_tolerance_differs_and_the_diff_lists_only_what_moved_beyond_it(tmp_path) -> None:
    from harness.invariants.snapshots import compare_snapshots

    changed = RECORDED.replace("0.922953", "0.922952").replace("0.0413145 0", "0.0413 0").replace("order 1", "order 2")
    snapshot = _schedule_snapshot(tmp_path, RECORDED, changed + "PLMS | sample | order 1\n")
    result = compare_snapshots([snapshot], tmp_path)[0]
    assert result.status == "differs"
    lines = [line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert lines == [
        "-Euler | sample | 20 steps | sigmas 10.425 0.922953 0.0413145 0",
        "-DDIM | sample | order 1",
        "+Euler | sample | 20 steps | sigmas 10.425 0.922952 0.0413 0",
        "+DDIM | sample | order 2",
        "+PLMS | sample | order 1",
    ]
    # a figure at zero may move by the absolute tolerance (1e-06) and no more; a zero printed as -0 is that zero
    for last, status in ((" 1e-06\n", "match"), (" -0\n", "match"), (" 1e-05\n", "differs")):
        moved = _schedule_snapshot(tmp_path, RECORDED, RECORDED.replace(" 0\n", last))
        assert compare_snapshots([moved], tmp_path)[0].status == status
