"""The `serena` command line: wires arguments to the runtime, prints results, and maps errors to exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from serena import cmd_args, shared
from serena.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, InputError, SerenaError

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 generation or model loading failed; 2 bad input (unknown option, bad value, "
    "missing or corrupt file, malformed config); 130 interrupted."
)

app = typer.Typer(
    name="serena",
    help="Serena: txt2img and img2img on a local Stable-Diffusion model, offline.\n\n" + EXIT_CODES_HELP,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
options_app = typer.Typer(
    help="Show and change global options (saved in <data-dir>/config.json).", no_args_is_help=True
)
app.add_typer(options_app, name="options")


# -- start-up options --------------------------------------------------------------------------
@app.callback()
def root(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Model: a listed name or a diffusers folder path.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 or fp16 (fp16 needs cuda).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder for config.json, outputs, models, extensions.")] = None,
    extensions_dir: Annotated[
        Path | None, typer.Option(help="Extensions folder (default <data-dir>/extensions).")
    ] = None,
    styles_file: Annotated[
        Path | None,
        typer.Option(help="Saved prompt styles, a CSV of name,prompt,negative_prompt (default <data-dir>/styles.csv)."),
    ] = None,
    listen: Annotated[bool, typer.Option(help="Serve the API on all interfaces instead of 127.0.0.1.")] = False,
    port: Annotated[int | None, typer.Option(help="API port.")] = None,
) -> None:
    """Start-up options apply to every command; SERENA_MODEL, SERENA_DEVICE, SERENA_PRECISION, SERENA_DATA_DIR,
    SERENA_EXTENSIONS_DIR and SERENA_STYLES_FILE set their defaults."""
    ctx.obj = cmd_args.from_environment().with_values(
        model=model,
        device=device,
        precision=precision,
        data_dir=data_dir,
        extensions_dir=extensions_dir,
        styles_file=styles_file,
        listen=listen or None,
        port=port,
    )


def _start(ctx: typer.Context, *, load_extensions: bool) -> None:
    from serena.initialize import initialize

    initialize(ctx.obj, load_extensions=load_extensions)


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expects KEY=VALUE, got {pair!r}", param_hint="--override")
        # unknown keys pass through: the run skips them with a warning and lists them
        overrides[key] = shared.opts.parse_value(key, text) if key in shared.opts else text
    return overrides


def _processing_kwargs(
    *, sampler: str, override: list[str] | None, out: Path | None, no_save: bool, **fields: Any
) -> dict[str, Any]:
    """StableDiffusionProcessing keyword arguments from the options txt2img and img2img share: the options named
    like processing fields pass through, the four below are translated."""
    return {
        **fields,
        "sampler_name": sampler,
        "override_settings": _parse_overrides(override or []),
        "do_not_save_samples": no_save,
        "outpath_samples": str(out) if out is not None else None,
    }


def _report(processed: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(processed.js())
        return
    for path in processed.saved_paths:
        typer.echo(path)
    if not processed.saved_paths:
        typer.echo("serena: note: no files written (samples_save is off or --no-save was given)", err=True)
    if processed.interrupted:
        typer.echo("serena: note: interrupted before every image was finished", err=True)


# -- generation --------------------------------------------------------------------------------
PromptOpt = Annotated[str, typer.Option("--prompt", "-p", help="What to generate.")]
NegativeOpt = Annotated[str, typer.Option("--negative-prompt", "-n", help="What to avoid.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the first image; image i gets seed+i; -1 picks one at random.")]
StepsOpt = Annotated[int, typer.Option(help="Denoising steps.")]
SamplerOpt = Annotated[str, typer.Option(help="Sampler name (see `serena samplers`).")]
SchedulerOpt = Annotated[
    str,
    typer.Option(help="Schedule type: Automatic (the sampler's own), Uniform, Karras, Exponential, SGM Uniform, Beta."),
]
SubseedOpt = Annotated[
    int, typer.Option(help="Variation seed of the first image (image i gets subseed+i); -1: random.")
]
SubseedStrengthOpt = Annotated[
    float, typer.Option(help="How far each image's noise moves towards its variation seed's: 0 (none) to 1.")
]
ResizeFromWOpt = Annotated[int, typer.Option(help="Draw the noise at this width and centre it (0: off).")]
ResizeFromHOpt = Annotated[int, typer.Option(help="Draw the noise at this height and centre it (0: off).")]
StyleOpt = Annotated[
    list[str] | None, typer.Option("--style", help="Saved prompt style to apply, by name (repeatable, in order).")
]
CfgOpt = Annotated[float, typer.Option(help="Classifier-free guidance scale.")]
WidthOpt = Annotated[int, typer.Option(help="Width in pixels, a multiple of 8.")]
HeightOpt = Annotated[int, typer.Option(help="Height in pixels, a multiple of 8.")]
BatchOpt = Annotated[int, typer.Option(help="Images per batch.")]
IterOpt = Annotated[int, typer.Option(help="Number of batches.")]
OverrideOpt = Annotated[
    list[str] | None, typer.Option("--override", help="KEY=VALUE option for this run only (repeatable).")
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Folder for the images (default: the outdir option).")]
NoSaveOpt = Annotated[bool, typer.Option("--no-save", help="Generate without writing files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of paths.")]


@app.command()
def txt2img(
    ctx: typer.Context,
    prompt: PromptOpt = "",
    negative_prompt: NegativeOpt = "",
    seed: SeedOpt = -1,
    steps: StepsOpt = 20,
    sampler: SamplerOpt = "Euler a",
    scheduler: SchedulerOpt = "Automatic",
    cfg_scale: CfgOpt = 7.0,
    width: WidthOpt = 512,
    height: HeightOpt = 512,
    batch_size: BatchOpt = 1,
    n_iter: IterOpt = 1,
    subseed: SubseedOpt = -1,
    subseed_strength: SubseedStrengthOpt = 0.0,
    seed_resize_from_w: ResizeFromWOpt = 0,
    seed_resize_from_h: ResizeFromHOpt = 0,
    style: StyleOpt = None,
    enable_hr: Annotated[
        bool, typer.Option("--enable-hr/--no-enable-hr", help="Hires fix: upscale, then denoise again larger.")
    ] = False,
    hr_scale: Annotated[float, typer.Option("--hr-scale", help="Hires size as a multiple of the size.")] = 2.0,
    hr_resize_x: Annotated[int, typer.Option("--hr-resize-x", help="Hires width in pixels (0: from --hr-scale).")] = 0,
    hr_resize_y: Annotated[int, typer.Option("--hr-resize-y", help="Hires height in pixels (0: from --hr-scale).")] = 0,
    hr_upscaler: Annotated[
        str | None, typer.Option("--hr-upscaler", help="Latent upscale mode or image upscaler (default Latent).")
    ] = None,
    hr_second_pass_steps: Annotated[
        int, typer.Option("--hr-second-pass-steps", help="Hires pass steps (0: as --steps).")
    ] = 0,
    hr_sampler_name: Annotated[
        str | None, typer.Option("--hr-sampler-name", help="Hires pass sampler (default: the same).")
    ] = None,
    hr_scheduler: Annotated[
        str | None, typer.Option("--hr-scheduler", help="Hires pass schedule type (default: the same).")
    ] = None,
    hr_prompt: Annotated[str, typer.Option("--hr-prompt", help="Hires pass prompt (default: the same).")] = "",
    hr_negative_prompt: Annotated[
        str, typer.Option("--hr-negative-prompt", help="Hires pass negative prompt (default: the same).")
    ] = "",
    denoising_strength: Annotated[
        float | None, typer.Option(help="Hires pass denoising strength, (0, 1] (default 0.75).")
    ] = None,
    override: OverrideOpt = None,
    out: OutOpt = None,
    no_save: NoSaveOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate images from a prompt; prints the path of each PNG written."""
    _start(ctx, load_extensions=True)
    from serena.processing import StableDiffusionProcessingTxt2Img, process_images

    p = StableDiffusionProcessingTxt2Img(
        enable_hr=enable_hr,
        hr_scale=hr_scale,
        hr_resize_x=hr_resize_x,
        hr_resize_y=hr_resize_y,
        hr_upscaler=hr_upscaler,
        hr_second_pass_steps=hr_second_pass_steps,
        hr_sampler_name=hr_sampler_name,
        hr_scheduler=hr_scheduler,
        hr_prompt=hr_prompt,
        hr_negative_prompt=hr_negative_prompt,
        denoising_strength=denoising_strength,
        **_processing_kwargs(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            sampler=sampler,
            scheduler=scheduler,
            cfg_scale=cfg_scale,
            width=width,
            height=height,
            batch_size=batch_size,
            n_iter=n_iter,
            subseed=subseed,
            subseed_strength=subseed_strength,
            seed_resize_from_w=seed_resize_from_w,
            seed_resize_from_h=seed_resize_from_h,
            styles=list(style or []),
            override=override,
            out=out,
            no_save=no_save,
        ),
    )
    _report(process_images(p), as_json)


