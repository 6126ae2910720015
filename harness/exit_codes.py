"""The exit codes of `serena-verify`, in one place."""

from __future__ import annotations

OK = 0  # every check passed (skips allowed unless --strict)
FAILED = 1  # a check failed
USAGE = 2  # usage or configuration error: bad flag, malformed config, corrupt input file
INCONCLUSIVE = 3  # no check failed, but one could not reach a verdict
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

HELP = (
    "Exit codes: 0 passed; 1 a check failed; 2 usage or configuration error; "
    "3 inconclusive (a check could not reach a verdict). --strict turns skipped checks into failures."
)
