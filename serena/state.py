"""Progress and control of the running job: step counters, interrupt and skip, shared with the CLI and the API."""

from __future__ import annotations

import threading
import time
from typing import Any


class State:
    """What the current job is doing; `interrupt()` is honoured at the next denoising step boundary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job = ""
        self.job_no = 0
        self.job_count = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.interrupted = False
        self.skipped = False
        self.time_start: float | None = None

    def begin(self, job: str, job_count: int) -> None:
        with self._lock:
            self.job = job
            self.job_no = 0
            self.job_count = job_count
            self.sampling_step = 0
            self.sampling_steps = 0
            self.interrupted = False
            self.skipped = False
            self.time_start = time.monotonic()

    def next_job(self, sampling_steps: int) -> None:
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0
            self.sampling_steps = sampling_steps
            self.skipped = False

    def set_step(self, step: int) -> None:
        with self._lock:
            self.sampling_step = step

    def end(self) -> None:
        with self._lock:
            self.job = ""
            self.job_count = 0
            self.time_start = None

    def interrupt(self) -> None:
        """Stop the running job after the current denoising step; later batches are not started."""
        with self._lock:
            self.interrupted = True

    def skip(self) -> None:
        """Abandon the current batch after the current step and go on with the next one."""
        with self._lock:
            self.skipped = True

    @property
    def progress(self) -> float:
        """Fraction of the whole job done, 0.0 to 1.0."""
        with self._lock:
            if self.job_count <= 0 or self.sampling_steps <= 0:
                return 0.0
            done_jobs = max(self.job_no - 1, 0) + self.sampling_step / self.sampling_steps
            return min(done_jobs / self.job_count, 1.0)

    def dict(self) -> dict[str, Any]:
        progress = self.progress
        with self._lock:
            return {
                "job": self.job,
                "job_no": self.job_no,
                "job_count": self.job_count,
                "sampling_step": self.sampling_step,
                "sampling_steps": self.sampling_steps,
                "interrupted": self.interrupted,
                "skipped": self.skipped,
                "progress": progress,
            }
