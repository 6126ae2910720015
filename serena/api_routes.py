"""The /sdapi/v1 endpoints web-UI clients call when they connect: lists, PNG info, start-up flags, memory.

Each answers the way the web UI's API does: real content where Serena has it (schedule types, upscalers, prompt
styles, extensions, PNG info, start-up options, memory) and a well-formed empty answer where it has none (VAEs,
LoRAs, embeddings, hypernetworks, face restorers, Real-ESRGAN models, scripts).

Errors: a body that is not a readable image is a 422 at `image`; a malformed styles file is the server's own
configuration problem, so /prompt-styles lets its InputFileError through to RequestGuard, which answers a one-line
JSON 500 ({"error": "InputFileError", "detail": "[input] <file>:<line>: <what>"}).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from serena import models, samplers, shared, upscalers
from serena.api_models import ErrorResponse, MalformedBodyResponse
from serena.images import exif_user_comment
from serena.infotext import parse_infotext

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serena.api_models import ApiLimits

API_PREFIX = "/sdapi/v1"
# what /png-info opens; Pillow's other plugins (EPS via Ghostscript among them) are never reached
PNG_INFO_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
# the 8-byte character-code prefix of an EXIF UserComment, and the codec of each (JPEG/WEBP infotext lives there)
# what a route may answer besides 200 (and 422, which FastAPI documents itself for a body)
PNG_INFO_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": MalformedBodyResponse, "description": "The body is not UTF-8 JSON"},
    413: {"model": ErrorResponse, "description": "The body is over max_payload_bytes + 1 MiB"},
}
STYLES_RESPONSES: dict[int | str, dict[str, Any]] = {
    500: {"model": ErrorResponse, "description": "The styles file is malformed (the detail names file and line)"},
}
NO_CUDA = "CUDA is not available"
NO_RAM_FIGURES = "system memory cannot be read (no /proc/meminfo or sysconf figures)"


# -- response models ---------------------------------------------------------------------------
class EmptyResponse(BaseModel):
    """{}: the request was carried out."""


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None
    default_rho: float = Field(description="The schedule's default rho; -1 when it has none.")
    need_inner_model: bool


class UpscalerItem(BaseModel):
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = Field(None, description="A model upscaler's native factor; null for a plain resize.")


class LatentUpscaleModeItem(BaseModel):
    name: str


class PromptStyleItem(BaseModel):
    name: str
    prompt: str
    negative_prompt: str


class VaeItem(BaseModel):
    model_name: str
    filename: str


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class EmbeddingItem(BaseModel):
    step: int | None
    sd_checkpoint: str | None
    sd_checkpoint_name: str | None
    shape: int
    vectors: int


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem] = Field(description="Textual-inversion embeddings loaded: Serena has none.")
    skipped: dict[str, EmbeddingItem]


class HypernetworkItem(BaseModel):
    name: str
    path: str | None


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: str | None


class RealesrganItem(BaseModel):
    name: str
    path: str | None
    scale: int | None


class ScriptsList(BaseModel):
    txt2img: list[str]
    img2img: list[str]


class ScriptArg(BaseModel):
    label: str | None
    value: Any
    minimum: Any
    maximum: Any
    step: Any
    choices: list[str] | None


class ScriptInfo(BaseModel):
    name: str | None
    is_alwayson: bool | None
    is_img2img: bool | None
    args: list[ScriptArg]


class ExtensionItem(BaseModel):
    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: int
    enabled: bool


class CmdFlags(BaseModel):
    """The start-up options (shared.cmd_opts), paths as strings."""

    # a start-up option added later still shows, before this model names it
    model_config = ConfigDict(extra="allow")

    model: str | None
    device: str
    precision: str
    data_dir: str
    extensions_dir: str | None
    styles_file: str | None
    listen: bool
    port: int


class PngInfoRequest(BaseModel):
    image: str = Field(description="A base64 PNG, JPEG, WEBP, BMP or GIF image (a base64 data: URL too).")


class PngInfoResponse(BaseModel):
    info: str = Field(description="The infotext (PNG `parameters` chunk, EXIF UserComment or GIF comment), or empty.")
    items: dict[str, str] = Field(description="The image's other text chunks, by key.")
    parameters: dict[str, Any] = Field(description="The infotext parsed, as parse_infotext reads it; {} without one.")


class MemoryBytes(BaseModel):
    free: int
    used: int
    total: int


class MemoryPeak(BaseModel):
    current: int
    peak: int


class CudaEvents(BaseModel):
    retries: int
    oom: int


class CudaMemory(BaseModel):
    system: MemoryBytes = Field(description="The device's free, used and total bytes.")
    active: MemoryPeak
    allocated: MemoryPeak
    reserved: MemoryPeak
    inactive: MemoryPeak
    events: CudaEvents


class Unavailable(BaseModel):
    error: str = Field(description="Why there is no figure.")


class MemoryResponse(BaseModel):
    ram: MemoryBytes | Unavailable = Field(description="System memory in bytes (free: what is available).")
    cuda: CudaMemory | Unavailable


# -- what the endpoints compute ----------------------------------------------------------------
def schedulers() -> list[SchedulerItem]:
    return [
        SchedulerItem(
            name=schedule.name,
            label=schedule.label,
            aliases=list(schedule.aliases) or None,
            default_rho=schedule.default_rho,
            need_inner_model=schedule.need_inner_model,
        )
        for schedule in samplers.SCHEDULE_TYPES
    ]


def _unprocessable(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def read_png_info(text: str, limits: ApiLimits) -> PngInfoResponse:
    """The infotext and text chunks of a base64 image; a 422 naming `image` when it is not a readable image within
    the limits. Only the header is read: pixels are never decoded, so the pixel limit holds before any work."""
    from PIL import Image as PILImage

    if not text.strip():  # the web UI answers an empty image with an empty info
        return PngInfoResponse(info="", items={}, parameters={})
    if len(text) > limits.max_payload_bytes:
        raise _unprocessable("image", f"over the {limits.max_payload_bytes} characters of base64 one request may carry")
    payload = text
    if text.startswith("data:"):
        header, sep, payload = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise _unprocessable("image", "a data: URL must carry base64 (data:image/png;base64,…)")
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _unprocessable("image", f"not valid base64 ({exc})") from None
    try:
        image = PILImage.open(io.BytesIO(raw), formats=PNG_INFO_FORMATS)
    except Exception as exc:  # noqa: BLE001 - any failure to read untrusted bytes is bad input
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise _unprocessable("image", f"not a readable {', '.join(PNG_INFO_FORMATS)} image ({detail})") from None
    with image:
        # opening read the header only, and it gives the size: a decompression bomb is refused before its pixels
        if image.width * image.height > limits.max_init_image_pixels:
            raise _unprocessable(
                "image",
                f"{image.width}x{image.height} pixels is over the limit of {limits.max_init_image_pixels} pixels",
            )
        chunks = {str(key): str(value) for key, value in image.info.items() if isinstance(value, str)}
        comment = image.info.get("comment")  # GIF and JPEG comments are bytes
        exif_comment = exif_user_comment(image) if "exif" in image.info else ""
    info = chunks.pop("parameters", "") or exif_comment
    if not info and isinstance(comment, bytes):
        info = comment.decode("utf-8", errors="replace")
    elif not info and "comment" in chunks:
        info = chunks.pop("comment")
    return PngInfoResponse(info=info, items=chunks, parameters=parse_infotext(info) if info else {})


def prompt_styles() -> list[PromptStyleItem]:
    """The saved styles; InputFileError naming the file and line when the styles file is malformed."""
    from serena import styles

    saved = styles.load_styles(shared.cmd_opts.resolved_styles_file)
    return [PromptStyleItem(name=s.name, prompt=s.prompt, negative_prompt=s.negative_prompt) for s in saved.values()]


def command_flags() -> CmdFlags:
    """The start-up options as JSON values (paths as strings)."""
    values = {item.name: getattr(shared.cmd_opts, item.name) for item in fields(shared.cmd_opts)}
    return CmdFlags(**{key: str(value) if isinstance(value, Path) else value for key, value in values.items()})


def loaded_extensions() -> list[ExtensionItem]:
    """The extensions start-up found (shared.extensions), as the web UI lists them: enabled, or disabled by the
    disabled_extensions option as it read then; a script that failed to import leaves its extension listed, as
    there. What changes on disk or in the option after start-up shows after the next start, not before."""
    return [
        ExtensionItem(
            name=extension.name,
            remote="",
            branch="",
            commit_hash="",
            version="",
            commit_date=0,
            enabled=extension.enabled,
        )
        for extension in shared.extensions
    ]


def system_memory() -> MemoryBytes | None:
    """System memory in bytes from /proc/meminfo (free: what is available), else from sysconf; None when neither
    can be read."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib: dict[str, int] = {}
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                kib[key] = int(parts[0])
        if "MemTotal" in kib:
            total = kib["MemTotal"] * 1024
            free = min(kib.get("MemAvailable", kib.get("MemFree", 0)) * 1024, total)
            return MemoryBytes(free=free, used=total - free, total=total)
    try:
        page, pages, available = (os.sysconf(name) for name in ("SC_PAGE_SIZE", "SC_PHYS_PAGES", "SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
    return MemoryBytes(free=page * available, used=page * (pages - available), total=page * pages)


def cuda_memory() -> CudaMemory | Unavailable:
    import torch

    if not torch.cuda.is_available():
        return Unavailable(error=NO_CUDA)
    free, total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()  # {} before the first allocation

    def peak(kind: str) -> MemoryPeak:
        return MemoryPeak(current=stats.get(f"{kind}.all.current", 0), peak=stats.get(f"{kind}.all.peak", 0))

    return CudaMemory(
        system=MemoryBytes(free=free, used=total - free, total=total),
        active=peak("active_bytes"),
        allocated=peak("allocated_bytes"),
        reserved=peak("reserved_bytes"),
        inactive=peak("inactive_split_bytes"),
        events=CudaEvents(retries=stats.get("num_alloc_retries", 0), oom=stats.get("num_ooms", 0)),
    )


def memory() -> MemoryResponse:
    ram = system_memory() or Unavailable(error=NO_RAM_FIGURES)
    return MemoryResponse(ram=ram, cuda=cuda_memory())


def refresh_checkpoints() -> None:
    """List the models again; the list is never cached, so this only brings a broken models folder to light."""
    models.list_models(shared.cmd_opts.data_dir, shared.cmd_opts.model)


# -- the routes --------------------------------------------------------------------------------
def add_client_routes(app: FastAPI, limits: ApiLimits, post_dependencies: Sequence[Any] = ()) -> None:
    """Add the endpoints to `app`; a POST with a body runs `post_dependencies` first (the API's body screening).

    Handlers that touch files or import torch are plain functions, which FastAPI runs in a thread."""

    @app.get(f"{API_PREFIX}/schedulers")
    async def get_schedulers() -> list[SchedulerItem]:
        return schedulers()

    @app.get(f"{API_PREFIX}/upscalers")
    async def get_upscalers() -> list[UpscalerItem]:
        return [UpscalerItem(name=upscaler.name, scale=upscaler.scale) for upscaler in upscalers.IMAGE_UPSCALERS]

    @app.get(f"{API_PREFIX}/latent-upscale-modes")
    async def get_latent_upscale_modes() -> list[LatentUpscaleModeItem]:
        return [LatentUpscaleModeItem(name=name) for name in upscalers.latent_upscale_modes()]

    @app.get(f"{API_PREFIX}/prompt-styles", responses=STYLES_RESPONSES)
    def get_prompt_styles() -> list[PromptStyleItem]:
        return prompt_styles()

    @app.get(f"{API_PREFIX}/sd-vae")
    async def get_sd_vaes() -> list[VaeItem]:
        return []  # each model runs with its own VAE

    @app.get(f"{API_PREFIX}/loras")
    async def get_loras() -> list[LoraItem]:
        return []

    @app.get(f"{API_PREFIX}/embeddings")
    async def get_embeddings() -> EmbeddingsResponse:
        return EmbeddingsResponse(loaded={}, skipped={})

    @app.get(f"{API_PREFIX}/hypernetworks")
    async def get_hypernetworks() -> list[HypernetworkItem]:
        return []

    @app.get(f"{API_PREFIX}/face-restorers")
    async def get_face_restorers() -> list[FaceRestorerItem]:
        return []

    @app.get(f"{API_PREFIX}/realesrgan-models")
    async def get_realesrgan_models() -> list[RealesrganItem]:
        return []

    @app.get(f"{API_PREFIX}/scripts")
    async def get_scripts() -> ScriptsList:
        return ScriptsList(txt2img=[], img2img=[])

    @app.get(f"{API_PREFIX}/script-info")
    async def get_script_info() -> list[ScriptInfo]:
        return []

    @app.get(f"{API_PREFIX}/extensions")
    def get_extensions() -> list[ExtensionItem]:
        return loaded_extensions()

    @app.get(f"{API_PREFIX}/cmd-flags")
    async def get_cmd_flags() -> CmdFlags:
        return command_flags()

    @app.get(f"{API_PREFIX}/memory")
    def get_memory() -> MemoryResponse:
        return memory()

    @app.post(f"{API_PREFIX}/png-info", responses=PNG_INFO_RESPONSES, dependencies=list(post_dependencies))
    async def png_info(request: PngInfoRequest) -> PngInfoResponse:
        return await run_in_threadpool(read_png_info, request.image, limits)

    @app.post(f"{API_PREFIX}/refresh-checkpoints")
    def post_refresh_checkpoints() -> EmptyResponse:
        refresh_checkpoints()
        return EmptyResponse()

    @app.post(f"{API_PREFIX}/refresh-vae")
    async def post_refresh_vae() -> EmptyResponse:
        return EmptyResponse()

    @app.post(f"{API_PREFIX}/refresh-loras")
    async def post_refresh_loras() -> EmptyResponse:
        return EmptyResponse()
