"""The seams in real runs: overrides applied and restored, the snapshot read, RuntimeContext attached, isolation."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from support import pixels, txt2img

from serena import script_callbacks, shared
from serena.options_snapshot import OptionsSnapshot
from serena.processing import process_images
from serena.runtime_context import RuntimeContext


def test_overrides_are_seen_during_the_run_and_restored_after() -> None:
    seen: dict[str, object] = {}

    def on_process(p) -> None:
        seen["global"] = shared.opts.CLIP_stop_at_last_layers
        seen["snapshot"] = p.opts_snapshot.CLIP_stop_at_last_layers

    script_callbacks.on_process(on_process)
    processed = process_images(txt2img(override_settings={"CLIP_stop_at_last_layers": 2}))
    assert seen == {"global": 2, "snapshot": 2}
    assert "Clip skip: 2" in processed.infotexts[0]
    assert shared.opts.CLIP_stop_at_last_layers == 1


@pytest.mark.parametrize("error", [RuntimeError("denoising failed"), KeyboardInterrupt()])
def test_overrides_are_restored_when_generation_raises(error: BaseException) -> None:
    def explode(batch: int, step: int, timestep: int, tensors: dict) -> None:
        if step == 2:
            raise error

    p = txt2img(override_settings={"eta_ddim": 0.5, "samples_format": "jpg"}, step_callback=explode)
    with pytest.raises(type(error)):
        process_images(p)
    assert (shared.opts.eta_ddim, shared.opts.samples_format) == (0.0, "png")
    assert shared.state.job == ""


def test_restore_afterwards_false_keeps_the_overrides() -> None:
    process_images(txt2img(override_settings={"eta_ddim": 0.5}, override_settings_restore_afterwards=False))
    assert shared.opts.eta_ddim == 0.5


def test_unknown_override_keys_are_skipped_and_listed() -> None:
    processed = process_images(txt2img(override_settings={"no_such_option": 1, "eta_ddim": 0.0}))
    assert processed.skipped_override_keys == ["no_such_option"]
    assert '"skipped_override_keys": ["no_such_option"]' in processed.js()


def test_generation_reads_the_snapshot_not_the_live_options() -> None:
    baseline = process_images(txt2img()).images[0]

    def change_live_options(p) -> None:
        shared.opts.set("eta_ddim", 1.0)  # after the snapshot: must not reach the sampler

    script_callbacks.on_process(change_live_options)
    during = process_images(txt2img())
    assert pixels(during.images[0]) == pixels(baseline)
    assert during.eta_ddim == 0.0 and "Eta DDIM" not in during.infotexts[0]


def test_runtime_context_is_attached_frozen_and_holds_the_snapshot() -> None:
    p = txt2img(override_settings={"eta_ddim": 0.25})
    process_images(p)
    context = p.runtime_context
    assert isinstance(context, RuntimeContext)
    assert context.opts_snapshot is p.opts_snapshot and isinstance(p.opts_snapshot, OptionsSnapshot)
    assert context.opts_snapshot.eta_ddim == 0.25
    assert context.model.name == "tiny-sd" and len(context.model.short_hash) == 10
    assert context.device == "cpu" and context.state is shared.state and context.cmd_opts is shared.cmd_opts
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.device = "cuda"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.opts_snapshot["eta_ddim"] = 0.5  # type: ignore[index]


def test_concurrent_runs_never_see_each_others_overrides() -> None:
    seen: dict[str, list[tuple[int, int]]] = {"one": [], "two": []}

    def record(batch: int, step: int, timestep: int, tensors: dict, *, name: str, p_ref: list) -> None:
        seen[name].append((shared.opts.CLIP_stop_at_last_layers, p_ref[0].opts_snapshot.CLIP_stop_at_last_layers))

    runs = {}
    for name, clip_skip in (("one", 1), ("two", 2)):
        ref: list = []
        p = txt2img(override_settings={"CLIP_stop_at_last_layers": clip_skip})
        p.step_callback = lambda b, s, t, x, name=name, ref=ref: record(b, s, t, x, name=name, p_ref=ref)
        ref.append(p)
        runs[name] = p
    results: dict[str, object] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, process_images(runs[n]))) for n in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(seen["one"]) == {(1, 1)} and set(seen["two"]) == {(2, 2)}
    assert len(seen["one"]) == len(seen["two"]) == 10
    alone = process_images(txt2img(override_settings={"CLIP_stop_at_last_layers": 2}))
    assert pixels(results["two"].images[0]) == pixels(alone.images[0])  # type: ignore[attr-defined]
    assert shared.opts.CLIP_stop_at_last_layers == 1


def test_random_seed_is_recorded_and_reproduces() -> None:
    first = process_images(txt2img(seed=-1, batch_size=2))
    assert 0 <= first.seed <= 2**32 - 1 and first.all_seeds == [first.seed, first.seed + 1]
    assert f"Seed: {first.seed}," in first.infotexts[0]
    again = process_images(txt2img(seed=first.seed, batch_size=2))
    assert [pixels(i) for i in again.images] == [pixels(i) for i in first.images]


def test_processed_js_is_json_with_the_run() -> None:
    import json

    processed = process_images(txt2img(seed=7, batch_size=2, negative_prompt="dark"))
    data = json.loads(processed.js())
    assert data["all_seeds"] == [7, 8] and data["seed"] == 7
    assert data["all_prompts"] == ["a red fox in the snow"] * 2
    assert data["negative_prompt"] == "dark" and data["sampler_name"] == "DDIM"
    assert data["sd_model_name"] == "tiny-sd" and data["infotexts"] == processed.infotexts
    assert processed.info == processed.infotexts[0]
    assert processed.infotexts[0].splitlines()[1] == "Negative prompt: dark"


def test_processed_js_matches_its_json_schema() -> None:
    import json

    import jsonschema_rs

    from serena.processing import Processed

    processed = process_images(txt2img(seed=3, batch_size=2, override_settings={"no_such_option": 1}))
    schema = Processed.json_schema()
    document = json.loads(processed.js())
    jsonschema_rs.validate(schema, document)
    assert set(document) == set(schema["properties"])
    document["unexpected"] = 1
    assert not jsonschema_rs.is_valid(schema, document)
