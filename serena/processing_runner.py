"""`ProcessingRunner`: the body of `process_images_inner`, split into phases a later refactor can replace one at a time.

A run is `prepare()` (options snapshot, model, RuntimeContext, sampler and scheduler, seeds and prompts, `process`
callbacks), then `execute()` (the batch loop), then `finalize()` (`Processed` and the `postprocess` callbacks).
`run()` calls the three in that order; each phase keeps what the next one needs on the runner. The hooks
`after_prepare`, `before_batch`, `after_batch` and `before_finalize` do nothing here: a subclass overrides them to
watch or steer a run without copying the phases. `process_images_inner(p)` is `ProcessingRunner(p).run()`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serena import models, samplers, script_callbacks, shared
from serena.errors import InputError
from serena.images import save_image
from serena.infotext import create_infotext
from serena.noise import Variation
from serena.option_checks import make_folder
from serena.processing import MAX_SEED, Processed, StableDiffusionProcessing, infotext_params
from serena.runtime_context import RuntimeContext

if TYPE_CHECKING:
    from serena.cmd_args import CmdOpts
    from serena.options_snapshot import OptionsSnapshot
    from serena.state import State


def noise_device(randn_source: str, device: str) -> str:
    """Where the initial noise is drawn: on the CPU for randn_source "CPU" (a seed then gives the same noise on every
    device), else on the device the model runs on."""
    return "cpu" if randn_source == "CPU" else device


class ProcessingRunner:
    """One run of `p` with the options as they are now; the phases fill the attributes below in turn."""

    # set by prepare()
    snapshot: OptionsSnapshot
    cmd_opts: CmdOpts
    model: models.SdModel
    clip_skip: int
    scheduler: Any

    def __init__(self, p: StableDiffusionProcessing) -> None:
        self.p = p
        # filled by execute()
        self.images: list[Any] = []
        self.infotexts: list[str] = []
        self.saved: list[str] = []
        self.interrupted = False

    def run(self) -> Processed:
        """The whole run: prepare, execute, finalize."""
        self.prepare()
        self.execute()
        return self.finalize()

    # -- phases ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Steps 1-4: snapshot, model and context, sampler and scheduler, seeds and prompts, `process` callbacks."""
        p = self.p
        # 1. freeze the options: from here on generation reads only the snapshot
        snapshot = self.snapshot = shared.opts.snapshot()
        p.opts_snapshot = snapshot
        cmd_opts = self.cmd_opts = shared.cmd_opts

        # 2. model and runtime context
        model = self.model = models.load_checkpoint(
            snapshot["sd_model_checkpoint"], cmd_opts, shared.device, failures=p.callback_errors
        )
        p.runtime_context = RuntimeContext(
            model=model, opts_snapshot=snapshot, device=shared.device, state=shared.state, cmd_opts=cmd_opts
        )
        sampler = samplers.find_sampler(p.sampler_name)
        p.sampler_name = sampler.name
        schedule = samplers.find_schedule_type(p.scheduler)
        p.scheduler = schedule.label
        clip_skip = self.clip_skip = snapshot["CLIP_stop_at_last_layers"]
        if clip_skip > model.text_encoder_layers:
            raise InputError(
                "CLIP_stop_at_last_layers",
                f"CLIP_stop_at_last_layers {clip_skip} exceeds the text encoder's {model.text_encoder_layers} layers",
            )
        self.scheduler = samplers.build_scheduler(sampler, model.scheduler_config, schedule)

        # 3. seeds, and prompts with their saved styles applied
        if p.seed == -1:
            p.seed = secrets.randbelow(MAX_SEED + 1)
        p.all_seeds = [p.seed + i for i in range(p.total_images)]
        if p.subseed == -1:
            # random only where it matters: without a variation strength the run stays a function of its inputs
            p.subseed = secrets.randbelow(MAX_SEED + 1) if p.subseed_strength > 0 else p.seed
        p.all_subseeds = [p.subseed + i for i in range(p.total_images)]
        prompt, negative_prompt = p.prompt, p.negative_prompt
        if p.styles:
            from serena import styles  # only a run with styles reads the styles file

            saved = styles.load_styles(cmd_opts.resolved_styles_file)
            prompt, negative_prompt = styles.apply_styles(prompt, negative_prompt, list(p.styles), saved)
        p.all_prompts = [prompt] * p.total_images
        p.all_negative_prompts = [negative_prompt] * p.total_images

        # 4. extensions see the run as it will happen
        p.callback_errors += script_callbacks.run_callbacks("process", p)
        self.after_prepare()

    def execute(self) -> None:
        """Step 5: generate batch by batch into images, infotexts, saved and interrupted; threads and state restored."""
        import torch

        p, snapshot = self.p, self.snapshot
        state = shared.state
        state.begin(p.mode, p.n_iter * p.jobs_per_batch)
        previous_threads = torch.get_num_threads()
        if snapshot["num_threads"] > 0:
            torch.set_num_threads(snapshot["num_threads"])
        generator_device = noise_device(snapshot["randn_source"], shared.device)
        try:
            for batch in range(p.n_iter):
                self.before_batch(batch)
                if state.interrupted:
                    self.interrupted = True
                    break
                batch_images = self._generate_batch(state, batch, generator_device)
                self.after_batch(batch, batch_images)
                if state.interrupted:
                    self.interrupted = True
                    break
        finally:
            torch.set_num_threads(previous_threads)
            state.end()

    def finalize(self) -> Processed:
        """Step 6: the result, then `postprocess` callbacks."""
        self.before_finalize()
        p, snapshot = self.p, self.snapshot
        processed = Processed(
            images=self.images,
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            seed=p.seed,
            all_seeds=list(p.all_seeds),
            subseed=p.subseed,
            all_subseeds=list(p.all_subseeds),
            subseed_strength=p.subseed_strength,
            seed_resize_from_w=p.seed_resize_from_w,
            seed_resize_from_h=p.seed_resize_from_h,
            all_prompts=list(p.all_prompts),
            all_negative_prompts=list(p.all_negative_prompts),
            infotexts=self.infotexts,
            width=p.width,
            height=p.height,
            steps=p.steps,
            cfg_scale=p.cfg_scale,
            sampler_name=p.sampler_name,
            scheduler=p.scheduler,
            styles=list(p.styles),
            batch_size=p.batch_size,
            n_iter=p.n_iter,
            denoising_strength=p.effective_denoising_strength,
            sd_model_name=self.model.name,
            sd_model_hash=self.model.short_hash,
            clip_skip=self.clip_skip,
            eta_ddim=p.effective_eta(snapshot),
            extra_generation_params=dict(p.extra_generation_params),
            job_timestamp=p.job_timestamp.strftime("%Y%m%d%H%M%S"),
            saved_paths=self.saved,
            skipped_override_keys=list(p.skipped_override_keys),
            interrupted=self.interrupted,
        )
        p.callback_errors += script_callbacks.run_callbacks("postprocess", p, processed)
        processed.callback_errors = [str(failure) for failure in p.callback_errors]
        return processed

    # -- hooks: no-ops here, for subclasses ----------------------------------------------------------
    def after_prepare(self) -> None:
        """Called at the end of prepare(), after the `process` callbacks; p's seeds and prompts are final."""

    def before_batch(self, batch: int) -> None:
        """Called as batch `batch` (0-based) is about to start, before the interrupt check: interrupting the state
        here stops the run before this batch is generated."""

    def after_batch(self, batch: int, images: list[Any]) -> None:
        """Called after batch `batch` is generated, its infotexts made and its images saved; `images` are that batch's
        images (also returned when cut short). Interrupting the state here stops the run before the next batch."""

    def before_finalize(self) -> None:
        """Called at the start of finalize(), before `Processed` is built; execute() has filled images and infotexts."""

    # -- one batch ---------------------------------------------------------------------------------
    def _generate_batch(self, state: State, batch: int, generator_device: str) -> list[Any]:
        """Generate batch `batch`, make each image's infotext and save the images that were not cut short."""
        import torch

        p, snapshot, cmd_opts, model = self.p, self.snapshot, self.cmd_opts, self.model
        state.next_job(p.steps)
        first = batch * p.batch_size
        seeds = p.all_seeds[first : first + p.batch_size]

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any], batch: int = batch) -> Any:
            state.set_step(step + 1)
            if p.step_callback is not None:
                p.step_callback(batch, step, int(timestep), tensors)
            if state.interrupted or state.skipped:
                pipe._interrupt = True  # diffusers' documented way to stop the denoising loop
            return tensors

        p.pipeline(model).scheduler = self.scheduler
        kwargs: dict[str, Any] = {
            "prompt": p.all_prompts[first : first + p.batch_size],
            "negative_prompt": p.all_negative_prompts[first : first + p.batch_size],
            "num_inference_steps": p.steps,
            "guidance_scale": p.cfg_scale,
            "width": p.width,
            "height": p.height,
            "generator": [torch.Generator(device=generator_device).manual_seed(seed) for seed in seeds],
            "eta": p.effective_eta(snapshot),
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents", "prompt_embeds"] if p.step_callback else ["latents"],
        }
        variation = Variation(
            seeds=tuple(seeds),
            subseeds=tuple(p.all_subseeds[first : first + p.batch_size]),
            strength=float(p.subseed_strength),
            resize_from=p.seed_resize_from,
            latent_scale=p.pipeline(model).vae_scale_factor,
            generator_device=generator_device,
        )
        batch_images = p.run_batch(model, batch, kwargs, variation)
        batch_cut_short = state.interrupted or state.skipped
        for offset, image in enumerate(batch_images):
            index = first + offset
            text = create_infotext(p.all_prompts[index], p.all_negative_prompts[index], infotext_params(p, index))
            self.images.append(image)
            self.infotexts.append(text)
            # an image whose denoising was cut short does not match its infotext: returned, never saved
            if snapshot["samples_save"] and not p.do_not_save_samples and not batch_cut_short:
                folder = Path(p.outpath_samples or (cmd_opts.data_dir / snapshot[p.outdir_option]))
                make_folder(folder, "outpath_samples" if p.outpath_samples else p.outdir_option)
                self.saved.append(str(save_image(image, folder, p, index, text, snapshot)))
        return batch_images
