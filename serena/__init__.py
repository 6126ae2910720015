"""Serena: a compact Stable-Diffusion-style runtime whose behaviour can be proven unchanged across refactors."""

from __future__ import annotations

import os

# Serena never downloads weights or data: every hub client is pinned offline before anything can import one.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
