"""Process-wide state: the options, the start-up options, the job state, the device and the extensions start-up
found."""

from __future__ import annotations

from typing import TYPE_CHECKING

from serena.cmd_args import CmdOpts
from serena.options import Options
from serena.state import State

if TYPE_CHECKING:
    from serena.extensions import LoadedExtension

opts = Options()
cmd_opts = CmdOpts()
state = State()
device: str = "cpu"
extensions: tuple[LoadedExtension, ...] = ()  # set by initialize(); a process that did not load any has none
