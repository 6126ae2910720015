"""ProcessingRunner: the phases of process_images_inner give the same run, and its hooks are called where they say."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from support import gradient_image, img2img, pixels, txt2img

from serena import processing, script_callbacks, shared
from serena.processing import MAX_SEED, Processed, StableDiffusionProcessing, process_images
from serena.processing_runner import ProcessingRunner

FAST_STEPS = 3  # what is compared here is the run, not how good the image looks


def through(runner: type[ProcessingRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    """Route process_images (checks, lock, overrides) through `runner` instead of process_images_inner."""
    monkeypatch.setattr(processing, "process_images_inner", lambda p: runner(p).run())


def comparable(processed: Processed) -> dict[str, Any]:
    """Every field of the result but the run's start time, plus the image bytes."""
    data = processed.to_dict()
    del data["job_timestamp"]
    data["images"] = [pixels(image) for image in processed.images]
    return data


class Plain(ProcessingRunner):
    """A subclass that overrides nothing."""


class Recorder(ProcessingRunner):
    """Records every hook call, with what the run looks like at that moment, into `calls`."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    def after_prepare(self) -> None:
        self.calls.append(("after_prepare", list(self.p.all_seeds), self.p.opts_snapshot is self.snapshot))

    def before_batch(self, batch: int) -> None:
        self.calls.append(("before_batch", batch, len(self.images), shared.state.job))

    def after_batch(self, batch: int, images: list[Any]) -> None:
        self.calls.append(("after_batch", batch, [pixels(image) for image in images], len(self.images)))

    def before_finalize(self) -> None:
        self.calls.append(("before_finalize", len(self.images), len(self.infotexts), shared.state.job))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: ClassVar[list[tuple[Any, ...]]] = []
    monkeypatch.setattr(Recorder, "calls", calls)
    return calls


MAKERS: dict[str, Callable[..., StableDiffusionProcessing]] = {
    "txt2img": lambda **kw: txt2img(**kw),
    "img2img": lambda **kw: img2img(gradient_image(), **kw),
}


# -- the same run ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
def test_a_subclass_without_overrides_gives_the_same_run_as_process_images(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"batch_size": 2, "steps": FAST_STEPS, "seed": 11, "negative_prompt": "blurry"}
    plain = process_images(MAKERS[mode](**settings))
    through(Plain, monkeypatch)
    subclassed = process_images(MAKERS[mode](**settings))
    assert comparable(subclassed) == comparable(plain)
    assert subclassed.all_seeds == [11, 12] and len(subclassed.images) == 2
    assert pixels(subclassed.images[0]) != pixels(subclassed.images[1])  # two seeds, two images
    assert subclassed.infotexts[1].splitlines()[1] == "Negative prompt: blurry"
    assert "Seed: 12" in subclassed.infotexts[1] and f"Steps: {FAST_STEPS}" in subclassed.infotexts[1]
    assert (subclassed.denoising_strength is None) == (mode == "txt2img")


def test_the_phases_driven_one_by_one_give_the_same_processed_as_run(data_dir: Path) -> None:
    settings = {"n_iter": 2, "steps": FAST_STEPS, "do_not_save_samples": False}
    whole = ProcessingRunner(txt2img(**settings)).run()
    runner = ProcessingRunner(txt2img(**settings))
    runner.prepare()
    assert runner.p.all_seeds == [1, 2] and runner.images == [] and runner.p.runtime_context is not None
    runner.execute()
    assert len(runner.images) == 2 and len(runner.infotexts) == 2 and runner.interrupted is False
    assert shared.state.job == ""
    stepped = runner.finalize()
    assert stepped.images is runner.images and stepped.saved_paths is runner.saved
    # both runs saved into the same folder, numbered one after the other: the paths differ only by that number
    assert [Path(path).name for path in whole.saved_paths] == ["00000-1.png", "00001-2.png"]
    assert [Path(path).name for path in stepped.saved_paths] == ["00002-1.png", "00003-2.png"]
    whole_data, stepped_data = comparable(whole), comparable(stepped)
    del whole_data["saved_paths"], stepped_data["saved_paths"]
    assert stepped_data == whole_data


# -- the hooks ------------------------------------------------------------------------------------------------------
def test_the_hooks_are_no_ops_on_the_base_class() -> None:
    runner = ProcessingRunner(txt2img())
    assert runner.after_prepare() is None
    assert runner.before_batch(0) is None
    assert runner.after_batch(0, []) is None
    assert runner.before_finalize() is None
    assert (runner.images, runner.infotexts, runner.saved, runner.interrupted) == ([], [], [], False)


def test_the_hooks_are_called_in_order_with_each_batch(
    recorded: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    script_callbacks.on_process(lambda p: recorded.append(("process callback",)))
    script_callbacks.on_postprocess(
        lambda p, processed: recorded.append(("postprocess callback", len(processed.images)))
    )
    through(Recorder, monkeypatch)
    processed = process_images(txt2img(n_iter=2, batch_size=2, steps=FAST_STEPS, seed=5))
    batch_pixels = [pixels(image) for image in processed.images]
    assert recorded == [
        ("process callback",),
        ("after_prepare", [5, 6, 7, 8], True),
        ("before_batch", 0, 0, "txt2img"),
        ("after_batch", 0, batch_pixels[0:2], 2),
        ("before_batch", 1, 2, "txt2img"),
        ("after_batch", 1, batch_pixels[2:4], 4),
        ("before_finalize", 4, 4, ""),
        ("postprocess callback", 4),
    ]
    assert processed.interrupted is False and processed.all_seeds == [5, 6, 7, 8]


def test_interrupting_in_before_batch_stops_the_run_before_that_batch(
    recorded: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    class StopAtSecond(Recorder):
        def before_batch(self, batch: int) -> None:
            super().before_batch(batch)
            if batch == 1:
                shared.state.interrupt()

    through(StopAtSecond, monkeypatch)
    processed = process_images(txt2img(n_iter=3, steps=FAST_STEPS))
    assert [call[:2] for call in recorded] == [
        ("after_prepare", [1, 2, 3]),
        ("before_batch", 0),
        ("after_batch", 0),
        ("before_batch", 1),
        ("before_finalize", 1),
    ]
    assert processed.interrupted is True and len(processed.images) == 1 and len(processed.infotexts) == 1


def test_interrupting_in_after_batch_keeps_that_batch_and_starts_no_other(
    recorded: list[tuple[Any, ...]], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class StopAfterFirst(Recorder):
        def after_batch(self, batch: int, images: list[Any]) -> None:
            super().after_batch(batch, images)
            shared.state.interrupt()

    through(StopAfterFirst, monkeypatch)
    processed = process_images(txt2img(n_iter=3, steps=FAST_STEPS, do_not_save_samples=False))
    assert [call[:2] for call in recorded] == [
        ("after_prepare", [1, 2, 3]),
        ("before_batch", 0),
        ("after_batch", 0),
        ("before_finalize", 1),
    ]
    # the batch finished before the interrupt, so it was saved
    assert processed.interrupted is True and len(processed.images) == 1
    assert [Path(path).name for path in processed.saved_paths] == ["00000-1.png"]


def test_an_image_cut_short_by_the_step_callback_reaches_after_batch_but_is_never_saved(
    recorded: list[tuple[Any, ...]], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt_at_step_2(batch: int, step: int, timestep: int, tensors: dict) -> None:
        if step == 1:
            shared.state.interrupt()

    through(Recorder, monkeypatch)
    p = txt2img(n_iter=2, steps=FAST_STEPS, do_not_save_samples=False, step_callback=interrupt_at_step_2)
    processed = process_images(p)
    assert [call[:2] for call in recorded] == [
        ("after_prepare", [1, 2]),
        ("before_batch", 0),
        ("after_batch", 0),
        ("before_finalize", 1),
    ]
    assert processed.interrupted is True and len(processed.images) == 1
    assert processed.saved_paths == [] and not (data_dir / "outputs").exists()
    assert shared.state.sampling_step == 2  # stopped after the second of three steps


# -- failures: threads and state restored ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["before_batch", "after_batch", "step"])
def test_an_exception_in_execute_restores_the_threads_and_ends_the_state(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_threads: list[int] = []
    previous_threads = torch.get_num_threads()
    wanted = 1 if previous_threads != 1 else 2

    class Broken(ProcessingRunner):
        def before_batch(self, batch: int) -> None:
            seen_threads.append(torch.get_num_threads())
            if where == "before_batch" and batch == 1:
                raise RuntimeError(f"failed in {where}")

        def after_batch(self, batch: int, images: list[Any]) -> None:
            if where == "after_batch":
                raise RuntimeError(f"failed in {where}")

        def before_finalize(self) -> None:  # never reached: execute raised
            raise AssertionError("finalize after a failed execute")

    def explode(batch: int, step: int, timestep: int, tensors: dict) -> None:
        if where == "step":
            raise RuntimeError(f"failed in {where}")

    through(Broken, monkeypatch)
    p = txt2img(n_iter=2, steps=FAST_STEPS, override_settings={"num_threads": wanted}, step_callback=explode)
    with pytest.raises(RuntimeError, match=f"failed in {where}"):
        process_images(p)
    assert seen_threads[0] == wanted  # the run's threads were in force inside execute
    assert torch.get_num_threads() == previous_threads
    assert shared.state.job == "" and shared.state.job_count == 0 and shared.state.time_start is None
    assert shared.opts.num_threads == 0


def test_a_clip_skip_beyond_the_text_encoder_fails_in_prepare_before_the_process_callbacks(
    recorded: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    script_callbacks.on_process(lambda p: recorded.append(("process callback",)))
    through(Recorder, monkeypatch)
    p = txt2img(override_settings={"CLIP_stop_at_last_layers": 3})
    with pytest.raises(ValueError, match=r"^CLIP_stop_at_last_layers 3 exceeds the text encoder's 2 layers$"):
        process_images(p)
    assert recorded == [] and p.all_seeds == [] and p.opts_snapshot is not None


def test_seed_minus_one_is_drawn_once_in_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []

    def randbelow(limit: int) -> int:
        draws.append(limit)
        return 40

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    runner = ProcessingRunner(txt2img(seed=-1, batch_size=2, n_iter=2))
    runner.prepare()
    assert draws == [MAX_SEED + 1]
    assert runner.p.seed == 40 and runner.p.all_seeds == [40, 41, 42, 43]
    assert runner.p.all_prompts == ["a red fox in the snow"] * 4 and runner.p.all_negative_prompts == [""] * 4
