"""`temporary_opts`: apply per-run option overrides and always put every original value back (all-or-nothing too)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
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
    opts = _or_shared(opts)
    overrides = dict(overrides or {})
    skipped = tuple(key for key in overrides if key not in opts.data_labels)
    for key in skipped:
        log.warning("override_settings: unknown option %r skipped", key)
    # 1. validate everything before anything changes
    wanted = {key: opts.validate(key, value) for key, value in overrides.items() if key not in skipped}
    originals: dict[str, Any] = {}
    try:
        # 2. apply, recording each original before it is overwritten so a partial apply is restored too
        _set_each(opts, wanted, originals)
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


# Private so that the seam's public surface (invariants/snapshots/seam-api.txt) stays what extensions know;
# the HTTP API's POST /options is its one caller.
def _apply_options_atomically(
    values: Mapping[str, Any], *, save: Path | None = None, opts: Options | None = None
) -> None:
    """Set every option in `values` and, when `save` names a config file, write those keys into it: all or nothing.

    Every value (and key) is validated before any is set, so a bad one changes nothing. When a change callback, the
    save or a KeyboardInterrupt fails the change part-way, every value already set gets its original back as
    `temporary_opts` restores them (reverse order, force-set when a callback fails, each failure noted on the
    exception that propagates).
    """
    opts = _or_shared(opts)
    # 1. validate everything before anything changes
    wanted = {key: opts.validate(key, value) for key, value in values.items()}
    originals: dict[str, Any] = {}
    try:
        # 2. apply, recording each original before it is overwritten so a partial apply is restored too
        _set_each(opts, wanted, originals)
        # 3. write only these keys: the config file keeps what else it holds
        if save is not None:
            opts.save_keys(save, list(wanted))
    except BaseException as in_flight:
        _restore(opts, originals, in_flight=in_flight)
        raise


def _or_shared(opts: Options | None) -> Options:
    if opts is None:
        from serena import shared

        return shared.opts
    return opts


def _set_each(opts: Options, wanted: Mapping[str, Any], originals: dict[str, Any]) -> None:
    """Set each value in order, recording its original in `originals` just before it is overwritten."""
    for key, value in wanted.items():
        originals[key] = opts.data[key]
        opts.set(key, value)


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
