"""Shared fixtures: every test starts from default options, an empty data dir and no registered callbacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from serena import script_callbacks, shared
from serena.cmd_args import CmdOpts
from serena.state import State


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run as on a developer's machine, also in CI: commands that refuse to write goldens when CI is set
    are tested with CI set explicitly, where that refusal is what is tested."""
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture(autouse=True)
def fresh_runtime(tmp_path: Path) -> Iterator[Path]:
    """Reset the process-wide runtime around each test; yields the test's data dir."""
    data_dir = tmp_path / "data"
    shared.opts.reset()
    shared.cmd_opts = CmdOpts(data_dir=data_dir)
    shared.state = State()
    shared.device = "cpu"
    shared.extensions = ()
    script_callbacks.clear_callbacks()
    yield data_dir
    shared.extensions = ()
    shared.opts.reset()
    shared.opts._callbacks.clear()
    script_callbacks.clear_callbacks()
    logger = logging.getLogger("serena")
    for handler in list(logger.handlers):
        if getattr(handler, "_serena_cli", False):
            logger.removeHandler(handler)
    logger.propagate = True


@pytest.fixture
def data_dir(fresh_runtime: Path) -> Path:
    return fresh_runtime
