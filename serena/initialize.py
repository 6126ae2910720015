"""Start-up: take the start-up options, read the config file, pick the model and load extensions."""

from __future__ import annotations

import logging

from serena import extensions, models, shared
from serena.cmd_args import CmdOpts
from serena.errors import DeviceError

log = logging.getLogger("serena")


def initialize(
    cmd_opts: CmdOpts, *, read_config: bool = True, load_extensions: bool = True
) -> list[extensions.LoadedExtension]:
    """Install `cmd_opts` as shared.cmd_opts; apply config.json and --model; load extensions when asked, and keep
    what was found in shared.extensions (what /sdapi/v1/extensions lists)."""
    if cmd_opts.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DeviceError("--device cuda: no CUDA device is available on this machine")
    shared.cmd_opts = cmd_opts
    shared.device = cmd_opts.device
    if read_config and cmd_opts.config_path.is_file():
        shared.opts.load(cmd_opts.config_path)
    if cmd_opts.model:
        info = models.find_model(cmd_opts.model, cmd_opts)
        shared.opts.set("sd_model_checkpoint", str(info.path) if not info.shipped else info.name)
    if not load_extensions:
        shared.extensions = ()
        return []
    found = extensions.load_extensions(cmd_opts.resolved_extensions_dir, shared.opts.disabled_extensions)
    shared.extensions = tuple(found)
    return found
