"""Finding, verifying and loading models: the shipped tiny model and diffusers folders on local paths, offline."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serena.errors import ModelError
from serena.fileio import atomic_write_text

if TYPE_CHECKING:
    from serena.cmd_args import CmdOpts

log = logging.getLogger("serena")

TINY_MODEL_NAME = "tiny-sd"
TINY_MODEL_DIR = Path(__file__).resolve().parent / "assets" / TINY_MODEL_NAME
# a second shipped model that predicts the noise, for the samplers that need one (DPM2, PLMS)
TINY_EPS_MODEL_NAME = "tiny-sd-eps"
TINY_EPS_MODEL_DIR = TINY_MODEL_DIR.parent / TINY_EPS_MODEL_NAME
# a third: an inpainting model, whose UNet takes the mask and the masked image's latents beside the latents
TINY_INPAINT_MODEL_NAME = "tiny-sd-inpaint"
TINY_INPAINT_MODEL_DIR = TINY_MODEL_DIR.parent / TINY_INPAINT_MODEL_NAME
INPAINTING_IN_CHANNELS = 9
MANIFEST_NAME = "SHA256SUMS"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")
SHORT_HASH_LENGTH = 10


@dataclass(frozen=True)
class ModelInfo:
    """A model folder and the name it is listed under."""

    name: str
    path: Path
    shipped: bool = False

    @property
    def title(self) -> str:
        return f"{self.name} [{short_hash(model_sha256(self.path))}]"


@dataclass(frozen=True)
class SdModel:
    """A loaded model: the txt2img and img2img pipelines sharing one set of components, and for an inpainting model
    (a 9-channel UNet) the inpainting pipeline every pass of it runs on."""

    info: ModelInfo
    sha256: str
    txt2img: Any
    img2img: Any
    scheduler_config: dict[str, Any]
    device: str
    dtype_name: str
    inpaint: Any = None

    @property
    def is_inpainting(self) -> bool:
        return self.inpaint is not None

    def pipeline_for(self, mode: str) -> Any:
        """The pipeline a txt2img or img2img pass runs on: the inpainting pipeline for an inpainting model."""
        if self.inpaint is not None:
            return self.inpaint
        return self.txt2img if mode == "txt2img" else self.img2img

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def short_hash(self) -> str:
        return short_hash(self.sha256)

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler_config.get("prediction_type", "epsilon"))

    @property
    def text_encoder_layers(self) -> int:
        return int(self.txt2img.text_encoder.config.num_hidden_layers)


# -- integrity ---------------------------------------------------------------------------------
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict[str, str]:
    """`SHA256SUMS` as {relative path: sha256}; ModelError naming the line when it is malformed."""
    manifest = model_dir / MANIFEST_NAME
    entries: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise ModelError(f"{manifest}:{number}: malformed line {line!r} (expected '<sha256>  <path>')")
        entries[rel] = digest
    return entries


def verify_manifest(model_dir: Path) -> None:
    """Check every file listed in the folder's SHA256SUMS; a missing or altered file is a ModelError naming it."""
    for rel, expected in read_manifest(model_dir).items():
        path = model_dir / rel
        if not path.is_file():
            raise ModelError(f"{path}: listed in {MANIFEST_NAME} but missing")
        actual = _file_sha256(path)
        if actual != expected:
            raise ModelError(
                f"{path}: sha256 {actual[:16]}… does not match {MANIFEST_NAME} ({expected[:16]}…); "
                "the file was altered — restore it or rebuild the model"
            )


def weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def model_sha256(model_dir: Path, cache_file: Path | None = None) -> str:
    """sha256 over the folder's weight files: the digest of '<sha256>  <relative path>' lines, sorted by path.

    Digests are cached by path, size and mtime (in memory, and in `cache_file` when given) so a multi-GB model is
    hashed once.
    """
    model_dir = Path(model_dir).resolve()
    files = weight_files(model_dir)
    if not files:
        raise ModelError(f"{model_dir}: no weight files ({', '.join(WEIGHT_SUFFIXES)}) found")
    stamp = tuple((p.relative_to(model_dir).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(model_dir), stamp)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    stored = _read_hash_cache(cache_file).get(str(model_dir)) if cache_file else None
    if stored and stored.get("stamp") == [list(s) for s in stamp]:
        digest = str(stored["sha256"])
    else:
        lines = "".join(f"{_file_sha256(p)}  {p.relative_to(model_dir).as_posix()}\n" for p in files)
        digest = hashlib.sha256(lines.encode("utf-8")).hexdigest()
        if cache_file:
            cache = _read_hash_cache(cache_file)
            cache[str(model_dir)] = {"sha256": digest, "stamp": [list(s) for s in stamp]}
            atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    with _hash_lock:
        _hash_memo[key] = digest
    return digest


def _read_hash_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        loaded = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s: unreadable hash cache ignored", cache_file)
        return {}
    return loaded if isinstance(loaded, dict) else {}


def short_hash(sha256: str) -> str:
    """The short model hash web UIs show: the first 10 hex digits of the sha256."""
    return sha256[:SHORT_HASH_LENGTH]


def hash_cache_file(info: ModelInfo, cmd_opts: CmdOpts) -> Path | None:
    """The hash cache for `info`: none for the shipped model, whose digest is never written to the data dir."""
    return None if info.shipped else cmd_opts.hash_cache_path


# -- finding -----------------------------------------------------------------------------------
def is_model_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def _user_path(text: str) -> Path:
    """`text` as a path with '~' expanded; ModelError when it names a user that does not exist."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise ModelError(f"{text!r}: cannot expand '~' (no such user)") from None


def list_models(data_dir: Path, extra: str | None = None) -> list[ModelInfo]:
    """The shipped tiny models (tiny-sd, tiny-sd-eps, tiny-sd-inpaint), every diffusers folder under
    `<data-dir>/models/`, and `extra` (the --model path)."""
    models = [
        ModelInfo(TINY_MODEL_NAME, TINY_MODEL_DIR, shipped=True),
        ModelInfo(TINY_EPS_MODEL_NAME, TINY_EPS_MODEL_DIR, shipped=True),
        ModelInfo(TINY_INPAINT_MODEL_NAME, TINY_INPAINT_MODEL_DIR, shipped=True),
    ]
    models_dir = Path(data_dir) / "models"
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            if child.is_dir() and is_model_dir(child):
                models.append(ModelInfo(child.name, child.resolve()))
    if extra:
        path = _user_path(extra).resolve()
        if is_model_dir(path) and all(m.path != path for m in models):
            models.append(ModelInfo(path.name, path))
    return models


_TITLE = re.compile(r"(?P<name>.+) \[(?P<hash>[^\[\]]*)\]")
MIN_TITLE_HASH = 8  # the web UI's old 8-digit hash still names a model; anything shorter is ambiguous


def resolve_model(
    checkpoint: str,
    data_dir: Path,
    extra: str | None = None,
    *,
    hash_cache: Path | None = None,
    listed_only: bool = False,
) -> ModelInfo:
    """The model named `checkpoint`: a listed name, a title `name [hash]` whose hash is that model's, or (unless
    `listed_only`, as through the API) a diffusers folder path. ModelError in one line otherwise.

    A title's hash is checked against the model's sha256 (its first 8 to 64 hex digits), so a title of another build
    of the model is refused rather than loaded under the wrong name. `hash_cache` is the start-up options' hash cache.
    """
    models = list_models(data_dir, extra)
    wanted = checkpoint.strip()
    for model in models:
        if wanted == model.name or (not listed_only and wanted == str(model.path)):
            return model
    title = _TITLE.fullmatch(wanted)
    if title is not None:
        for model in models:
            if title["name"] == model.name:
                _check_title_hash(model, title["hash"], hash_cache)
                return model
    if listed_only:
        listed = ", ".join(m.name for m in models)
        raise ModelError(f"no model {checkpoint!r}; choose a name or title that /sdapi/v1/sd-models lists: {listed}")
    path = _user_path(wanted)
    if path.is_dir():
        if not is_model_dir(path):
            raise ModelError(f"{path}: not a diffusers model folder (no model_index.json)")
        return ModelInfo(path.resolve().name, path.resolve())
    names = ", ".join(m.name for m in models)
    raise ModelError(f"sd_model_checkpoint: no model {checkpoint!r}; available: {names} (or a diffusers folder path)")


def _check_title_hash(model: ModelInfo, given: str, hash_cache: Path | None) -> None:
    digest = model_sha256(model.path, None if model.shipped else hash_cache)
    text = given.strip().lower()
    if not MIN_TITLE_HASH <= len(text) <= len(digest) or not digest.startswith(text):
        raise ModelError(
            f"{model.name} [{given}]: the hash is not {model.name}'s; its title is {model.name} [{short_hash(digest)}]"
        )


def find_model(checkpoint: str, cmd_opts: CmdOpts, *, listed_only: bool = False) -> ModelInfo:
    """`resolve_model` with the start-up options' data dir, --model and hash cache."""
    return resolve_model(
        checkpoint, cmd_opts.data_dir, cmd_opts.model, hash_cache=cmd_opts.hash_cache_path, listed_only=listed_only
    )


