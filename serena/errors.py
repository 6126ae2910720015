"""The runtime's error classes and the exit codes its command line documents."""

from __future__ import annotations

# Exit codes of the `serena` command, documented in its --help and the README.
EXIT_OK = 0
EXIT_FAILED = 1  # generation or model loading failed at run time
EXIT_USAGE = 2  # bad input: unknown option, bad value, missing or corrupt file, malformed config
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C)


class SerenaError(Exception):
    """Base of every error Serena raises on purpose; `slug` names its area in one-line reports."""

    slug = "error"
    exit_code = EXIT_FAILED


class OptionError(SerenaError, ValueError):
    """An unknown option key or a value of the wrong type or range."""

    slug = "option"
    exit_code = EXIT_USAGE


class InputError(SerenaError, ValueError):
    """A generation argument out of range or of the wrong type; `field` names it (still a ValueError for callers).

    Front ends map it to bad input (exit 2, HTTP 422 at `field`); any other exception from generation is a runtime
    failure (exit 1, HTTP 500)."""

    slug = "input"
    exit_code = EXIT_USAGE

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(SerenaError):
    """A configuration file that cannot be read or holds an invalid value."""

    slug = "config"
    exit_code = EXIT_USAGE


class ModelError(SerenaError):
    """A model that cannot be found, verified or loaded."""

    slug = "model"
    exit_code = EXIT_USAGE


class DeviceError(SerenaError):
    """The requested device is not available on this machine."""

    slug = "device"
    exit_code = EXIT_USAGE


class InputFileError(SerenaError):
    """An input file (such as an init image) that is missing or cannot be decoded."""

    slug = "input"
    exit_code = EXIT_USAGE


class OptionsRestoreError(SerenaError):
    """One or more options could not be restored through their change callbacks (their values were still reset)."""

    slug = "restore"
    exit_code = EXIT_FAILED
