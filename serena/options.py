"""The option registry: defaults, types and sections, validated `set`, change callbacks, and the JSON config file."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from serena.errors import ConfigError, OptionError
from serena.fileio import atomic_write_text
from serena.filenames import check_folder, check_pattern, text_problem
from serena.options_snapshot import OptionsSnapshot

log = logging.getLogger("serena")

OptionType = Literal["bool", "int", "float", "str", "list"]


@dataclass(frozen=True)
class OptionInfo:
    """One option: its default, type, section and the values it accepts."""

    default: Any
    label: str
    section: str
    type: OptionType
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None


OPTION_TEMPLATES: dict[str, OptionInfo] = {
    # saving
    "samples_save": OptionInfo(True, "Save every generated image", "saving", "bool"),
    "samples_format": OptionInfo(
        "png", "File format for saved images", "saving", "str", choices=("png", "jpg", "webp")
    ),
    "samples_filename_pattern": OptionInfo(
        "[seed]", "File name pattern for saved images, e.g. [seed]-[prompt_words]", "saving", "str", check=check_pattern
    ),
    "save_images_add_number": OptionInfo(True, "Prefix saved file names with a running number", "saving", "bool"),
    "save_infotext": OptionInfo(
        True, "Write generation parameters into saved images (PNG text chunk / EXIF)", "saving", "bool"
    ),
    "jpeg_quality": OptionInfo(95, "Quality of saved JPEG and WebP images", "saving", "int", minimum=1, maximum=100),
    # paths
    "outdir_txt2img": OptionInfo(
        "outputs/txt2img-images", "Output folder for txt2img (relative to data dir)", "paths", "str", check=check_folder
    ),
    "outdir_img2img": OptionInfo(
        "outputs/img2img-images", "Output folder for img2img (relative to data dir)", "paths", "str", check=check_folder
    ),
    # stable diffusion
    "sd_model_checkpoint": OptionInfo("tiny-sd", "Model: a listed model name or a diffusers folder path", "sd", "str"),
    "CLIP_stop_at_last_layers": OptionInfo(
        1, "Clip skip: stop the text encoder this many layers from its end", "sd", "int", minimum=1, maximum=12
    ),
    "emphasis": OptionInfo(
        "Original",
        "Prompt emphasis: (word:1.2) weights with the mean restored (Original), without it (No norm), parsed but "
        "unweighted (Ignore), or no syntax at all (None)",
        "sd",
        "str",
        choices=("Original", "No norm", "Ignore", "None"),
    ),
    "comma_padding_backtrack": OptionInfo(
        20,
        "Prompts over 75 tokens: end a chunk at a comma this many tokens back at most, rather than mid-phrase",
        "sd",
        "int",
        minimum=0,
        maximum=74,
    ),
    "randn_source": OptionInfo(
        "CPU", "Where initial noise is drawn (CPU keeps seeds device-independent)", "sd", "str", choices=("CPU", "GPU")
    ),
    # sampler parameters
    "eta_ddim": OptionInfo(
        0.0, "Eta for DDIM (0 = deterministic)", "sampler-params", "float", minimum=0.0, maximum=1.0
    ),
    # system
    "num_threads": OptionInfo(
        0, "CPU threads for torch during generation (0 = torch's default)", "system", "int", minimum=0, maximum=256
    ),
    "disabled_extensions": OptionInfo((), "Extensions not to load", "extensions", "list"),
}


def _type_name(value: Any) -> str:
    return type(value).__name__


def _shown(value: Any, limit: int = 80) -> str:
    """`value`'s repr for a message, cut to about `limit` characters: a hostile value must not fill the reply."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class Options:
    """Global options: `opts.key` reads, `opts.set(key, value)` validates and returns whether the value changed."""

    def __init__(self, templates: Mapping[str, OptionInfo] | None = None) -> None:
        labels = dict(OPTION_TEMPLATES if templates is None else templates)
        object.__setattr__(self, "data_labels", labels)
        object.__setattr__(self, "data", {key: info.default for key, info in labels.items()})
        object.__setattr__(self, "_callbacks", defaultdict(list))
        object.__setattr__(self, "_lock", threading.RLock())

    # -- reading -------------------------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        data = object.__getattribute__(self, "data")
        if key in data:
            return data[key]
        raise AttributeError(f"unknown option {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.data_labels:
            self.set(key, value)
            return
        raise AttributeError(f"unknown option {key!r}")

    def __contains__(self, key: object) -> bool:
        return key in self.data_labels

    def info(self, key: str) -> OptionInfo:
        try:
            return self.data_labels[key]
        except KeyError:
            raise OptionError(f"unknown option {key!r}") from None

    def snapshot(self) -> OptionsSnapshot:
        with self._lock:
            return OptionsSnapshot(self.data)

    # -- validation ----------------------------------------------------------------------------
    def validate(self, key: str, value: Any) -> Any:
        """Return `value` in the option's canonical form, or raise OptionError naming the key and the value."""
        info = self.info(key)
        if info.type == "bool":
            if not isinstance(value, bool):
                raise OptionError(f"option {key!r} expects a bool, got {_type_name(value)} {_shown(value)}")
        elif info.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(f"option {key!r} expects an int, got {_type_name(value)} {_shown(value)}")
        elif info.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise OptionError(f"option {key!r} expects a finite number, got {_type_name(value)} {_shown(value)}")
            value = float(value)
        elif info.type == "str":
            if not isinstance(value, str):
                raise OptionError(f"option {key!r} expects a string, got {_type_name(value)} {_shown(value)}")
            if problem := text_problem(value):
                raise OptionError(f"option {key!r}: {_shown(value)} {problem}")
        elif info.type == "list":
            if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
                raise OptionError(f"option {key!r} expects a list of strings, got {_type_name(value)} {_shown(value)}")
            for item in value:
                if problem := text_problem(item):
                    raise OptionError(f"option {key!r}: {_shown(item)} {problem}")
            value = tuple(value)
        if info.choices is not None and value not in info.choices:
            raise OptionError(f"option {key!r}: {_shown(value)} is not one of {', '.join(info.choices)}")
        if info.minimum is not None and value < info.minimum:
            raise OptionError(f"option {key!r}: {_shown(value)} is below the minimum {info.minimum:g}")
        if info.maximum is not None and value > info.maximum:
            raise OptionError(f"option {key!r}: {_shown(value)} is above the maximum {info.maximum:g}")
        if info.check is not None and (problem := info.check(value)):
            raise OptionError(f"option {key!r}: {_shown(value)}: {problem}")
        return value

    def parse_value(self, key: str, text: str) -> Any:
        """Turn command-line text into a validated value of the option's type."""
        info = self.info(key)
        parsed: Any
        if info.type == "bool":
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                parsed = True
            elif lowered in ("0", "false", "no", "off"):
                parsed = False
            else:
                raise OptionError(f"option {key!r} expects true/false, got {text!r}")
        elif info.type == "int":
            try:
                parsed = int(text)
            except ValueError:
                raise OptionError(f"option {key!r} expects an int, got {text!r}") from None
        elif info.type == "float":
            try:
                parsed = float(text)
            except ValueError:
                raise OptionError(f"option {key!r} expects a number, got {text!r}") from None
        elif info.type == "list":
            parsed = tuple(item.strip() for item in text.split(",") if item.strip())
        else:
            parsed = text
        return self.validate(key, parsed)

    # -- writing -------------------------------------------------------------------------------
    def set(self, key: str, value: Any, *, run_callbacks: bool = True) -> bool:
        """Validate and set one option; return whether it changed. A failing change callback reverts it and raises."""
        value = self.validate(key, value)
        with self._lock:
            old = self.data[key]
            if old == value:
                return False
            self.data[key] = value
            if run_callbacks:
                try:
                    for callback in list(self._callbacks[key]):
                        callback()
                except BaseException:
                    self.data[key] = old
                    raise
            return True

    def force_set(self, key: str, value: Any) -> None:
        """Write a value without validation or callbacks: the last resort when restoring an original value."""
        self.info(key)
        with self._lock:
            self.data[key] = value

    def onchange(self, key: str, callback: Callable[[], None], *, call: bool = False) -> None:
        """Call `callback()` after `key` changes through `set`; with call=True also once now."""
        self.info(key)
        self._callbacks[key].append(callback)
        if call:
            callback()

    def reset(self) -> None:
        """Every option back to its default, without callbacks."""
        with self._lock:
            for key, info in self.data_labels.items():
                self.data[key] = info.default

    # -- the config file -----------------------------------------------------------------------
    def load(self, path: Path) -> list[str]:
        """Read a JSON config; unknown keys are warned about, ignored and returned. Bad JSON or values: ConfigError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file ({exc})") from None
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: config must be a JSON object, got {type(loaded).__name__}")
        values: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in loaded.items():
            if key not in self.data_labels:
                unknown.append(key)
                log.warning("%s: unknown option %r ignored", path, key)
                continue
            try:
                values[key] = self.validate(key, value)
            except OptionError as exc:
                raise ConfigError(f"{path}: field {key!r}: {exc}") from None
        # Every value checked first: a bad file changes nothing.
        with self._lock:
            for key, value in values.items():
                self.set(key, value)
        return unknown

    def save_keys(self, path: Path, keys: list[str]) -> None:
        """Write `keys`' current values into the config file, keeping what else it holds; atomically."""
        path = Path(path)
        stored: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{path}: cannot update config file ({exc})") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: config must be a JSON object, got {type(loaded).__name__}")
            stored = loaded
        current = self.snapshot().to_dict()
        for key in keys:
            self.info(key)
            stored[key] = current[key]
        atomic_write_text(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")

    def save(self, path: Path) -> None:
        """Write every option as JSON, atomically."""
        atomic_write_text(Path(path), json.dumps(self.snapshot().to_dict(), indent=2, sort_keys=True) + "\n")
