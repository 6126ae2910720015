"""The paths that differ only on a GPU, checked on a CPU: where the noise is drawn, where the model is placed and in
which dtype it loads. Every golden runs on the CPU, so without these a slip there would pass CI.

The device is faked: the generator and the pipeline loader are replaced by recorders, so the checks see what the
runtime asks for ("cuda", float16) without a CUDA device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from support import txt2img

from serena import processing_runner, shared
from serena.processing import process_images


class FakeGenerator:
    """Records the device a generator was asked for and the seed it got (a class, as torch.Generator is: torch's
    own modules use it in type annotations)."""

    made: ClassVar[list[FakeGenerator]] = []

    def __init__(self, device: str = "cpu") -> None:
        self.device, self.seed = str(device), None
        FakeGenerator.made.append(self)

    def manual_seed(self, seed: int) -> FakeGenerator:
        self.seed = seed
        return self


@dataclass
class Recorded:
    generators: list[FakeGenerator] = field(default_factory=list)
    model_devices: list[str] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)


def generation_on(monkeypatch: pytest.MonkeyPatch, device: str, randn_source: str, batch_size: int = 2) -> Recorded:
    """Run one txt2img with `shared.device` set to `device`, recording generators and the model's device instead of
    using them (the pipeline is not run: the batch returns blank images)."""
    import torch
    from PIL import Image

    recorded = Recorded()
    FakeGenerator.made = recorded.generators
    real_load = processing_runner.models.load_checkpoint

    def load_checkpoint(checkpoint: str, cmd_opts: Any, device: str, **kwargs: Any) -> Any:
        recorded.model_devices.append(device)
        return real_load(checkpoint, cmd_opts, "cpu", **kwargs)  # the real model, on the device there is

    def run_batch(self: Any, model: Any, batch: int, kwargs: dict[str, Any], variation: Any = None) -> list[Any]:
        return [Image.new("RGB", (self.width, self.height)) for _ in kwargs["generator"]]

    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    monkeypatch.setattr(processing_runner.models, "load_checkpoint", load_checkpoint)
    monkeypatch.setattr(type(txt2img()), "run_batch", run_batch)
    monkeypatch.setattr(shared, "device", device)
    processed = process_images(
        txt2img(seed=40, batch_size=batch_size, override_settings={"randn_source": randn_source})
    )
    recorded.infotexts = list(processed.infotexts)
    return recorded


def check_noise_placement(recorded: Recorded, device: str, randn_source: str) -> None:
    """The promise: randn_source CPU draws every image's noise on the CPU whatever the device (so a seed gives the
    same noise everywhere); GPU draws it on the model's device; each image gets its own seed; infotext says which."""
    expected = "cpu" if randn_source == "CPU" else device
    devices = [g.device for g in recorded.generators]
    assert devices == [expected] * len(devices) and devices, f"noise drawn on {devices}, expected {expected}"
    assert [g.seed for g in recorded.generators] == [40, 41]
    assert recorded.model_devices == [device]
    has_rng = [", RNG: GPU" in text for text in recorded.infotexts]
    assert has_rng == [randn_source == "GPU"] * len(recorded.infotexts)


@pytest.mark.parametrize(("device", "randn_source"), [("cuda", "CPU"), ("cuda", "GPU"), ("cpu", "CPU"), ("cpu", "GPU")])
def test_the_noise_is_drawn_where_randn_source_says(
    monkeypatch: pytest.MonkeyPatch, device: str, randn_source: str
) -> None:
    check_noise_placement(generation_on(monkeypatch, device, randn_source), device, randn_source)


def test_the_check_fails_when_the_noise_source_is_inverted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slip that swaps the two sources: every CPU golden still passes (cpu is cpu either way), this check does not."""
    monkeypatch.setattr(
        processing_runner, "noise_device", lambda randn_source, device: device if randn_source == "CPU" else "cpu"
    )
    recorded = generation_on(monkeypatch, "cuda", "CPU")
    with pytest.raises(AssertionError, match="noise drawn on \\['cuda', 'cuda'\\], expected cpu"):
        check_noise_placement(recorded, "cuda", "CPU")


@dataclass
class FakePipeline:
    """Stands in for a loaded diffusers pipeline: records where it was moved."""

    kwargs: dict[str, Any]
    moved_to: list[str] = field(default_factory=list)

    @property
    def components(self) -> dict[str, Any]:
        return {}

    @property
    def scheduler(self) -> Any:
        return type("Scheduler", (), {"config": {"prediction_type": "sample"}})()

    @property
    def unet(self) -> Any:
        return type("UNet", (), {"config": type("Config", (), {"in_channels": 4})()})()

    def to(self, device: str) -> FakePipeline:
        self.moved_to.append(device)
        return self

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize(("device", "precision", "dtype"), [("cuda", "fp16", "float16"), ("cuda", "fp32", "float32")])
def test_the_model_loads_in_the_precision_and_on_the_device_asked_for(
    monkeypatch: pytest.MonkeyPatch, device: str, precision: str, dtype: str
) -> None:
    import diffusers
    import torch

    from serena import models

    loaded: list[FakePipeline] = []

    def from_pretrained(path: Any, **kwargs: Any) -> FakePipeline:
        loaded.append(FakePipeline(kwargs))
        return loaded[-1]

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", from_pretrained)
    monkeypatch.setattr(diffusers, "StableDiffusionImg2ImgPipeline", lambda **components: FakePipeline(components))
    info = models.find_model("tiny-sd", shared.cmd_opts, listed_only=True)
    model = models.load_model(info, device, precision)
    (pipeline,) = loaded
    assert pipeline.kwargs["torch_dtype"] is getattr(torch, dtype)
    assert pipeline.kwargs["local_files_only"] is True  # offline on every device
    assert pipeline.moved_to == [device]
    assert (model.device, model.dtype_name) == (device, precision)
