"""Checks an option value needs beyond its type, made when the value is chosen — `serena options set`, POST
/sdapi/v1/options and override_settings — so a bad choice is refused then, not on every later generation."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serena import models
from serena.errors import InputError, ModelError, OptionError

if TYPE_CHECKING:
    from serena.cmd_args import CmdOpts

# Options naming the folder images are saved in, relative to the data dir.
FOLDER_OPTIONS = ("outdir_txt2img", "outdir_img2img")


def check_choice(key: str, value: Any, cmd_opts: CmdOpts, *, listed_only: bool = False) -> None:
    """OptionError naming `key` when the (type-checked) `value` cannot work: a model that is not there, a title whose
    hash is another model's, or an output folder that a file is in the way of. `listed_only`: a model only by the
    name or title /sdapi/v1/sd-models lists (never a server path), as the API allows."""
    if key == "sd_model_checkpoint":
        try:
            models.find_model(value, cmd_opts, listed_only=listed_only)
        except ModelError as exc:
            raise OptionError(f"option {key!r}: {exc}") from None
        except OSError as exc:  # e.g. a folder that cannot be read
            raise OptionError(f"option {key!r}: {value!r}: {exc.strerror or exc}") from None
    elif key in FOLDER_OPTIONS:
        problem = folder_problem(Path(cmd_opts.data_dir), value)
        if problem:
            raise OptionError(f"option {key!r}: {value!r}: {problem}")


def folder_problem(data_dir: Path, folder: str) -> str | None:
    """Why `data_dir / folder` cannot be created as a folder now, or None; paths in the answer are `folder`'s own."""
    target = data_dir / folder
    relative = Path(folder)
    for depth, path in enumerate([target, *target.parents]):
        try:
            is_dir = path.is_dir()
            exists = is_dir or path.exists()
        except OSError as exc:
            return _os_problem(exc)
        if exists:
            if is_dir:
                return None
            if depth >= len(relative.parts):
                return "the data dir is not a folder"
            if depth == 0:
                return "a file of that name is in the way"
            return f"the file {str(relative.parents[depth - 1])!r} is in the way"
    return None


def make_folder(folder: Path, field: str) -> None:
    """Create `folder` (and its parents); InputError naming `field` when the option that names it cannot be one."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(field, f"option {field!r}: {folder.name!r}: a file is in the way of the folder") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(field, f"option {field!r}: the folder name is too long for the file system") from None
        raise


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the folder name is too long for the file system"
    return exc.strerror or type(exc).__name__