@app.command()
def img2img(
    ctx: typer.Context,
    init: Annotated[list[Path], typer.Option("--init", help="Initial image (repeat for several).")],
    prompt: PromptOpt = "",
    negative_prompt: NegativeOpt = "",
    denoising_strength: Annotated[float, typer.Option(help="How far to move from the initial image, (0, 1].")] = 0.75,
    resize_mode: Annotated[
        int,
        typer.Option(
            help="Fitting init images of another size: 0 just resize, 1 crop and resize, 2 resize and fill, "
            "3 just resize (latent upscale)."
        ),
    ] = 0,
    mask: Annotated[
        Path | None,
        typer.Option(
            "--mask",
            help="Inpainting: white (or, with transparency, opaque) where the init image is repainted; "
            "the init image's size.",
        ),
    ] = None,
    mask_blur: Annotated[
        int | None, typer.Option("--mask-blur", help="Mask blur along x and y (sets both of the two below).")
    ] = None,
    mask_blur_x: Annotated[int, typer.Option("--mask-blur-x", help="Mask blur (Gaussian sigma) along x.")] = 4,
    mask_blur_y: Annotated[int, typer.Option("--mask-blur-y", help="Mask blur (Gaussian sigma) along y.")] = 4,
    inpainting_fill: Annotated[
        int,
        typer.Option("--inpainting-fill", help="Masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing."),
    ] = 0,
    inpaint_full_res: Annotated[
        bool,
        typer.Option(
            "--inpaint-full-res/--no-inpaint-full-res",
            help="Inpaint area: only the masked box, denoised at the full size (else the whole picture).",
        ),
    ] = True,
    inpaint_full_res_padding: Annotated[
        int, typer.Option("--inpaint-full-res-padding", help="Pixels added around the masked box.")
    ] = 0,
    inpainting_mask_invert: Annotated[
        int, typer.Option("--inpainting-mask-invert", help="Mask mode: 0 inpaint masked, 1 inpaint not masked.")
    ] = 0,
    mask_round: Annotated[
        bool,
        typer.Option(
            "--mask-round/--no-mask-round", help="Threshold a transparent mask's alpha, round the latent mask."
        ),
    ] = True,
    seed: SeedOpt = -1,
    steps: StepsOpt = 20,
    sampler: SamplerOpt = "Euler a",
    scheduler: SchedulerOpt = "Automatic",
    cfg_scale: CfgOpt = 7.0,
    width: WidthOpt = 512,
    height: HeightOpt = 512,
    batch_size: BatchOpt = 1,
    n_iter: IterOpt = 1,
    subseed: SubseedOpt = -1,
    subseed_strength: SubseedStrengthOpt = 0.0,
    seed_resize_from_w: ResizeFromWOpt = 0,
    seed_resize_from_h: ResizeFromHOpt = 0,
    style: StyleOpt = None,
    override: OverrideOpt = None,
    out: OutOpt = None,
    no_save: NoSaveOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Transform initial images guided by a prompt (with --mask, repaint part of them); prints each PNG's path."""
    _start(ctx, load_extensions=True)
    from serena.images import load_image
    from serena.processing import StableDiffusionProcessingImg2Img, process_images

    # init images are read before the overrides are parsed, so a bad file is the error reported first
    init_images = [load_image(path) for path in init]
    p = StableDiffusionProcessingImg2Img(
        init_images=init_images,
        denoising_strength=denoising_strength,
        resize_mode=resize_mode,
        mask=None if mask is None else load_image(mask, mask=True),
        mask_blur=mask_blur,
        mask_blur_x=mask_blur_x,
        mask_blur_y=mask_blur_y,
        inpainting_fill=inpainting_fill,
        inpaint_full_res=inpaint_full_res,
        inpaint_full_res_padding=inpaint_full_res_padding,
        inpainting_mask_invert=inpainting_mask_invert,
        mask_round=mask_round,
        **_processing_kwargs(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            sampler=sampler,
            scheduler=scheduler,
            cfg_scale=cfg_scale,
            width=width,
            height=height,
            batch_size=batch_size,
            n_iter=n_iter,
            subseed=subseed,
            subseed_strength=subseed_strength,
            seed_resize_from_w=seed_resize_from_w,
            seed_resize_from_h=seed_resize_from_h,
            styles=list(style or []),
            override=override,
            out=out,
            no_save=no_save,
        ),
    )
    _report(process_images(p), as_json)


# -- catalogue ---------------------------------------------------------------------------------
@app.command("samplers")
def samplers_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List sampler names and whether the current model supports each."""
    _start(ctx, load_extensions=False)
    from serena import models, samplers

    cmd = shared.cmd_opts
    info = models.find_model(shared.opts.sd_model_checkpoint, cmd)
    prediction = models.read_prediction_type(info.path)
    rows = [
        {"name": s.name, "scheduler": s.scheduler, "aliases": list(s.aliases), "supported": s.supports(prediction)}
        for s in samplers.SAMPLERS
    ]
    if as_json:
        typer.echo(json.dumps({"model": info.name, "prediction_type": prediction, "samplers": rows}, indent=2))
        return
    for row in rows:
        mark = "" if row["supported"] else f"  (not for {prediction}-prediction models)"
        typer.echo(f"{row['name']}{mark}")


@app.command("models")
def models_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the models Serena can load: the shipped tiny model, <data-dir>/models/*, and --model."""
    _start(ctx, load_extensions=False)
    from serena import models

    rows = [
        {"name": info.name, "hash": models.short_hash(sha256), "sha256": sha256, "path": str(info.path)}
        for info, sha256 in models.list_models_with_hashes(shared.cmd_opts)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['name']} [{row['hash']}]  {row['path']}")


# -- HTTP API ----------------------------------------------------------------------------------
def _limit(env: str, default: str) -> Any:
    return typer.Option(help=f"Cap per request ({env}; default {default}).")


@app.command("api")
def api_command(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1, or 0.0.0.0 with --listen).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port (also accepted before the command).")] = None,
    listen: Annotated[bool, typer.Option(help="Serve on all interfaces (also accepted before the command).")] = False,
    compat: Annotated[
        str,
        typer.Option(
            help="strict: a web-UI field Serena does not implement, or an option it does not have, is refused (422); "
            "lenient: it is ignored, logged and reported in info."
        ),
    ] = "strict",
    max_width: Annotated[int | None, _limit("SERENA_API_MAX_WIDTH", "2048")] = None,
    max_height: Annotated[int | None, _limit("SERENA_API_MAX_HEIGHT", "2048")] = None,
    max_steps: Annotated[int | None, _limit("SERENA_API_MAX_STEPS", "150")] = None,
    max_batch_size: Annotated[int | None, _limit("SERENA_API_MAX_BATCH_SIZE", "8")] = None,
    max_n_iter: Annotated[int | None, _limit("SERENA_API_MAX_N_ITER", "16")] = None,
    max_payload_bytes: Annotated[
        int | None, typer.Option(help="Base64 image data per request (SERENA_API_MAX_PAYLOAD_BYTES; default 16 MiB).")
    ] = None,
) -> None:
    """Serve the web-UI compatible HTTP API (/sdapi/v1/...) on --port until Ctrl-C."""
    if compat not in ("strict", "lenient"):
        raise typer.BadParameter(f"must be strict or lenient, got {compat!r}", param_hint="--compat")
    _start(ctx, load_extensions=True)
    from serena.api import ApiLimits, serve

    limits = ApiLimits.from_environment().with_values(
        max_width=max_width,
        max_height=max_height,
        max_steps=max_steps,
        max_batch_size=max_batch_size,
        max_n_iter=max_n_iter,
        max_payload_bytes=max_payload_bytes,
    )
    cmd = shared.cmd_opts
    serve(host or ("0.0.0.0" if cmd.listen or listen else "127.0.0.1"), port or cmd.port, limits, compat=compat)


