"""The frozen record of what a generation runs with: model, options snapshot, device, state and start-up options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serena.cmd_args import CmdOpts
    from serena.models import SdModel
    from serena.options_snapshot import OptionsSnapshot
    from serena.state import State


@dataclass(frozen=True)
class RuntimeContext:
    """Attached to every processing object as `p.runtime_context` by `process_images_inner`."""

    model: SdModel
    opts_snapshot: OptionsSnapshot
    device: str
    state: State
    cmd_opts: CmdOpts
