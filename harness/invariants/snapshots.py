"""Snapshot verifiers: committed texts of public surfaces, compared with a readable diff, rewritten only on --update."""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serena.samplers import SamplerInfo

HELP_COLUMNS = "100"


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def processed_schema() -> str:
    from serena.processing import Processed

    return _json(Processed.json_schema())


def cli_help() -> str:
    """`serena --help` and every subcommand's help, at a fixed width."""
    from typer.testing import CliRunner

    from serena.cli import app

    runner = CliRunner()
    pages = [[], ["txt2img"], ["img2img"], ["samplers"], ["models"], ["options"], ["options", "list"]]
    pages += [["options", "get"], ["options", "set"]]
    if any(info.name == "api" for info in app.registered_commands):
        pages.append(["api"])
    out = []
    for args in pages:
        result = runner.invoke(app, [*args, "--help"], prog_name="serena", env={"COLUMNS": HELP_COLUMNS})
        out.append(f"$ serena {' '.join([*args, '--help'])}\n{result.output.rstrip()}\n")
    return "\n".join(out)


def _fake_run(**overrides: Any) -> Any:
    """A processing object as a run leaves it, without generating: for the text formats only."""
    from serena.options import Options
    from serena.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img
    from serena.runtime_context import RuntimeContext

    options = Options()
    for key, value in overrides.pop("options", {}).items():
        options.set(key, value)
    cls = StableDiffusionProcessingImg2Img if overrides.pop("img2img", False) else StableDiffusionProcessingTxt2Img
    p = cls(**overrides)
    p.opts_snapshot = options.snapshot()
    model = SimpleNamespace(name="tiny-sd", short_hash="0123456789")
    p.runtime_context = RuntimeContext(model, p.opts_snapshot, "cpu", None, None)  # type: ignore[arg-type]
    p.all_seeds = [p.seed + i for i in range(p.total_images)]
    p.all_prompts = [p.prompt] * p.total_images
    p.all_negative_prompts = [p.negative_prompt] * p.total_images
    p.job_timestamp = datetime(2026, 1, 2, 3, 4, 5)
    return p


def infotext_format() -> str:
    from serena.infotext import create_infotext
    from serena.processing import infotext_params

    runs = {
        "txt2img, defaults": _fake_run(prompt="a red fox", seed=1, steps=10, sampler_name="DDIM", width=64, height=64),
        "img2img, batch, negative prompt, clip skip, eta, extension field": _fake_run(
            img2img=True,
            prompt='a "quoted", comma: prompt',
            negative_prompt="blurry, dark",
            seed=7,
            steps=12,
            sampler_name="DDIM",
            cfg_scale=6.5,
            width=96,
            height=64,
            batch_size=2,
            denoising_strength=0.6,
            extra_generation_params={"Extension note": "a, b"},
            options={"CLIP_stop_at_last_layers": 2, "eta_ddim": 0.3, "randn_source": "GPU"},
        ),
    }
    out = []
    for title, p in runs.items():
        for index in range(p.total_images):
            text = create_infotext(p.all_prompts[index], p.all_negative_prompts[index], infotext_params(p, index))
            out.append(f"--- {title}, image {index}\n{text}\n")
    return "\n".join(out)