# -- options -----------------------------------------------------------------------------------
def _show(value: Any) -> str:
    return json.dumps(value)  # a list option's tuple comes out as a JSON array


@options_app.command("list")
def options_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every option with its value, type, default and section."""
    _start(ctx, load_extensions=False)
    opts = shared.opts
    rows = [
        {
            "key": key,
            "value": opts.data[key],  # tuples (list options) are written as JSON arrays
            "default": info.default,
            "type": info.type,
            "section": info.section,
            "label": info.label,
            **({"choices": list(info.choices)} if info.choices else {}),
        }
        for key, info in opts.data_labels.items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['key']} = {_show(row['value'])}  [{row['section']}, {row['type']}] {row['label']}")


@options_app.command("get")
def options_get(ctx: typer.Context, key: Annotated[str, typer.Argument(help="Option key.")]) -> None:
    """Print one option's value as JSON."""
    _start(ctx, load_extensions=False)
    shared.opts.info(key)
    typer.echo(_show(shared.opts.data[key]))


@options_app.command("set")
def options_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Option key.")],
    value: Annotated[str, typer.Argument(help="New value (true/false, number, text, or a,b,c for lists).")],
) -> None:
    """Set one option and save it to <data-dir>/config.json (atomically)."""
    _start(ctx, load_extensions=False)
    from serena.option_checks import check_choice

    parsed = shared.opts.parse_value(key, value)
    check_choice(key, parsed, shared.cmd_opts)  # a model that is not there or a folder a file is in the way of
    shared.opts.set(key, parsed)
    # only this key is written: values from --model or SERENA_* never leak into the config file
    shared.opts.save_keys(shared.cmd_opts.config_path, [key])
    typer.echo(f"{key} = {_show(shared.opts.data[key])}")


