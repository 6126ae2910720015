"""Loading extensions: `<extensions-dir>/<name>/scripts/*.py`, imported at start-up in name order."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from serena import script_callbacks

log = logging.getLogger("serena")


@dataclass(frozen=True)
class LoadedExtension:
    """An extension folder as start-up found it: enabled, its scripts imported (`errors` names any that failed), or
    disabled by the disabled_extensions option, nothing of it imported."""

    name: str
    path: Path
    scripts: tuple[Path, ...]
    errors: tuple[str, ...] = ()
    enabled: bool = True


def _module_name(extension: str, script: Path) -> str:
    safe = re.sub(r"\W", "_", f"{extension}.{script.stem}")
    return f"serena_extensions.{safe}"


def load_extensions(extensions_dir: Path, disabled: tuple[str, ...] = ()) -> list[LoadedExtension]:
    """Import every extension script; one that fails to import is reported with its extension's name and skipped.
    Every extension folder is in the answer, in name order; those in `disabled` with enabled false."""
    extensions_dir = Path(extensions_dir)
    if not extensions_dir.is_dir():
        return []
    loaded = []
    for folder in sorted(p for p in extensions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in disabled:
            log.info("extension %r disabled", folder.name)
            loaded.append(LoadedExtension(folder.name, folder, (), enabled=False))
            continue
        scripts = tuple(sorted((folder / "scripts").glob("*.py")))
        errors = []
        for script in scripts:
            module_name = _module_name(folder.name, script)
            token = script_callbacks.current_extension.set(folder.name)
            marks = script_callbacks.registry_marks()
            try:
                spec = importlib.util.spec_from_file_location(module_name, script)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - one broken extension must not stop start-up
                sys.modules.pop(module_name, None)
                script_callbacks.rollback(marks)  # a half-run script leaves no callbacks behind
                message = f"extension {folder.name!r}: {script.name} failed to load: {type(exc).__name__}: {exc}"
                log.warning("%s", message)
                errors.append(message)
            finally:
                script_callbacks.current_extension.reset(token)
        loaded.append(LoadedExtension(folder.name, folder, scripts, tuple(errors)))
    return loaded
