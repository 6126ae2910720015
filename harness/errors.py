"""One error base class for the harness, with a slug per area; the CLI prints it as one line."""

from __future__ import annotations

from harness import exit_codes


class HarnessError(Exception):
    """An error the harness raises on purpose: what went wrong, where, and how to fix it, in one line."""

    slug = "harness"
    exit_code = exit_codes.USAGE


class ConfigError(HarnessError):
    slug = "config"


class GoldenError(HarnessError):
    """A golden case file, manifest or image that is missing, malformed or corrupt."""

    slug = "golden"


class LedgerError(HarnessError):
    slug = "ledger"


class InvariantsError(HarnessError):
    slug = "invariants"


class RuntimeFailure(HarnessError):
    """The runtime under test failed to run (as opposed to producing a changed output)."""

    slug = "runtime"
    exit_code = exit_codes.FAILED


class CaseErrored(RuntimeFailure):
    """Generation raised on one golden case: that case's verdict is `errored`, the others still run."""