def file_naming() -> str:
    from serena.filenames import FILENAME_TOKENS, expand_pattern
    from serena.images import filename_values
    from serena.options import OPTION_TEMPLATES

    p = _fake_run(prompt='A fox: "red"/orange?', seed=42, steps=10, sampler_name="Euler a", width=64, height=96)
    p.batch_size = 2
    p.all_seeds = [42, 43]
    p.all_prompts = [p.prompt] * 2
    p.all_negative_prompts = ["", ""]
    lines = ["# layout: <data-dir>/<outdir option>/<number>-<pattern>.<samples_format>"]
    for key in ("outdir_txt2img", "outdir_img2img", "samples_filename_pattern", "save_images_add_number"):
        lines.append(f"default {key} = {OPTION_TEMPLATES[key].default!r}")
    lines.append("numbered files: 5-digit running number, one more than the highest in the folder, then '-'")
    lines.append("a taken name gets -1, -2, … before the extension; names are cut to 247 UTF-8 bytes")
    lines.append("# tokens")
    lines += [f"[{token}]: {meaning}" for token, meaning in FILENAME_TOKENS.items()]
    lines.append("# examples (image 1 of a batch of 2)")
    for pattern in (
        "[seed]",
        "[seed]-[prompt_words]",
        "[prompt]",
        "[date]-[model_name]-[model_hash]",
        "[sampler]-[steps]-[cfg]",
        "[width]x[height]-[batch_number]-[generation_number]",
        "[datetime]",
    ):
        lines.append(f"{pattern} -> {expand_pattern(pattern, filename_values(p, 1))}")
    return "\n".join(lines) + "\n"


def extension_callbacks() -> str:
    from serena import script_callbacks

    lines = [f"callbacks: {', '.join(script_callbacks.CALLBACK_NAMES)}"]
    for name in script_callbacks.CALLBACK_NAMES:
        register = getattr(script_callbacks, f"on_{name}")
        doc = (register.__doc__ or "").strip().splitlines()[0]
        lines.append(f"on_{name}{inspect.signature(register)}  # {doc}")
    lines.append(
        "ImageSaveParams: " + ", ".join(f"{f.name}: {f.type}" for f in fields(script_callbacks.ImageSaveParams))
    )
    failure = script_callbacks.CallbackFailure("my-extension", "process", "ValueError: bad")
    lines.append(f"failure report: {failure}")
    return "\n".join(lines) + "\n"


SEAM_MODULES = (
    "serena.runtime_utils",
    "serena.options_snapshot",
    "serena.runtime_context",
    "serena.options",
    "serena.processing",
)


def _describe_class(cls: type) -> list[str]:
    bases = ", ".join(base.__name__ for base in cls.__bases__ if base is not object)
    lines = [f"class {cls.__name__}({bases})" if bases else f"class {cls.__name__}"]
    if is_dataclass(cls):
        params = getattr(cls, "__dataclass_params__", None)
        lines.append(f"    dataclass(frozen={getattr(params, 'frozen', False)})")
        for item in fields(cls):
            lines.append(f"    {item.name}: {item.type}{'' if item.init else '  (set by the run)'}")
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_") and name not in ("__getitem__", "__setitem__", "__enter__"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.isfunction(member):
            lines.append(f"    def {name}{inspect.signature(member)}")
        elif isinstance(member, property):
            lines.append(f"    property {name}")
    return lines


def seam_api() -> str:
    """Public names and signatures of the seam modules."""
    out = []
    for module_name in SEAM_MODULES:
        module = importlib.import_module(module_name)
        out.append(f"# {module_name}")
        for name, member in sorted(vars(module).items()):
            if name.startswith("_") or getattr(member, "__module__", None) != module_name:
                continue
            if inspect.isclass(member):
                out += _describe_class(member)
            elif inspect.isfunction(member):
                out.append(f"def {name}{inspect.signature(member)}")
    return "\n".join(out) + "\n"


SCHEDULE_STEPS = (1, 4, 10, 20)
SCHEDULE_TYPE_STEPS = 10
# besides the shipped model's own prediction type ("sample"), the one the noise-only samplers (DPM2, PLMS) need
EXTRA_PREDICTION = "epsilon"


def _figure(value: Any) -> str:
    """A number to 6 significant digits, anything else as Python writes it: stable text across runs."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _figures(values: Any) -> str:
    return " ".join(f"{float(value):.6g}" for value in values.tolist())


def _shipped_scheduler_config() -> dict[str, Any]:
    """The shipped model's scheduler config as loading the model leaves it (SdModel.scheduler_config), no weights."""
    import diffusers

    from serena.models import TINY_MODEL_DIR

    _library, class_name = json.loads((TINY_MODEL_DIR / "model_index.json").read_text(encoding="utf-8"))["scheduler"]
    scheduler = getattr(diffusers, class_name).from_pretrained(TINY_MODEL_DIR, subfolder="scheduler")
    return dict(scheduler.config)


