"""Running a golden case through the real runtime (`process_images`), with default options and a trace."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CaseErrored
from harness.golden.cases import Case, init_image, mask_image
from harness.golden.measures import ImageMeasures, degenerate_reason, measure
from harness.golden.trace import Trace

PROMPT_STAGE = "prompt embeddings"

StepHook = Callable[[int, dict[str, Any]], None]


def latent_stage(step: int) -> str:
    return f"latents after step {step + 1}"


@dataclass
class CaseRun:
    """What one case produced: images, their measures and traces, and how long it took."""

    case: Case
    images: list[Any]
    measures: list[ImageMeasures]
    traces: list[Trace]
    infotexts: list[str]
    seconds: float
    degenerate: list[str | None] = field(default_factory=list)


@contextmanager
def isolated_runtime(device: str = "cpu", precision: str = "fp32", cases_dir: Path | None = None) -> Iterator[None]:
    """Default options and a throwaway data dir for the block, so goldens never depend on a user's config; the saved
    prompt styles are the cases' own (<cases_dir>/styles.csv) when `cases_dir` is given."""
    from serena import shared
    from serena.cmd_args import CmdOpts

    saved_data = dict(shared.opts.data)
    saved_cmd, saved_device = shared.cmd_opts, shared.device
    with tempfile.TemporaryDirectory(prefix="serena-golden-") as data_dir:
        shared.opts.reset()
        shared.cmd_opts = CmdOpts(
            data_dir=Path(data_dir),
            device=device,  # type: ignore[arg-type]
            precision=precision,  # type: ignore[arg-type]
            styles_file=cases_dir / STYLES_FILE if cases_dir is not None else None,
        )
        shared.device = device
        try:
            yield
        finally:
            shared.opts.data.update(saved_data)
            shared.cmd_opts, shared.device = saved_cmd, saved_device


STYLES_FILE = "styles.csv"  # the golden cases' saved prompt styles, beside their TOML files


def build_processing(case: Case, cases_dir: Path, overrides: dict[str, Any]) -> Any:
    """The case's processing object, with `overrides` applied over the case's own option overrides."""
    from serena.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img

    kwargs = case.processing_kwargs()
    kwargs["override_settings"] = {**kwargs["override_settings"], **overrides}
    if case.mode == "img2img":
        if case.mask_image is not None:
            kwargs["mask"] = mask_image(case, cases_dir)
        return StableDiffusionProcessingImg2Img(init_images=[init_image(case, cases_dir)], **kwargs)
    return StableDiffusionProcessingTxt2Img(**kwargs)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its first line, whitespace collapsed), or its type when it has none."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def run_case(
    case: Case,
    cases_dir: Path,
    *,
    threads: int,
    extra_overrides: dict[str, Any] | None = None,
    step_hook: StepHook | None = None,
) -> CaseRun:
    """Generate the case's images through `process_images`, tracing embeddings and latents per image."""
    from serena.processing import process_images

    p = build_processing(case, cases_dir, {"num_threads": threads, **(extra_overrides or {})})
    traces = [Trace() for _ in range(case.image_count)]

    def record(batch: int, step: int, timestep: int, tensors: dict[str, Any]) -> None:
        this_batch = traces[batch * case.batch_size : (batch + 1) * case.batch_size]
        if step == 0 and "prompt_embeds" in tensors:
            embeds = tensors["prompt_embeds"]
            guided = embeds.shape[0] == 2 * case.batch_size  # classifier-free guidance: [negative…, positive…]
            for index, trace in enumerate(this_batch):
                if guided:
                    import torch

                    trace.record(PROMPT_STAGE, torch.stack([embeds[index], embeds[case.batch_size + index]]))
                else:
                    trace.record(PROMPT_STAGE, embeds[index])
        if step_hook is not None:
            step_hook(step, tensors)
        for index, trace in enumerate(this_batch):
            trace.record(latent_stage(step), tensors["latents"][index])

    p.step_callback = record
    started = time.perf_counter()
    try:
        processed = process_images(p)
    except Exception as exc:
        # the case file was validated when it was loaded: a refusal or a crash here is the runtime's, not the file's
        raise CaseErrored(f"{type(exc).__name__}: {one_line(exc)}") from exc
    seconds = time.perf_counter() - started
    measures = [measure(image) for image in processed.images]
    return CaseRun(
        case=case,
        images=list(processed.images),
        measures=measures,
        traces=traces,
        infotexts=list(processed.infotexts),
        seconds=seconds,
        degenerate=[degenerate_reason(image, m) for image, m in zip(processed.images, measures, strict=True)],
    )
