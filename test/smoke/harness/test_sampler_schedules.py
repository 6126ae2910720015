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
