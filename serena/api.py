"""The HTTP API: web-UI (A1111) compatible /sdapi/v1 endpoints over the runtime, generation queued on one worker."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

import serena
from serena import images, models, processing, samplers, shared
from serena.api_models import (
    ApiLimits,
    ErrorResponse,
    GenerationRequest,
    ImageToImageResponse,
    MalformedBodyResponse,
    ProgressResponse,
    SamplerItem,
    SDModelItem,
    TextToImageResponse,
    options_models,
    request_models,
    response_schemas,
)
from serena.api_policy import check_api_option
from serena.api_routes import add_client_routes
from serena.errors import EXIT_USAGE, InputError, ModelError, OptionError, SerenaError
from serena.filenames import surrogate_problem
from serena.runtime_utils import _apply_options_atomically

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ApiError", "ApiLimits", "background_server", "create_app", "openapi_document", "response_schemas", "serve"]

log = logging.getLogger("serena")

API_PREFIX = "/sdapi/v1"
# Formats an init image may be in; Pillow's other plugins (EPS via Ghostscript among them) are never reached.
INIT_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
# what a POST may answer besides 200 and 422 (which FastAPI documents itself)
POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": MalformedBodyResponse, "description": "The body is not UTF-8 JSON"},
    413: {"model": ErrorResponse, "description": "The body is over max_payload_bytes + 1 MiB"},
    500: {"model": ErrorResponse, "description": "The request failed on the server; it stays up"},
}
# JSON nested deeper than this is refused: no request field needs more than 3 levels, and echoing a deep value back
# (parameters) would break serialisation
MAX_JSON_DEPTH = 32
MAX_REPORTED_PROBLEMS = 10
COMPAT_MODES = ("strict", "lenient")
UNKNOWN_OPTION = "Serena has no option {key!r}; `serena api --compat lenient` skips unknown options and reports them"
GRACEFUL_SHUTDOWN_S = 5
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(SerenaError):
    """The API server cannot start (address in use, bad host)."""

    slug = "api"
    exit_code = EXIT_USAGE


# -- the generation queue ----------------------------------------------------------------------
class GenerationQueue:
    """One worker thread runs jobs in arrival order, so generations and option changes never overlap.

    The event loop only awaits the worker, so /progress and /interrupt answer while a long generation runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serena-generation")
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(job, *args))

    def close(self) -> None:
        """Drop queued jobs; the running one finishes (the caller interrupts it first)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


# -- errors ------------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    text = f"[{exc.slug}] {exc}" if isinstance(exc, SerenaError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A validation error's location as a field path: ("body", "init_images", 0) → "init_images[0]"."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name if name and not name.startswith("[") else f"body{name}"


def unprocessable(field: tuple[Any, ...], message: str) -> RequestValidationError:
    """A 422 for a problem found after the request model was validated, shaped like pydantic's own."""
    return RequestValidationError([{"loc": ("body", *field), "msg": message, "type": "value_error"}])


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # the input is not echoed back: it may be megabytes of base64
    detail = [{"loc": list(error["loc"]), "msg": str(error["msg"]), "type": str(error["type"])} for error in errors]
    message = "; ".join(
        f"{field_name(error['loc'])}: {str(error['msg']).removeprefix('Value error, ')}" for error in errors
    )
    # ASCII-escaped: a 422 may quote any part of a hostile body, and must still be valid JSON
    body = json.dumps({"detail": detail, "message": message}, ensure_ascii=True, separators=(",", ":"))
    return Response(content=body, status_code=422, media_type="application/json")


