"""`temporary_opts` and the all-or-nothing option changes behind POST /options: every original comes back on failure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serena import shared
from serena.errors import ConfigError, OptionError, OptionsRestoreError
from serena.options import Options
from serena.runtime_utils import _apply_options_atomically, temporary_opts


def test_overrides_apply_inside_and_are_restored_after_success() -> None:
    opts = Options()
    with temporary_opts({"eta_ddim": 0.5, "samples_format": "jpg"}, opts=opts) as applied:
        assert opts.eta_ddim == 0.5 and opts.samples_format == "jpg"
        assert dict(applied.applied) == {"eta_ddim": 0.5, "samples_format": "jpg"}
        assert dict(applied.originals) == {"eta_ddim": 0.0, "samples_format": "png"}
    assert opts.eta_ddim == 0.0 and opts.samples_format == "png"


def test_defaults_to_the_shared_options() -> None:
    with temporary_opts({"eta_ddim": 0.5}):
        assert shared.opts.eta_ddim == 0.5
    assert shared.opts.eta_ddim == 0.0


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_restored_after_an_exception_or_keyboard_interrupt(error: BaseException) -> None:
    opts = Options()
    with pytest.raises(type(error)), temporary_opts({"eta_ddim": 0.5}, opts=opts):
        raise error
    assert opts.eta_ddim == 0.0


def test_unknown_keys_are_skipped_with_a_warning_and_listed(caplog: pytest.LogCaptureFixture) -> None:
    opts = Options()
    with (
        caplog.at_level(logging.WARNING, logger="serena"),
        temporary_opts({"eta_ddim": 0.5, "no_such": 1}, opts=opts) as applied,
    ):
        assert applied.skipped == ("no_such",)
        assert opts.eta_ddim == 0.5
    assert "no_such" in caplog.text


def test_a_bad_value_changes_nothing() -> None:
    opts = Options()
    with (
        pytest.raises(OptionError, match="CLIP_stop_at_last_layers"),
        temporary_opts({"eta_ddim": 0.5, "CLIP_stop_at_last_layers": "two"}, opts=opts),
    ):
        pytest.fail("the block must not run")
    assert opts.eta_ddim == 0.0


def test_nested_use_restores_each_level() -> None:
    opts = Options()
    with temporary_opts({"eta_ddim": 0.5}, opts=opts):
        with temporary_opts({"eta_ddim": 0.7, "samples_save": False}, opts=opts):
            assert (opts.eta_ddim, opts.samples_save) == (0.7, False)
        assert (opts.eta_ddim, opts.samples_save) == (0.5, True)
    assert opts.eta_ddim == 0.0


def test_restore_false_keeps_the_values() -> None:
    opts = Options()
    with temporary_opts({"eta_ddim": 0.5}, opts=opts, restore=False):
        pass
    assert opts.eta_ddim == 0.5


def test_a_failing_restore_callback_does_not_stop_the_other_keys() -> None:
    opts = Options()
    calls = {"n": 0}

    def fails_on_restore() -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first call is the apply, the second the restore
            raise RuntimeError("cannot restore")

    opts.onchange("eta_ddim", fails_on_restore)
    with (
        pytest.raises(OptionsRestoreError, match="eta_ddim"),
        temporary_opts({"samples_format": "jpg", "eta_ddim": 0.5, "samples_save": False}, opts=opts),
    ):
        pass
    assert (opts.samples_format, opts.eta_ddim, opts.samples_save) == ("png", 0.0, True)


def test_restore_failure_during_an_exception_is_noted_not_masking_it() -> None:
    opts = Options()
    calls = {"n": 0}

    def fails_on_restore() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("cannot restore")

    opts.onchange("eta_ddim", fails_on_restore)
    with pytest.raises(ValueError, match="original") as caught, temporary_opts({"eta_ddim": 0.5}, opts=opts):
        raise ValueError("original")
    assert any("eta_ddim" in note for note in caught.value.__notes__)
    assert opts.eta_ddim == 0.0


def test_keyboard_interrupt_during_restore_still_restores_every_key() -> None:
    opts = Options()
    calls = {"n": 0}

    def interrupted_on_restore() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    opts.onchange("eta_ddim", interrupted_on_restore)
    with pytest.raises(KeyboardInterrupt), temporary_opts({"samples_format": "jpg", "eta_ddim": 0.5}, opts=opts):
        pass
    assert (opts.samples_format, opts.eta_ddim) == ("png", 0.0)


def test_a_failing_apply_restores_what_was_already_applied() -> None:
    opts = Options()

    def refuse() -> None:
        raise RuntimeError("refused")

    opts.onchange("samples_save", refuse)
    with (
        pytest.raises(RuntimeError, match="refused"),
        temporary_opts({"eta_ddim": 0.5, "samples_save": False, "samples_format": "jpg"}, opts=opts),
    ):
        pytest.fail("the block must not run")
    assert (opts.eta_ddim, opts.samples_save, opts.samples_format) == (0.0, True, "png")


# -- property-based -----------------------------------------------------------------------------
VALUES = {
    "samples_save": st.booleans(),
    "save_infotext": st.booleans(),
    "samples_format": st.sampled_from(["png", "jpg", "webp"]),
    "CLIP_stop_at_last_layers": st.integers(1, 12),
    "eta_ddim": st.floats(0.0, 1.0),
    "num_threads": st.integers(0, 8),
    "outdir_txt2img": st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10),
    "randn_source": st.sampled_from(["CPU", "GPU"]),
}
override_dicts = st.dictionaries(
    st.sampled_from([*VALUES, "unknown_a", "unknown_b"]), st.none(), max_size=len(VALUES) + 2
).flatmap(lambda keys: st.fixed_dictionaries({k: VALUES[k] if k in VALUES else st.integers() for k in keys}))
failure_points = st.sampled_from(["none", "body", "body-interrupt", "apply-callback", "restore-callback"])


def _start_options(data: st.DataObject) -> Options:
    opts = Options()
    for key, strategy in VALUES.items():
        if data.draw(st.booleans(), label=f"preset {key}"):
            opts.set(key, data.draw(strategy, label=f"start {key}"))
    return opts


def _run_with_failure(opts: Options, overrides: dict, failure: str, victim: str | None) -> None:
    calls = {"n": 0, "armed": True}
    if victim is not None and failure in ("apply-callback", "restore-callback"):

        def callback() -> None:
            if not calls["armed"]:
                return
            calls["n"] += 1
            if (failure == "apply-callback" and calls["n"] == 1) or (failure == "restore-callback" and calls["n"] == 2):
                raise RuntimeError("injected")

        opts.onchange(victim, callback)
    try:
        with temporary_opts(overrides, opts=opts):
            if failure == "body":
                raise RuntimeError("injected")
            if failure == "body-interrupt":
                raise KeyboardInterrupt
    except (RuntimeError, KeyboardInterrupt, OptionsRestoreError):
        pass
    finally:
        calls["armed"] = False  # the injected failure belongs to this run only


@settings(max_examples=200, deadline=None)
@given(data=st.data(), overrides=override_dicts, failure=failure_points)
def test_options_always_end_exactly_where_they_began(data: st.DataObject, overrides: dict, failure: str) -> None:
    opts = _start_options(data)
    before = dict(opts.data)
    known = [key for key in overrides if key in VALUES]
    victim = data.draw(st.sampled_from(known), label="victim") if known else None
    _run_with_failure(opts, overrides, failure, victim)
    assert opts.data == before


@settings(max_examples=100, deadline=None)
@given(data=st.data(), outer=override_dicts, inner=override_dicts, failure=failure_points)
def test_nested_overrides_end_where_they_began(data: st.DataObject, outer: dict, inner: dict, failure: str) -> None:
    opts = _start_options(data)
    before = dict(opts.data)
    with temporary_opts(outer, opts=opts):
        inside_outer = dict(opts.data)
        known = [key for key in inner if key in VALUES]
        victim = data.draw(st.sampled_from(known), label="victim") if known else None
        _run_with_failure(opts, inner, failure, victim)
        assert opts.data == inside_outer
    assert opts.data == before


def test_restore_false_keeps_the_values_even_when_the_block_raises() -> None:
    opts = Options()
    with pytest.raises(RuntimeError, match="boom"), temporary_opts({"eta_ddim": 0.5}, opts=opts, restore=False):
        raise RuntimeError("boom")
    assert opts.eta_ddim == 0.5


def test_a_failing_and_an_interrupted_restore_still_restore_both_and_raise_the_interrupt() -> None:
    opts = Options()
    calls = {"eta_ddim": 0, "samples_format": 0}

    def make(key: str, error: BaseException):
        def callback() -> None:
            calls[key] += 1
            if calls[key] == 2:  # fail on restore only
                raise error

        return callback

    opts.onchange("eta_ddim", make("eta_ddim", RuntimeError("cannot restore")))
    opts.onchange("samples_format", make("samples_format", KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt), temporary_opts({"eta_ddim": 0.5, "samples_format": "jpg"}, opts=opts):
        pass
    assert (opts.eta_ddim, opts.samples_format) == (0.0, "png")


# -- all-or-nothing changes (the API's POST /options) ------------------------------------------------
def _fails_on_call(number: int, error: BaseException):
    """A change callback that raises `error` on its `number`-th call."""
    calls = {"n": 0}

    def callback() -> None:
        calls["n"] += 1
        if calls["n"] == number:
            raise error

    return callback


def test_apply_atomically_sets_every_value_and_saves_only_those_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jpeg_quality": 80}), encoding="utf-8")
    opts = Options()
    _apply_options_atomically({"eta_ddim": 0.5, "disabled_extensions": ["a"]}, save=config, opts=opts)
    assert (opts.eta_ddim, opts.disabled_extensions) == (0.5, ("a",))
    assert json.loads(config.read_text(encoding="utf-8")) == {
        "disabled_extensions": ["a"],
        "eta_ddim": 0.5,
        "jpeg_quality": 80,
    }


def test_apply_atomically_without_save_writes_nothing(tmp_path: Path) -> None:
    opts = Options()
    _apply_options_atomically({"samples_format": "jpg"}, opts=opts)
    assert opts.samples_format == "jpg"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("values", [{"eta_ddim": 0.5, "jpeg_quality": 0}, {"eta_ddim": 0.5, "no_such": 1}])
def test_apply_atomically_a_bad_value_or_key_changes_nothing(tmp_path: Path, values: dict) -> None:
    opts = Options()
    calls = []
    opts.onchange("eta_ddim", lambda: calls.append("eta_ddim"))
    with pytest.raises(OptionError):
        _apply_options_atomically(values, save=tmp_path / "config.json", opts=opts)
    assert opts.data == Options().data and calls == []
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("error", [RuntimeError("refused"), KeyboardInterrupt()])
def test_apply_atomically_a_failure_midway_restores_what_was_set(tmp_path: Path, error: BaseException) -> None:
    opts = Options()
    opts.onchange("samples_save", _fails_on_call(1, error))
    with pytest.raises(type(error)):
        _apply_options_atomically(
            {"eta_ddim": 0.5, "samples_save": False, "samples_format": "jpg"}, save=tmp_path / "config.json", opts=opts
        )
    assert (opts.eta_ddim, opts.samples_save, opts.samples_format) == (0.0, True, "png")
    assert not (tmp_path / "config.json").exists()


def test_apply_atomically_a_failing_save_restores_every_value(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{not json", encoding="utf-8")
    opts = Options()
    with pytest.raises(ConfigError, match="cannot update config file"):
        _apply_options_atomically({"eta_ddim": 0.5, "samples_format": "jpg"}, save=config, opts=opts)
    assert (opts.eta_ddim, opts.samples_format) == (0.0, "png")
    assert config.read_text(encoding="utf-8") == "{not json"


def test_apply_atomically_a_failing_restore_callback_still_restores_and_is_noted(tmp_path: Path) -> None:
    opts = Options()
    opts.onchange("eta_ddim", _fails_on_call(2, RuntimeError("cannot restore")))  # 1: the apply, 2: the restore
    opts.onchange("samples_save", _fails_on_call(1, RuntimeError("refused")))
    with pytest.raises(RuntimeError, match="refused") as caught:
        _apply_options_atomically(
            {"samples_format": "jpg", "eta_ddim": 0.5, "samples_save": False}, save=tmp_path / "c.json", opts=opts
        )
    assert (opts.samples_format, opts.eta_ddim, opts.samples_save) == ("png", 0.0, True)
    assert any("eta_ddim" in note and "cannot restore" in note for note in caught.value.__notes__)
