"""Divergence trace: the prompt embeddings and the latents after each denoising step, to say where a change began."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import GoldenError

# Relative L2 difference above which a stage counts as diverged. Numeric noise (thread count, 1e-4 jitter) stays
# orders of magnitude below; real changes (prompt, seed, steps, CFG, sampler) are far above.
DIVERGENCE_THRESHOLD = 1e-3


@dataclass
class Trace:
    """Stage name → tensor (float16 copy) for one image of a case, in pipeline order."""

    stages: dict[str, np.ndarray] = field(default_factory=dict)

    def record(self, stage: str, tensor: Any) -> None:
        self.stages[stage] = np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float16)

    def hashes(self) -> dict[str, str]:
        return {stage: hashlib.sha256(array.tobytes()).hexdigest()[:16] for stage, array in self.stages.items()}


@dataclass(frozen=True)
class Divergence:
    """Where two traces first differ beyond numeric noise."""

    stage: str | None  # None: every traced stage agrees (so the difference arose in the VAE decode)
    relative_difference: float
    first_exact_difference: str | None

    def describe(self) -> str:
        if self.stage is None:
            exact = (
                f"; first bit-level difference at {self.first_exact_difference}" if self.first_exact_difference else ""
            )
            return f"prompt embeddings and every latent agree; diverged in the VAE decode{exact}"
        return f"first diverged at {self.stage} (relative difference {self.relative_difference:.3g})"


@dataclass(frozen=True)
class RecordedDivergence:
    """A divergence as a report file keeps it: the stage and its description (the traces stay with the run)."""

    stage: str | None
    description: str

    def describe(self) -> str:
        return self.description


def first_divergence(expected: Trace, actual: Trace) -> Divergence:
    exact = None
    for stage, reference in expected.stages.items():
        current = actual.stages.get(stage)
        if current is None or current.shape != reference.shape:
            return Divergence(stage, float("inf"), exact or stage)
        if exact is None and not np.array_equal(current, reference):
            exact = stage
        reference64 = reference.astype(np.float64)
        norm = float(np.linalg.norm(reference64)) or 1.0
        relative = float(np.linalg.norm(current.astype(np.float64) - reference64)) / norm
        if relative > DIVERGENCE_THRESHOLD:
            return Divergence(stage, relative, exact)
    extra = [stage for stage in actual.stages if stage not in expected.stages]
    if extra:
        return Divergence(extra[0], float("inf"), exact or extra[0])
    return Divergence(None, 0.0, exact)


def save_traces(traces: list[Trace]) -> bytes:
    """All images' traces of a case in one compressed .npz: keys '<image>/<stage>'."""
    arrays = {f"{index}/{stage}": array for index, trace in enumerate(traces) for stage, array in trace.stages.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_traces(path: Path) -> list[Trace]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            traces: dict[int, Trace] = {}
            for key in archive.files:  # npz keeps insertion order, which is pipeline order
                index, _, stage = key.partition("/")
                traces.setdefault(int(index), Trace()).stages[stage] = archive[key]
    except FileNotFoundError:
        raise GoldenError(f"{path}: trace file listed in the manifest is missing") from None
    except (OSError, ValueError, KeyError) as exc:
        raise GoldenError(f"{path}: corrupt trace file ({exc})") from None
    return [traces[index] for index in sorted(traces)]