def _schedule_lines(prefix: str, info: SamplerInfo, base_config: dict[str, Any]) -> list[str]:
    """One sampler built for one prediction type: its class, its config where it differs from the base it was
    built from, and the timesteps and sigmas set for each step count (as the pipelines' retrieve_timesteps does)."""
    from serena import samplers
    from serena.errors import InputError

    try:
        scheduler = samplers.build_scheduler(info, base_config)
    except InputError:
        return [f"{prefix} | refused by build_scheduler"]
    cls = type(scheduler)
    described = cls.__name__ if cls.__module__.startswith("diffusers.") else f"{cls.__name__}({cls.__base__.__name__})"
    lines = [f"{prefix} | class {described}, order {scheduler.order}"]
    for key, value in sorted(scheduler.config.items()):
        if not key.startswith("_") and (key not in base_config or base_config[key] != value):
            lines.append(f"{prefix} | config {key} = {_figure(value)}")
    for steps in SCHEDULE_STEPS:
        at = f"{prefix} | {steps} step{'s' if steps > 1 else ''}"
        try:
            scheduler.set_timesteps(steps, device="cpu")
        except Exception as exc:  # noqa: BLE001 - a step count the scheduler cannot set is part of the record
            lines.append(f"{at} | error {type(exc).__name__}: {exc}".splitlines()[0].rstrip())
            continue
        lines.append(f"{at} | init_noise_sigma {_figure(float(scheduler.init_noise_sigma))}")
        lines.append(f"{at} | timesteps {_figures(scheduler.timesteps)}")
        if getattr(scheduler, "sigmas", None) is not None:
            lines.append(f"{at} | sigmas {_figures(scheduler.sigmas)}")
    return lines


def sampler_schedules() -> str:
    """Every sampler name's scheduler and schedule, built by Serena's own build_scheduler without a model."""
    from serena import samplers

    shipped = _shipped_scheduler_config()
    prediction_types = list(dict.fromkeys([shipped.get("prediction_type", "epsilon"), EXTRA_PREDICTION]))
    steps = ", ".join(str(count) for count in SCHEDULE_STEPS)
    lines = [
        "# Every sampler name, built by serena.samplers.build_scheduler from the shipped model's scheduler config, for",
        f"# prediction_type {' and '.join(map(repr, prediction_types))}, and the timesteps and sigmas it sets for "
        f"{steps} steps.",
        "# A line reads: sampler | prediction_type | what. Config lines list what differs from the base config.",
        "# img2img runs the tail of the same schedule (diffusers' get_timesteps). Numbers to 6 significant digits.",
        "base config: " + ", ".join(f"{k}={_figure(v)}" for k, v in sorted(shipped.items()) if not k.startswith("_")),
    ]
    for info in samplers.SAMPLERS:
        table = {
            "scheduler": info.scheduler,
            "config": dict(info.config),
            "aliases": list(info.aliases),
            "prediction_types": sorted(info.prediction_types),
            "uses_eta": info.uses_eta,
            "fixed_eta": info.fixed_eta,
        }
        lines.append(f"{info.name} | table | " + ", ".join(f"{k}={_figure(v)}" for k, v in table.items()))
        for prediction_type in prediction_types:
            base_config = {**shipped, "prediction_type": prediction_type}
            lines += _schedule_lines(f"{info.name} | {prediction_type}", info, base_config)
    return "\n".join(lines + _schedule_type_lines(shipped)) + "\n"


