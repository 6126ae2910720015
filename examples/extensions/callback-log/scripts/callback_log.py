"""Example extension: appends one JSON line per callback to <data-dir>/callback-log.jsonl and tags infotext.

Each line records the callback's name and what it could see: the prompt, the seeds, and the options as the
running generation sees them (the global options and the run's snapshot), which makes override isolation visible.
"""

from __future__ import annotations

import json
from pathlib import Path

from serena import script_callbacks, shared

WATCHED_OPTIONS = ("CLIP_stop_at_last_layers", "eta_ddim", "samples_format")


def _log(event: str, **fields: object) -> None:
    path = Path(shared.cmd_opts.data_dir) / "callback-log.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"callback": event, **fields}, default=str) + "\n")


def _options_seen(p) -> dict:
    seen = {"global": {key: shared.opts.data[key] for key in WATCHED_OPTIONS}}
    if p.opts_snapshot is not None:
        seen["snapshot"] = {key: p.opts_snapshot[key] for key in WATCHED_OPTIONS}
    return seen


def before_process(p) -> None:
    _log("before_process", prompt=p.prompt, options=_options_seen(p))


def process(p) -> None:
    p.extra_generation_params["Callback log"] = "on"
    _log(
        "process",
        prompt=p.prompt,
        seeds=p.all_seeds,
        options=_options_seen(p),
        has_runtime_context=p.runtime_context is not None,
    )


def postprocess(p, processed) -> None:
    _log("postprocess", images=len(processed.images), seeds=processed.all_seeds, options=_options_seen(p))


def before_image_saved(params) -> None:
    _log("before_image_saved", filename=params.filename, has_infotext="parameters" in params.pnginfo)


def image_saved(params) -> None:
    _log("image_saved", filename=params.filename)


def model_loaded(model) -> None:
    _log("model_loaded", name=model.name, hash=model.short_hash)


script_callbacks.on_before_process(before_process)
script_callbacks.on_process(process)
script_callbacks.on_postprocess(postprocess)
script_callbacks.on_before_image_saved(before_image_saved)
script_callbacks.on_image_saved(image_saved)
script_callbacks.on_model_loaded(model_loaded)
