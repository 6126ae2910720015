"""`temporary_opts`: apply per-run option overrides and always put every original value back."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from serena.errors import OptionsRestoreError
from serena.options import Options

log = logging.getLogger("serena")


@dataclass(frozen=True)
class AppliedOverrides:
    """What `temporary_opts` did: the values it set, the originals it will restore, and the unknown keys it skipped."""

    applied: Mapping[str, Any] = field(default_factory=dict)
    originals: Mapping[str, Any] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


@contextmanager
def temporary_opts(
    overrides: Mapping[str, Any] | None,
    *,
    opts: Options | None = None,
    restore: bool = True,
) -> Iterator[AppliedOverrides]:
    """Set each known option in `overrides`, yield, then restore every original value in `finally`.

    Every value is validated before any is set, so a bad value changes nothing. Unknown keys are skipped with a
    warning and listed in `AppliedOverrides.skipped`. Restoring happens after success, an exception or
    KeyboardInterrupt, in reverse order; a key whose change callback fails on restore still gets its original value
    back (without the callback) and the others are restored regardless. With `restore=False` the values are kept.
    """
    if opts is None:
        from serena import shared

        opts = shared.opts
    overrides = dict(overrides or {})
    skipped = tuple(key for key in overrides if key not in opts.data_labels)
    for key in skipped:
        log.warning("override_settings: unknown option %r skipped", key)
    # 1. validate everything before anything changes
    wanted = {key: opts.validate(key, value) for key, value in overrides.items() if key not in skipped}
    originals: dict[str, Any] = {}
    try:
        # 2. apply, recording each original before it is overwritten so a partial apply is restored too
        for key, value in wanted.items():
            originals[key] = opts.data[key]
            opts.set(key, value)
        yield AppliedOverrides(applied=dict(wanted), originals=dict(originals), skipped=skipped)
    except BaseException as in_flight:
        # 3a. restore after an exception or KeyboardInterrupt, then let it propagate
        if restore:
            _restore(opts, originals, in_flight=in_flight)
        raise
    else:
        # 3b. restore after success
        if restore:
            _restore(opts, originals, in_flight=None)


def _restore(opts: Options, originals: Mapping[str, Any], *, in_flight: BaseException | None) -> None:
    failures: list[str] = []
    interrupt: BaseException | None = None
    for key, original in reversed(list(originals.items())):
        try:
            opts.set(key, original)
        except BaseException as exc:  # noqa: BLE001 - a KeyboardInterrupt here must not leave later keys unrestored
            opts.force_set(key, original)
            if isinstance(exc, Exception):
                failures.append(f"{key} ({type(exc).__name__}: {exc})")
            else:
                interrupt = interrupt or exc
    if failures:
        message = "options restored without their change callbacks: " + "; ".join(failures)
        log.warning(message)
        if in_flight is not None:
            in_flight.add_note(message)
        elif interrupt is None:
            raise OptionsRestoreError(message)
    if interrupt is not None:
        raise interrupt