def _schedule_type_lines(shipped: dict[str, Any]) -> list[str]:
    """Each schedule type (the `scheduler` field) with each sampler, for epsilon at SCHEDULE_TYPE_STEPS steps: the
    sigmas (or timesteps) it sets, or the refusal. Empty for a runtime without schedule types."""
    from serena import samplers
    from serena.errors import InputError

    schedule_types = getattr(samplers, "SCHEDULE_TYPES", ())
    if not schedule_types:
        return []
    lines = [
        f"# Schedule types (the scheduler field) with each sampler, for epsilon at {SCHEDULE_TYPE_STEPS} steps: "
        "sigmas, or timesteps for samplers without sigmas, or why it is refused. Automatic is the records above.",
    ]
    base_config = {**shipped, "prediction_type": EXTRA_PREDICTION}
    for schedule in schedule_types[1:]:
        table = {"config": dict(schedule.config), "aliases": list(schedule.aliases)}
        lines.append(f"{schedule.label} | table | " + ", ".join(f"{k}={_figure(v)}" for k, v in table.items()))
        for info in samplers.SAMPLERS:
            at = f"{schedule.label} | {info.name}"
            try:
                scheduler = samplers.build_scheduler(info, base_config, schedule)
            except InputError as exc:
                lines.append(f"{at} | refused: {exc}")
                continue
            scheduler.set_timesteps(SCHEDULE_TYPE_STEPS, device="cpu")
            if getattr(scheduler, "sigmas", None) is not None:
                lines.append(f"{at} | sigmas {_figures(scheduler.sigmas)}")
            else:
                lines.append(f"{at} | timesteps {_figures(scheduler.timesteps)}")
    return lines


# Figures are written to 6 significant digits, so one unit in the last printed place is up to 1e-5 of the value:
# 2e-5 allows that and a rounding flip, and nothing a changed configuration does to a schedule.
SCHEDULE_REL_TOL = 2e-5
SCHEDULE_ABS_TOL = 1e-6  # for figures at or next to zero (a schedule's last sigma)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])")


def _within_tolerance(recorded: str, current: str, rel_tol: float) -> tuple[str, int, float]:
    """`current` with every line that equals its recorded counterpart up to numbers within `rel_tol` replaced by
    the recorded line (lines paired by their text with the numbers taken out), the count of numbers that differed
    within tolerance, and the largest relative difference among them."""
    recorded_lines = recorded.splitlines(keepends=True)
    current_lines = current.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(
        None,
        [_NUMBER.sub("#", line) for line in recorded_lines],
        [_NUMBER.sub("#", line) for line in current_lines],
        autojunk=False,
    )
    out = list(current_lines)
    tolerated, largest = 0, 0.0
    for tag, i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            continue
        for offset in range(j2 - j1):
            before, after = recorded_lines[i1 + offset], current_lines[j1 + offset]
            if before == after:
                continue
            pairs = list(zip(_NUMBER.findall(before), _NUMBER.findall(after), strict=True))
            if all(math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=SCHEDULE_ABS_TOL) for a, b in pairs):
                moved = [(float(a), float(b)) for a, b in pairs if a != b]
                tolerated += len(moved)
                largest = max([largest] + [abs(a - b) / (max(abs(a), abs(b)) or 1.0) for a, b in moved])
                out[j1 + offset] = before
    return "".join(out), tolerated, largest


def _api_schema(name: str) -> Callable[[], str]:
    def produce() -> str:
        from serena import api

        if name == "openapi":
            return _json(api.openapi_document())
        return _json(api.response_schemas()[name])

    return produce


@dataclass(frozen=True)
class Snapshot:
    """A committed text of one surface. `rel_tol`, where set, compares the numbers in it within that relative
    tolerance instead of as text: float32 schedules computed on another CPU (other vector kernels for exp and log)
    differ in their sixth significant digit, as num_regression-style snapshot tools allow for; a slip in a
    configuration moves them by far more. Without it the text must be equal."""

    name: str
    filename: str
    produce: Callable[[], str]
    rel_tol: float | None = None

    def path(self, snapshots_dir: Path) -> Path:
        """Where the committed text lives in `snapshots_dir` (configuration key invariants.snapshots_dir)."""
        return snapshots_dir / self.filename


