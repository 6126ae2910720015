"""Layered configuration, written down once: defaults → [tool.serena] in pyproject.toml → SERENA_* → flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class Key:
    """A configuration key: dotted name, Python type and default."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "SERENA_" + self.name.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key("evidence_dir", str, "build/evidence", "Folder the evidence bundle is written to."),
    Key("strict", bool, False, "Treat skipped checks as failures."),
    Key("golden.cases_dir", str, "harness/cases", "Folder of golden case TOML files."),
    Key("golden.goldens_dir", str, "harness/goldens", "Folder of recorded golden sets, one per environment key."),
    Key("golden.phash_bits", int, None, "Override of the golden set's phash16 tolerance (bits of 256)."),
    Key("golden.mean_abs", float, None, "Override of the golden set's mean absolute pixel tolerance (0-255)."),
    Key("golden.warn_unused", bool, False, "Report unused goldens as a warning instead of a failure."),
    Key("golden.num_threads", int, 2, "torch CPU threads for golden runs (pinned: the count changes float bits)."),
    Key("coverage.xml", str, "build/coverage.xml", "coverage.xml read by the coverage gate."),
    Key("coverage.module_floors", dict, {}, "Per-module coverage floors, {path: percent}."),
    Key("audit.ignore", list, [], "pip-audit findings to ignore: [{id, reason, expires = YYYY-MM-DD}]."),
    Key("invariants.registry", str, "invariants/registry.toml", "The invariant registry."),
    Key("invariants.snapshots_dir", str, "invariants/snapshots", "Folder of committed snapshots of public surfaces."),
    Key("ledger.path", str, "docs/serena.md", "The milestone ledger."),
    Key("ledger.milestones_dir", str, "docs/milestones", "Folder of per-milestone artifacts."),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


def _check_type(key: Key, value: Any, where: str) -> Any:
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if key.type is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {key.name} expects {key.type.__name__}, got {value!r}")
    if not isinstance(value, key.type):
        raise ConfigError(f"{where}: {key.name} expects {key.type.__name__}, got {value!r}")
    return value


def _parse_env(key: Key, text: str) -> Any:
    where = f"environment {key.env}"
    if key.type is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expects true/false, got {text!r}")
    if key.type in (int, float):
        try:
            return key.type(text)
        except ValueError:
            raise ConfigError(f"{where}: expects {key.type.__name__}, got {text!r}") from None
    if key.type is str:
        return text
    raise ConfigError(f"{where}: {key.name} can only be set in pyproject.toml")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and dotted not in KEYS_BY_NAME:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@dataclass(frozen=True)
class HarnessConfig:
    """Every setting, resolved; `sources` says where each came from."""

    repo_root: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def path(self, name: str) -> Path:
        """A path setting, relative to the repository root."""
        return (self.repo_root / str(self.values[name])).resolve()


def load_config(
    repo_root: Path, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> HarnessConfig:
    """Resolve every key; a malformed pyproject.toml or an unknown [tool.serena] key is a ConfigError."""
    env = os.environ if environ is None else environ
    values = {key.name: key.default for key in KEYS}
    sources = {key.name: "default" for key in KEYS}
    pyproject = repo_root / "pyproject.toml"
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{pyproject}: malformed TOML: {exc}") from None
        table = document.get("tool", {}).get("serena", {})
        for name, value in _flatten(table).items():
            if name not in KEYS_BY_NAME:
                known = ", ".join(KEYS_BY_NAME)
                raise ConfigError(f"{pyproject}: [tool.serena] unknown key {name!r}; known: {known}")
            values[name] = _check_type(KEYS_BY_NAME[name], value, str(pyproject))
            sources[name] = str(pyproject)
    for key in KEYS:
        if key.env in env:
            values[key.name] = _parse_env(key, env[key.env])
            sources[key.name] = f"${key.env}"
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _check_type(KEYS_BY_NAME[name], value, "command line")
        sources[name] = "flag"
    return HarnessConfig(repo_root=repo_root, values=values, sources=sources)


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding pyproject.toml (the working tree under verification)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise ConfigError(f"{here}: no pyproject.toml here or above; run serena-verify inside the repository")


def repo_relative(path: Path, repo_root: Path) -> str:
    """`path` as shown to a reader: relative to the repository root when inside it, else as given."""
    try:
        return Path(path).resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        return str(path)
