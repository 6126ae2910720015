"""Interrupt and skip are honoured between denoising steps; cut-short images are returned but never saved."""

from __future__ import annotations

from pathlib import Path

from support import txt2img

from serena import shared
from serena.processing import process_images


def test_interrupt_stops_after_the_current_step_and_skips_later_batches(data_dir: Path) -> None:
    steps_seen: list[tuple[int, int]] = []

    def interrupt_at_step_3(batch: int, step: int, timestep: int, tensors: dict) -> None:
        steps_seen.append((batch, step))
        if step == 2:
            shared.state.interrupt()

    p = txt2img(n_iter=3, do_not_save_samples=False, step_callback=interrupt_at_step_3)
    processed = process_images(p)
    assert processed.interrupted is True
    assert steps_seen == [(0, 0), (0, 1), (0, 2)]
    assert len(processed.images) == 1
    assert processed.saved_paths == []
    assert not (data_dir / "outputs").exists()


def test_skip_abandons_only_the_current_batch(data_dir: Path) -> None:
    def skip_first_batch(batch: int, step: int, timestep: int, tensors: dict) -> None:
        if batch == 0 and step == 1:
            shared.state.skip()

    processed = process_images(txt2img(n_iter=2, do_not_save_samples=False, step_callback=skip_first_batch))
    assert processed.interrupted is False
    assert len(processed.images) == 2
    assert len(processed.saved_paths) == 1 and processed.saved_paths[0].endswith("-2.png")  # seed 1 + 1


def test_state_reports_progress_during_the_run() -> None:
    progress: list[dict] = []

    def watch(batch: int, step: int, timestep: int, tensors: dict) -> None:
        progress.append(shared.state.dict())

    process_images(txt2img(n_iter=2, step_callback=watch))
    assert progress[0]["job"] == "txt2img" and progress[0]["job_count"] == 2
    assert progress[0]["sampling_steps"] == 10
    assert [entry["job_no"] for entry in progress] == [1] * 10 + [2] * 10
    assert 0 < progress[0]["progress"] < progress[-1]["progress"] <= 1.0
    assert shared.state.job == "" and shared.state.dict()["progress"] == 0.0


def test_a_new_run_clears_an_old_interrupt() -> None:
    shared.state.interrupt()
    processed = process_images(txt2img())
    assert processed.interrupted is False and len(processed.images) == 1