SNAPSHOTS: dict[str, Snapshot] = {
    s.name: s
    for s in (
        Snapshot("processed-schema", "processed-schema.json", processed_schema),
        Snapshot("cli-help", "cli-help.txt", cli_help),
        Snapshot("infotext-format", "infotext-format.txt", infotext_format),
        Snapshot("file-naming", "file-naming.txt", file_naming),
        Snapshot("extension-callbacks", "extension-callbacks.txt", extension_callbacks),
        Snapshot("seam-api", "seam-api.txt", seam_api),
        Snapshot("api-openapi", "api-openapi.json", _api_schema("openapi")),
        Snapshot("api-txt2img-response", "api-txt2img-response.json", _api_schema("txt2img")),
        Snapshot("api-img2img-response", "api-img2img-response.json", _api_schema("img2img")),
        Snapshot("sampler-schedules", "sampler-schedules.txt", sampler_schedules, rel_tol=SCHEDULE_REL_TOL),
    )
}


@dataclass(frozen=True)
class SnapshotResult:
    name: str
    status: str  # "match", "differs", "missing", "error", "updated"
    diff: str = ""
    detail: str = ""


def compare_snapshot(snapshot: Snapshot, snapshots_dir: Path, *, update: bool = False) -> SnapshotResult:
    """Produce the surface now and compare it with the committed text; with update, rewrite it atomically."""
    return compare_snapshots([snapshot], snapshots_dir, update=update)[0]


def compare_snapshots(chosen: list[Snapshot], snapshots_dir: Path, *, update: bool = False) -> list[SnapshotResult]:
    """Each surface produced now and compared with its committed text; with update, every changed text is rewritten
    as one file set (harness/output.py), so an update killed at any moment leaves all old texts or all new ones."""
    from harness.output import finish_file_set, write_file_set

    finish_file_set(snapshots_dir)
    results = []
    rewritten: dict[Path, bytes] = {}
    for snapshot in chosen:
        path = snapshot.path(snapshots_dir)
        try:
            current = snapshot.produce()
        except Exception as exc:  # noqa: BLE001 - a surface that cannot be produced is a failed verifier, not a crash
            results.append(SnapshotResult(snapshot.name, "error", detail=f"{type(exc).__name__}: {exc}"))
            continue
        recorded = path.read_text(encoding="utf-8") if path.is_file() else None
        if update:
            if recorded is not None and snapshot.rel_tol is not None:
                current = _within_tolerance(recorded, current, snapshot.rel_tol)[0]
            if recorded == current:
                results.append(SnapshotResult(snapshot.name, "match"))
            else:
                rewritten[path] = current.encode("utf-8")
                results.append(SnapshotResult(snapshot.name, "updated", detail=str(path)))
        else:
            results.append(_compared(snapshot, path, recorded, current))
    if rewritten:
        write_file_set(snapshots_dir, rewritten)
    return results


def _compared(snapshot: Snapshot, path: Path, recorded: str | None, current: str) -> SnapshotResult:
    if recorded is None:
        return SnapshotResult(snapshot.name, "missing", detail=f"{path} not found; create it with --update")
    if recorded == current:
        return SnapshotResult(snapshot.name, "match")
    detail = ""
    if snapshot.rel_tol is not None:
        current, tolerated, largest = _within_tolerance(recorded, current, snapshot.rel_tol)
        if tolerated:
            detail = (
                f"{tolerated} number{'s' if tolerated != 1 else ''} within relative tolerance {snapshot.rel_tol:g}, "
                f"largest relative difference {largest:.2g}"
            )
        if recorded == current:
            return SnapshotResult(snapshot.name, "match", detail=detail)
    diff = "".join(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{snapshot.name} (now)",
        )
    )
    return SnapshotResult(snapshot.name, "differs", diff=diff, detail=detail)
