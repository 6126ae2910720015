"""`import serena` (and the modules the CLI needs to start) must not import torch or diffusers."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    [
        "serena",
        "serena, serena.cli, serena.processing, serena.options, serena.runtime_utils, serena.models, serena.samplers",
        "serena.initialize, serena.extensions, serena.images, serena.infotext, serena.runtime_context",
    ],
)
def test_import_does_not_load_torch(modules: str) -> None:
    code = (
        f"import sys; import {modules}; "
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules); print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_import_sets_the_hub_offline() -> None:
    code = "import os; os.environ['HF_HUB_OFFLINE'] = '0'; import serena; print(os.environ['HF_HUB_OFFLINE'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"
