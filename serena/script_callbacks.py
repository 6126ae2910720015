"""Callbacks extensions register (before_process, process, postprocess, before/after image save, model_loaded)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

    from serena.processing import StableDiffusionProcessing

log = logging.getLogger("serena")

CallbackName = Literal["before_process", "process", "postprocess", "before_image_saved", "image_saved", "model_loaded"]
CALLBACK_NAMES: tuple[CallbackName, ...] = (
    "before_process",
    "process",
    "postprocess",
    "before_image_saved",
    "image_saved",
    "model_loaded",
)

# The extension whose scripts are being loaded; registrations made meanwhile are attributed to it.
current_extension: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_extension", default=None)


@dataclass
class ImageSaveParams:
    """Handed to before_image_saved (which may change image, filename or pnginfo) and image_saved."""

    image: Image
    p: StableDiffusionProcessing
    filename: str
    pnginfo: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackEntry:
    extension: str
    callback: Callable[..., Any]


@dataclass(frozen=True)
class CallbackFailure:
    """A callback that raised: which extension, which callback, and the error in one line."""

    extension: str
    callback: str
    error: str

    def __str__(self) -> str:
        return f"extension {self.extension!r}: {self.callback} callback failed: {self.error}"


_registry: dict[str, list[CallbackEntry]] = {name: [] for name in CALLBACK_NAMES}


def _register(name: CallbackName, callback: Callable[..., Any]) -> None:
    extension = current_extension.get() or getattr(callback, "__module__", None) or "unknown"
    _registry[name].append(CallbackEntry(extension, callback))


def on_before_process(callback: Callable[[StableDiffusionProcessing], None]) -> None:
    """callback(p): before the overrides are applied; may change p."""
    _register("before_process", callback)


def on_process(callback: Callable[[StableDiffusionProcessing], None]) -> None:
    """callback(p): inside the run, overrides applied, snapshot and runtime_context set, seeds and prompts resolved."""
    _register("process", callback)


def on_postprocess(callback: Callable[[StableDiffusionProcessing, Any], None]) -> None:
    """callback(p, processed): after every image is made and saved, still inside the overrides."""
    _register("postprocess", callback)


def on_before_image_saved(callback: Callable[[ImageSaveParams], None]) -> None:
    """callback(params): before an image is written; may change params.image, params.filename, params.pnginfo."""
    _register("before_image_saved", callback)


def on_image_saved(callback: Callable[[ImageSaveParams], None]) -> None:
    """callback(params): after an image has been written to params.filename."""
    _register("image_saved", callback)


def on_model_loaded(callback: Callable[[Any], None]) -> None:
    """callback(model): after a model (serena.models.SdModel) is loaded."""
    _register("model_loaded", callback)


def registered(name: CallbackName) -> list[CallbackEntry]:
    return list(_registry[name])


def run_callbacks(name: CallbackName, *args: Any) -> list[CallbackFailure]:
    """Call every callback registered for `name`; a failure is logged with its extension and returned, not raised."""
    failures = []
    for entry in list(_registry[name]):
        try:
            entry.callback(*args)
        except Exception as exc:  # noqa: BLE001 - an extension's bug must not crash generation
            failure = CallbackFailure(entry.extension, name, f"{type(exc).__name__}: {exc}")
            log.warning("%s", failure)
            failures.append(failure)
    return failures


def registry_marks() -> dict[str, int]:
    """How many callbacks each name has now; `rollback(marks)` removes everything registered since."""
    return {name: len(entries) for name, entries in _registry.items()}


def rollback(marks: dict[str, int]) -> None:
    for name, count in marks.items():
        del _registry[name][count:]


def clear_callbacks() -> None:
    for entries in _registry.values():
        entries.clear()