def json_problems(value: Any, loc: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location, message) for what no field may hold, anywhere in a request body: a string or key with a lone UTF-16
    surrogate (it cannot be encoded in a reply, a PNG chunk or a file name) and nesting deeper than MAX_JSON_DEPTH."""
    if isinstance(value, str):
        if problem := surrogate_problem(value):
            yield loc, problem
    elif isinstance(value, dict | list):
        if depth >= MAX_JSON_DEPTH:
            yield loc, f"nested deeper than {MAX_JSON_DEPTH} levels"
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (problem := surrogate_problem(key)):
                # named by its escape: the key itself cannot be written into the reply
                yield (*loc, key.encode("utf-8", "backslashreplace").decode("utf-8")), f"the key {problem}"
                continue
            yield from json_problems(item, (*loc, key), depth + 1)


async def screen_body(request: Request) -> None:
    """A dependency of every POST: the body's hostile strings and nesting refused with 422 at their field, before
    the request model sees them. A body that is not JSON is left to FastAPI's own 400."""
    try:
        body = await request.json()
    except ValueError:
        return
    problems = list(json_problems(body))[:MAX_REPORTED_PROBLEMS]
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", *loc), "msg": message, "type": "value_error"} for loc, message in problems]
        )


def _json_response(status: int, error: str, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"error": error, "detail": detail}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


class RequestGuard:
    """ASGI middleware: a body over the size limit gets 413 before it is parsed; an unhandled error becomes a logged
    JSON 500 and the server goes on serving."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive)
        if body is None:
            for message in _json_response(
                413, "PayloadTooLarge", f"request body over {self.max_body_bytes} bytes (max_payload_bytes + 1 MiB)"
            ):
                await send(message)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay, tracking_send)
        except Exception as exc:  # the last line of defence: one failing request must not cost the server
            log.error("%s %s failed: %s", scope.get("method"), scope.get("path"), one_line(exc), exc_info=exc)
            if not started:
                for message in _json_response(500, type(exc).__name__, one_line(exc)):
                    await send(message)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it is known to be over the limit."""
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see an empty body
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


