"""What the HTTP API lets a client set: option values checked against the live options, data dir and models."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from serena import shared
from serena.errors import OptionError
from serena.option_checks import FOLDER_OPTIONS, check_choice


def check_api_option(key: str, value: Any) -> Any:
    """`value` validated as option `key` plus the API's own rules; OptionError naming the key and value otherwise.

    Through the API, output folders must be relative paths inside the data dir that a file is not in the way of, and
    sd_model_checkpoint must be a name or title /sdapi/v1/sd-models lists (so a bad choice is refused now rather than
    failing every later generation, and no answer tells a client which folders exist on the server).
    """
    value = shared.opts.validate(key, value)
    if key in FOLDER_OPTIONS and _escapes_data_dir(value):
        raise OptionError(
            f"option {key!r}: {value!r}: through the API an output folder must be relative to the data dir"
        )
    check_choice(key, value, shared.cmd_opts, listed_only=True)
    return value


def _escapes_data_dir(folder: str) -> bool:
    return any(path.is_absolute() or ".." in path.parts for path in (PurePosixPath(folder), PureWindowsPath(folder)))