# -- entry point -------------------------------------------------------------------------------
class _OneLineWarnings(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        return f"serena: {level}: {record.getMessage()}"


def _configure_logging() -> None:
    logger = logging.getLogger("serena")
    if not any(getattr(h, "_serena_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLineWarnings())
        handler._serena_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _fail(message: str, code: int) -> int:
    text = " ".join(str(message).split("\n")).strip()
    # undecodable command-line bytes come back as lone surrogates: shown escaped, never a crash while reporting
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    print(f"serena: error: {text}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure ends as one line on stderr and a documented exit code."""
    _configure_logging()
    try:
        # typer turns Ctrl-C into a returned 130 and, outside standalone mode, raises its usage errors to us
        result = app(args=argv, prog_name="serena", standalone_mode=False)
    except typer.TyperException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED)
    except InputError as exc:  # bad input: the message already names the argument
        return _fail(str(exc), EXIT_USAGE)
    except SerenaError as exc:
        return _fail(f"[{exc.slug}] {exc}", exc.exit_code)
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("SERENA_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (set SERENA_DEBUG=1 for a traceback)", EXIT_FAILED)
    if result == EXIT_INTERRUPTED:
        return _fail("interrupted", EXIT_INTERRUPTED)
    return result if isinstance(result, int) else EXIT_OK
