"""Start-up options (`--model`, `--device`, …) as a frozen record, layered defaults → SERENA_* environment → flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from serena.errors import InputError

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "fp16"]
DEVICES: tuple[str, ...] = ("cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


@dataclass(frozen=True)
class CmdOpts:
    """What the process was started with; read through `shared.cmd_opts`."""

    model: str | None = None
    device: Device = "cpu"
    precision: Precision = "fp32"
    data_dir: Path = field(default_factory=lambda: Path("serena-data"))
    extensions_dir: Path | None = None
    styles_file: Path | None = None
    listen: bool = False
    port: int = 7860

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InputError("--device", f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise InputError(
                "--precision", f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.precision == "fp16" and self.device != "cuda":
            raise InputError(
                "--precision", "--precision fp16 needs --device cuda (half precision on the CPU is not supported)"
            )
        if not 1 <= self.port <= 65535:
            raise InputError("--port", f"--port must be between 1 and 65535, got {self.port}")

    @property
    def resolved_extensions_dir(self) -> Path:
        return self.extensions_dir if self.extensions_dir is not None else self.data_dir / "extensions"

    @property
    def resolved_styles_file(self) -> Path:
        """The saved prompt styles (the web UI's styles.csv): --styles-file, else <data-dir>/styles.csv."""
        return self.styles_file if self.styles_file is not None else self.data_dir / "styles.csv"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config.json"

    @property
    def hash_cache_path(self) -> Path:
        """Where the sha256 of user models is cached (the shipped model's digest is never written there)."""
        return self.data_dir / "cache" / "model-hashes.json"

    def with_values(self, **values: object) -> CmdOpts:
        """A copy with the given fields replaced; None means "keep"."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})


def from_environment(environ: dict[str, str] | None = None) -> CmdOpts:
    """Defaults overlaid with SERENA_MODEL, SERENA_DEVICE, SERENA_PRECISION, SERENA_DATA_DIR, SERENA_EXTENSIONS_DIR,
    SERENA_STYLES_FILE."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    if env.get("SERENA_MODEL"):
        values["model"] = env["SERENA_MODEL"]
    if env.get("SERENA_DEVICE"):
        values["device"] = env["SERENA_DEVICE"]
    if env.get("SERENA_PRECISION"):
        values["precision"] = env["SERENA_PRECISION"]
    if env.get("SERENA_DATA_DIR"):
        values["data_dir"] = Path(env["SERENA_DATA_DIR"])
    if env.get("SERENA_EXTENSIONS_DIR"):
        values["extensions_dir"] = Path(env["SERENA_EXTENSIONS_DIR"])
    if env.get("SERENA_STYLES_FILE"):
        values["styles_file"] = Path(env["SERENA_STYLES_FILE"])
    return CmdOpts(**values)  # type: ignore[arg-type]
