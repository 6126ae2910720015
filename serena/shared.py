"""Process-wide state: the options, the start-up options, the job state and the device."""

from __future__ import annotations

from serena.cmd_args import CmdOpts
from serena.options import Options
from serena.state import State

opts = Options()
cmd_opts = CmdOpts()
state = State()
device: str = "cpu"
