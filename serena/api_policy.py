"""What the HTTP API lets a client set: option values checked against the live options, data dir and models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from serena import models, shared
from serena.errors import ModelError, OptionError

# Options naming folders: through the API they must stay inside the data dir, or any client could write anywhere.
PATH_OPTIONS = ("outdir_txt2img", "outdir_img2img")


def check_api_option(key: str, value: Any) -> Any:
    """`value` validated as option `key` plus the API's own rules; OptionError naming the key and value otherwise.

    Through the API, output folders must be relative paths inside the data dir, and sd_model_checkpoint must name a
    model that exists (so a bad name is refused now rather than failing every later generation).
    """
    value = shared.opts.validate(key, value)
    if key in PATH_OPTIONS and _escapes_data_dir(value):
        raise OptionError(
            f"option {key!r}: {value!r}: through the API an output folder must be relative to the data dir"
        )
    if key == "sd_model_checkpoint":
        cmd_opts = shared.cmd_opts
        try:
            models.resolve_model(value, cmd_opts.data_dir, cmd_opts.model)
        except ModelError as exc:
            raise OptionError(f"option {key!r}: {exc}") from None
        except OSError as exc:  # e.g. a folder that cannot be read
            raise OptionError(f"option {key!r}: {value!r}: {exc}") from None
    return value


def override_problems(overrides: Mapping[str, Any]) -> list[str]:
    """What `check_api_option` refuses among a request's override_settings, one message per key.

    Unknown keys pass: the run skips them with a warning and lists them in info.skipped_override_keys.
    """
    problems = []
    for key, value in overrides.items():
        if key in shared.opts:
            try:
                check_api_option(key, value)
            except OptionError as exc:
                problems.append(str(exc))
    return problems


def _escapes_data_dir(folder: str) -> bool:
    return any(path.is_absolute() or ".." in path.parts for path in (PurePosixPath(folder), PureWindowsPath(folder)))