# -- images ------------------------------------------------------------------------------------
def decode_image(text: str, max_pixels: int, *, mask: bool = False) -> Image:
    """An RGB image from base64 (or a base64 data: URL); ValueError in one line when it is not one. A mask keeps its
    transparency (RGBA) when it has any, else becomes luminance (L)."""
    from PIL import Image as PILImage

    payload = text
    if text.startswith("data:"):
        header, sep, payload = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ValueError("a data: URL must carry base64 (data:image/png;base64,…)")
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not valid base64 ({exc})") from None
    try:
        with PILImage.open(io.BytesIO(raw), formats=INIT_IMAGE_FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise ValueError(f"{image.width}x{image.height} pixels is over the limit of {max_pixels} pixels")
            image.load()
            if not mask:
                return image.convert("RGB")
            transparent = "A" in image.getbands() or "transparency" in image.info
            return image.convert("RGBA" if transparent else "L")
    except Exception as exc:  # noqa: BLE001 - any failure to decode untrusted bytes is bad input, not a server error
        raise ValueError(f"not a decodable {', '.join(INIT_IMAGE_FORMATS)} image ({one_line(exc)})") from None


def decode_init_images(encoded: list[str], limits: ApiLimits) -> list[Image]:
    """Every init image decoded; one 422 naming each init_images[i] that is not a usable image."""
    images, errors = [], []
    for index, text in enumerate(encoded):
        try:
            images.append(decode_image(text, limits.max_init_image_pixels))
        except ValueError as exc:
            errors.append({"loc": ("body", "init_images", index), "msg": str(exc), "type": "value_error"})
    if errors:
        raise RequestValidationError(errors)
    return images


def decode_mask(encoded: str | None, limits: ApiLimits) -> Image | None:
    """The inpainting mask decoded, or None; a 422 naming mask when it is not a usable image."""
    if encoded is None:
        return None
    try:
        return decode_image(encoded, limits.max_init_image_pixels, mask=True)
    except ValueError as exc:
        raise RequestValidationError([{"loc": ("body", "mask"), "msg": str(exc), "type": "value_error"}]) from None


def encode_images(processed: processing.Processed, embed_infotext: bool) -> list[str]:
    """Each image as base64 PNG, with its infotext in the `parameters` chunk when `embed_infotext`."""
    pairs = zip(processed.images, processed.infotexts, strict=True)
    return [
        base64.b64encode(images.encode_png(image, infotext if embed_infotext else None)).decode("ascii")
        for image, infotext in pairs
    ]


# -- what the endpoints run --------------------------------------------------------------------
def current_options() -> dict[str, Any]:
    return shared.opts.snapshot().to_dict()


def check_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each value of a POST /options checked by `check_api_option`: (the checked values, 422 details for the rest)."""
    checked, errors = {}, []
    for key, value in values.items():
        try:
            checked[key] = check_api_option(key, value)
        except OptionError as exc:
            errors.append({"loc": ("body", key), "msg": str(exc), "type": "value_error"})
    return checked, errors


def apply_options(values: Mapping[str, Any]) -> None:
    """Set every (already checked) value and save them to config.json, or leave everything as it was. A new model is
    loaded before anything changes: ModelError, and nothing set, when it does not load."""
    if "sd_model_checkpoint" in values:
        models.load_checkpoint(values["sd_model_checkpoint"], shared.cmd_opts, shared.device)
    _apply_options_atomically(values, save=shared.cmd_opts.config_path)


def preload_model() -> None:
    """Load the current model now, so a broken model stops `serena api` at start-up rather than at the first request."""
    models.load_checkpoint(shared.opts.sd_model_checkpoint, shared.cmd_opts, shared.device)


def override_errors(overrides: Mapping[str, Any], *, lenient: bool = False) -> list[dict[str, Any]]:
    """422 details for a request's override_settings, each at override_settings.<key>: the known options that
    `check_api_option` refuses, and keys Serena has no option for — unless `lenient`, when the run skips those and
    lists them in info.skipped_override_keys."""
    errors = []
    for key, value in overrides.items():
        if key not in shared.opts and not lenient:
            errors.append(
                {
                    "loc": ("body", "override_settings", key),
                    "msg": UNKNOWN_OPTION.format(key=key),
                    "type": "value_error",
                }
            )
        elif key in shared.opts:
            try:
                check_api_option(key, value)
            except OptionError as exc:
                errors.append({"loc": ("body", "override_settings", key), "msg": str(exc), "type": "value_error"})
    return errors


def _runtime_input_error(exc: InputError | OptionError, request: GenerationRequest) -> RequestValidationError:
    """A 422 for the runtime's own input checks, at the field the error names (never read out of its message).

    An input error on a request field is reported there; one on an option (CLIP_stop_at_last_layers) under
    override_settings, like an OptionError."""
    message = " ".join(str(exc).split())
    if isinstance(exc, OptionError):
        return unprocessable(("override_settings",), message)
    if exc.field in type(request).model_fields:
        return unprocessable((exc.field,), message.removeprefix(f"{exc.field}: "))
    return unprocessable(("override_settings", exc.field), message)


# -- the app -----------------------------------------------------------------------------------
def create_app(limits: ApiLimits | None = None, compat: str = "strict") -> FastAPI:
    """The API app; `limits` default to ApiLimits() (the CLI layers SERENA_API_* and flags on top).

    `compat` says what happens to a web-UI field Serena does not implement, set to a value that would change the
    image, and to an option key Serena does not have: "strict" refuses it with 422 naming it; "lenient" accepts it,
    logs a warning and reports it (info.ignored_fields, info.skipped_override_keys, X-Serena-Skipped-Options)."""
    if compat not in COMPAT_MODES:
        raise ApiError(f"--compat must be one of {', '.join(COMPAT_MODES)}, got {compat!r}")
    lenient = compat == "lenient"
    limits = limits or ApiLimits()
    txt2img_model, img2img_model = request_models(limits)
    options_model, options_update_model = options_models(lenient)
    queue = GenerationQueue()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        # a long run must not hold the process after shutdown: stop it at the next step
        if shared.state.job:
            shared.state.interrupt()
        queue.close()

    app = FastAPI(
        title="Serena API",
        version=serena.__version__,
        description="txt2img and img2img over the Serena runtime, compatible with web-UI (A1111) API clients.",
        lifespan=lifespan,
    )
    app.state.limits = limits
    app.state.compat = compat
    app.add_middleware(RequestGuard, max_body_bytes=limits.max_request_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)

    async def check_request(request: GenerationRequest) -> list[str]:
        """Refuse what this request may not ask for; the web-UI fields ignored (under lenient) are returned."""
        unsupported = request.unsupported_fields()
        errors = (
            [] if lenient else [{"loc": ("body", name), "msg": why, "type": "value_error"} for name, why in unsupported]
        )
        # off the event loop: checking a model title hashes the model the first time
        errors += await run_in_threadpool(
            functools.partial(override_errors, lenient=lenient), request.override_settings or {}
        )
        if errors:
            raise RequestValidationError(errors)
        for name, why in unsupported:
            log.warning("%s: ignored under --compat lenient: %s", name, why)
        return [name for name, _ in unsupported]

    async def generate(
        request: GenerationRequest, p: processing.StableDiffusionProcessing, ignored: list[str]
    ) -> dict[str, Any]:
        # 1. run on the worker, after every request queued before this one
        try:
            processed = await queue.run(processing.process_images, p)
        except (InputError, OptionError) as exc:  # the runtime's input checks: bad input, a 422
            raise _runtime_input_error(exc, request) from None
        except ModelError as exc:
            # a model this request chose (a listed one that does not load) is the request's problem; the server's own
            # model failing is the server's (a 500 below)
            if "sd_model_checkpoint" not in (request.override_settings or {}):
                raise
            raise unprocessable(("override_settings", "sd_model_checkpoint"), " ".join(str(exc).split())) from None
        # anything else the runtime raises is its own failure: RequestGuard answers a one-line JSON 500
        # 2. encode off the event loop; infotext embedded as the run's options said
        embed = p.opts_snapshot is None or p.opts_snapshot["save_infotext"]
        images = await run_in_threadpool(encode_images, processed, embed) if request.send_images else []
        parameters = request.echo()
        if "init_images" in parameters and not parameters.get("include_init_images"):
            parameters["init_images"] = None
            parameters["mask"] = None
        info = json.loads(processed.js())
        info["ignored_fields"] = ignored
        return {"images": images, "parameters": parameters, "info": json.dumps(info)}

    async def text2imgapi(request: Any) -> TextToImageResponse:
        ignored = await check_request(request)
        p = processing.StableDiffusionProcessingTxt2Img(**request.processing_args())
        return TextToImageResponse(**await generate(request, p, ignored))

    async def img2imgapi(request: Any) -> ImageToImageResponse:
        ignored = await check_request(request)
        init_images = await run_in_threadpool(decode_init_images, request.init_images, limits)
        mask = await run_in_threadpool(decode_mask, request.mask, limits)
        p = processing.StableDiffusionProcessingImg2Img(
            **request.processing_args(),
            init_images=init_images,
            mask=mask,
            denoising_strength=request.denoising_strength,
        )
        return ImageToImageResponse(**await generate(request, p, ignored))

    # the request models are built per limits, so FastAPI gets them here rather than from a (string) annotation
    text2imgapi.__annotations__["request"] = txt2img_model
    img2imgapi.__annotations__["request"] = img2img_model
    screened = [Depends(screen_body)]
    app.post(f"{API_PREFIX}/txt2img", responses=POST_RESPONSES, dependencies=screened)(text2imgapi)
    app.post(f"{API_PREFIX}/img2img", responses=POST_RESPONSES, dependencies=screened)(img2imgapi)

    @app.get(f"{API_PREFIX}/progress")
    async def progressapi(skip_current_image: bool = False) -> ProgressResponse:
        # skip_current_image is accepted because clients send it; there is never a current image to skip
        state = shared.state
        values = state.dict()
        progress = values["progress"]
        started = state.time_start
        elapsed = time.monotonic() - started if values["job"] and started is not None else 0.0
        eta = elapsed / progress - elapsed if progress > 0 else 0.0
        return ProgressResponse(progress=progress, eta_relative=eta, state=values)

    @app.post(f"{API_PREFIX}/interrupt")
    async def interruptapi() -> dict[str, Any]:
        shared.state.interrupt()
        return {}

    @app.post(f"{API_PREFIX}/skip")
    async def skip() -> dict[str, Any]:
        shared.state.skip()
        return {}

    @app.get(f"{API_PREFIX}/samplers")
    def get_samplers() -> list[SamplerItem]:  # sync: reading the current model's scheduler config is file I/O
        # only the samplers the current model runs, as the web UI lists them; all of them when it cannot be read
        try:
            info = models.find_model(shared.opts.sd_model_checkpoint, shared.cmd_opts)
            usable = samplers.samplers_for(models.read_prediction_type(info.path))
        except (ModelError, OSError):
            usable = list(samplers.SAMPLERS)
        return [
            SamplerItem(
                name=sampler.name,
                aliases=list(sampler.aliases),
                options={
                    "scheduler": sampler.scheduler,
                    "prediction_types": ",".join(sorted(sampler.prediction_types)),
                },
            )
            for sampler in usable
        ]

    @app.get(f"{API_PREFIX}/sd-models")
    def get_sd_models() -> list[SDModelItem]:  # sync: FastAPI runs it in a thread, hashing a big model takes time
        return [
            SDModelItem(
                title=f"{info.name} [{models.short_hash(sha256)}]" if sha256 else info.name,
                model_name=info.name,
                hash=models.short_hash(sha256) if sha256 else None,
                sha256=sha256,
                filename=str(info.path),
            )
            for info, sha256 in models.list_models_with_hashes(shared.cmd_opts)
        ]

    async def get_config() -> Any:
        return current_options()

    async def set_config(update: Any, response: Response) -> Any:
        # 1. every value checked (types and ranges by the model, the rest here) before any is applied; a key Serena
        # has no option for was refused by the model, or under lenient is skipped and reported
        skipped = sorted(update.model_extra or {})
        if skipped:
            log.warning("POST /options: unknown options skipped under --compat lenient: %s", ", ".join(skipped))
            response.headers["X-Serena-Skipped-Options"] = ",".join(skipped)
        values = update.model_dump(exclude_unset=True, exclude=set(skipped))
        checked, errors = await run_in_threadpool(check_options, values)
        if errors:
            raise RequestValidationError(errors)
        # 2. applied between generations, so a run's restore never undoes it; a model is loaded first, so one that
        # does not load is refused now instead of failing every later generation
        try:
            await queue.run(apply_options, checked)
        except ModelError as exc:
            raise unprocessable(("sd_model_checkpoint",), " ".join(str(exc).split())) from None
        return current_options()

    set_config.__annotations__["update"] = options_update_model
    app.get(f"{API_PREFIX}/options", response_model=options_model)(get_config)
    app.post(f"{API_PREFIX}/options", response_model=options_model, responses=POST_RESPONSES, dependencies=screened)(
        set_config
    )
    add_client_routes(app, limits, screened)
    return app


def openapi_document(limits: ApiLimits | None = None) -> dict[str, Any]:
    """The app's OpenAPI schema (default limits unless given), for snapshots."""
    return create_app(limits).openapi()


# -- serving -----------------------------------------------------------------------------------
def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (0: any free port) for uvicorn; ApiError in one line when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says
    # IPPROTO_TCP; with proto 0, Nagle's algorithm and delayed ACKs add ~40 ms to every response
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _server(app: FastAPI, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app, lifespan="on", log_level=log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False
    )
    return uvicorn.Server(config)


def serve(
    host: str, port: int, limits: ApiLimits | None = None, *, preload: bool = True, compat: str = "strict"
) -> None:
    """Serve the API until interrupted (Ctrl-C); ApiError when the address cannot be bound."""
    sock = bind_socket(host, port)
    try:
        if preload:
            preload_model()
        log.warning("serving the API on http://%s:%d%s", host, sock.getsockname()[1], API_PREFIX)
        if host not in LOOPBACK_HOSTS:
            log.warning("the API has no authentication: anyone who can reach %s can generate and change options", host)
        _server(create_app(limits, compat), "info").run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def background_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 30.0, log_level: str = "warning"
) -> Iterator[str]:
    """Run `app` under uvicorn in a daemon thread (port 0: any free one); yields its base URL, stops it on exit."""
    sock = bind_socket(host, port)
    server = _server(app, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="serena-api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ApiError(f"the API server on {host} did not start within {startup_timeout:g} s")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
        sock.close()