def list_models_with_hashes(cmd_opts: CmdOpts) -> list[tuple[ModelInfo, str | None]]:
    """Every model `list_models` finds for the start-up options, each with its sha256 (hashed once, then cached), or
    None for a folder that cannot be hashed (no weight files, unreadable): listed, so it can be named and refused."""
    listed: list[tuple[ModelInfo, str | None]] = []
    for info in list_models(cmd_opts.data_dir, cmd_opts.model):
        try:
            listed.append((info, model_sha256(info.path, hash_cache_file(info, cmd_opts))))
        except (ModelError, OSError) as exc:
            log.warning("%s: cannot hash model %r: %s", info.path, info.name, exc)
            listed.append((info, None))
    return listed


def read_prediction_type(model_dir: Path) -> str:
    """The model's prediction type from its scheduler config, without importing torch."""
    config = Path(model_dir) / "scheduler" / "scheduler_config.json"
    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("prediction_type", "epsilon"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config}: cannot read scheduler config ({exc})") from None


# -- loading -----------------------------------------------------------------------------------
def _quiet_diffusers() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def load_model(
    info: ModelInfo, device: str = "cpu", precision: str = "fp32", cache_file: Path | None = None
) -> SdModel:
    """Verify and load a model folder into txt2img and img2img pipelines, with local files only."""
    if not is_model_dir(info.path):
        raise ModelError(f"{info.path}: not a diffusers model folder (no model_index.json)")
    if (info.path / MANIFEST_NAME).is_file():
        verify_manifest(info.path)
    elif info.shipped:
        raise ModelError(f"{info.path}: the shipped model has lost its {MANIFEST_NAME}")
    sha256 = model_sha256(info.path, cache_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

        _quiet_diffusers()
        dtype = torch.float16 if precision == "fp16" else torch.float32
        try:
            txt2img = StableDiffusionPipeline.from_pretrained(
                info.path,
                local_files_only=True,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
                torch_dtype=dtype,
                low_cpu_mem_usage=False,
            )
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{info.path}: cannot load model: {first_line}") from exc
    txt2img = txt2img.to(device)
    txt2img.set_progress_bar_config(disable=True)
    img2img = StableDiffusionImg2ImgPipeline(**txt2img.components)
    img2img.set_progress_bar_config(disable=True)
    inpaint = None
    if txt2img.unet.config.in_channels == INPAINTING_IN_CHANNELS:
        from diffusers import StableDiffusionInpaintPipeline

        inpaint = StableDiffusionInpaintPipeline(**txt2img.components)
        inpaint.set_progress_bar_config(disable=True)
    return SdModel(
        inpaint=inpaint,
        info=info,
        sha256=sha256,
        txt2img=txt2img,
        img2img=img2img,
        scheduler_config=dict(txt2img.scheduler.config),
        device=device,
        dtype_name=precision,
    )


class ModelCache:
    """Holds the one loaded model; another checkpoint, device or precision loads it and fires model_loaded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str, str] | None = None
        self._model: SdModel | None = None

    @property
    def current(self) -> SdModel | None:
        return self._model

    def get(
        self,
        info: ModelInfo,
        device: str,
        precision: str,
        cache_file: Path | None = None,
        failures: list[Any] | None = None,
    ) -> SdModel:
        """The model, loaded if needed; model_loaded callback failures are appended to `failures`."""
        key = (str(info.path), device, precision)
        with self._lock:
            if self._model is not None and self._key == key:
                return self._model
            self._model = None
            model = load_model(info, device, precision, cache_file)
            self._model, self._key = model, key
        from serena import script_callbacks

        failed = script_callbacks.run_callbacks("model_loaded", model)
        if failures is not None:
            failures.extend(failed)
        return model

    def clear(self) -> None:
        with self._lock:
            self._model, self._key = None, None


model_cache = ModelCache()


def load_checkpoint(checkpoint: str, cmd_opts: CmdOpts, device: str, *, failures: list[Any] | None = None) -> SdModel:
    """The model `checkpoint` names (as sd_model_checkpoint does), loaded through `model_cache` with the start-up
    options' precision; model_loaded callback failures are appended to `failures`."""
    info = find_model(checkpoint, cmd_opts)
    return model_cache.get(info, device, cmd_opts.precision, hash_cache_file(info, cmd_opts), failures=failures)
