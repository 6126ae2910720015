"""The option registry: defaults, validated set, change callbacks, and the JSON config file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from serena import shared
from serena.errors import ConfigError, OptionError
from serena.options import OPTION_TEMPLATES, Options

REQUIRED = (
    "samples_save",
    "samples_format",
    "outdir_txt2img",
    "outdir_img2img",
    "samples_filename_pattern",
    "save_infotext",
    "CLIP_stop_at_last_layers",
    "eta_ddim",
    "randn_source",
    "sd_model_checkpoint",
    "num_threads",
)


def test_registry_has_the_documented_options_with_defaults_types_and_sections() -> None:
    opts = Options()
    for key in REQUIRED:
        info = opts.info(key)
        assert getattr(opts, key) == info.default
        assert info.section and info.type in ("bool", "int", "float", "str", "list")


def test_set_returns_whether_the_value_changed() -> None:
    opts = Options()
    assert opts.set("eta_ddim", 0.5) is True
    assert opts.set("eta_ddim", 0.5) is False
    assert opts.eta_ddim == 0.5 and opts.data["eta_ddim"] == 0.5


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("samples_save", "yes", "expects a bool"),
        ("CLIP_stop_at_last_layers", 2.0, "expects an int"),
        ("CLIP_stop_at_last_layers", True, "expects an int"),
        ("CLIP_stop_at_last_layers", 0, "below the minimum"),
        ("eta_ddim", 1.5, "above the maximum"),
        ("eta_ddim", float("nan"), "finite number"),
        ("samples_format", "gif", "not one of png, jpg, webp"),
        ("randn_source", "cpu", "not one of CPU, GPU"),
        ("outdir_txt2img", 3, "expects a string"),
        ("samples_filename_pattern", "[seed]-[nope]", "[nope]"),
        ("disabled_extensions", "a,b", "list of strings"),
    ],
)
def test_set_rejects_bad_values_naming_key_and_value(key: str, value: object, fragment: str) -> None:
    opts = Options()
    before = opts.data[key]
    with pytest.raises(OptionError) as caught:
        opts.set(key, value)
    assert key in str(caught.value) and fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert opts.data[key] == before


def test_unknown_key_is_an_error_for_set_and_attribute_access() -> None:
    opts = Options()
    with pytest.raises(OptionError, match="unknown option 'nope'"):
        opts.set("nope", 1)
    with pytest.raises(AttributeError, match="nope"):
        _ = opts.nope
    with pytest.raises(AttributeError):
        opts.nope = 1


def test_attribute_assignment_goes_through_validation() -> None:
    opts = Options()
    opts.eta_ddim = 0.25
    assert opts.eta_ddim == 0.25
    with pytest.raises(OptionError):
        opts.eta_ddim = "x"


def test_int_is_accepted_for_float_options_and_stored_as_float() -> None:
    opts = Options()
    opts.set("eta_ddim", 1)
    assert opts.eta_ddim == 1.0 and isinstance(opts.eta_ddim, float)


def test_onchange_runs_after_a_change_only() -> None:
    opts = Options()
    seen: list[float] = []
    opts.onchange("eta_ddim", lambda: seen.append(opts.eta_ddim))
    opts.set("eta_ddim", 0.3)
    opts.set("eta_ddim", 0.3)
    opts.set("eta_ddim", 0.4, run_callbacks=False)
    assert seen == [0.3]


def test_a_failing_onchange_callback_reverts_the_value_and_raises() -> None:
    opts = Options()

    def broken() -> None:
        raise RuntimeError("callback broke")

    opts.onchange("eta_ddim", broken)
    with pytest.raises(RuntimeError, match="callback broke"):
        opts.set("eta_ddim", 0.9)
    assert opts.eta_ddim == 0.0


def test_parse_value_turns_text_into_typed_values() -> None:
    opts = Options()
    assert opts.parse_value("samples_save", "off") is False
    assert opts.parse_value("samples_save", "True") is True
    assert opts.parse_value("CLIP_stop_at_last_layers", "2") == 2
    assert opts.parse_value("eta_ddim", "0.5") == 0.5
    assert opts.parse_value("disabled_extensions", "a, b,") == ("a", "b")
    for key, text in [("samples_save", "maybe"), ("CLIP_stop_at_last_layers", "two"), ("eta_ddim", "x")]:
        with pytest.raises(OptionError, match=key):
            opts.parse_value(key, text)


def test_save_then_load_round_trips_every_value(tmp_path: Path) -> None:
    opts = Options()
    opts.set("eta_ddim", 0.5)
    opts.set("samples_format", "jpg")
    opts.set("disabled_extensions", ["a", "b"])
    path = tmp_path / "nested" / "config.json"
    opts.save(path)
    assert json.loads(path.read_text())["disabled_extensions"] == ["a", "b"]
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left
    loaded = Options()
    assert loaded.load(path) == []
    assert loaded.data == opts.data


def test_unknown_key_in_config_is_warned_about_and_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"eta_ddim": 0.5, "no_such_option": 1}))
    opts = Options()
    with caplog.at_level(logging.WARNING, logger="serena"):
        unknown = opts.load(path)
    assert unknown == ["no_such_option"]
    assert opts.eta_ddim == 0.5
    assert "no_such_option" in caplog.text and str(path) in caplog.text


def test_malformed_config_names_file_and_line_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "eta_ddim": 0.5,\n  "samples_save": tru\n}')
    opts = Options()
    with pytest.raises(ConfigError) as caught:
        opts.load(path)
    assert f"{path}:3:" in str(caught.value)
    assert opts.eta_ddim == 0.0


def test_bad_value_in_config_names_file_and_field_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"eta_ddim": 0.5, "CLIP_stop_at_last_layers": "two"}))
    opts = Options()
    with pytest.raises(ConfigError) as caught:
        opts.load(path)
    message = str(caught.value)
    assert str(path) in message and "CLIP_stop_at_last_layers" in message and "'two'" in message
    assert opts.eta_ddim == 0.0


@pytest.mark.parametrize("content", ["[1, 2]", '"text"'])
def test_config_that_is_not_an_object_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="JSON object"):
        Options().load(path)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Options().load(tmp_path / "absent.json")


def test_reset_restores_defaults() -> None:
    opts = Options()
    opts.set("eta_ddim", 0.5)
    opts.reset()
    assert opts.data == {key: info.default for key, info in OPTION_TEMPLATES.items()}


def test_shared_opts_is_an_options_instance() -> None:
    assert isinstance(shared.opts, Options)
    assert shared.opts.sd_model_checkpoint == "tiny-sd"


def test_save_keys_updates_only_those_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_format": "jpg", "future_option": 1}))
    opts = Options()
    opts.set("eta_ddim", 0.5)
    opts.set("sd_model_checkpoint", "/somewhere/else")  # e.g. from --model: must not be written
    opts.save_keys(path, ["eta_ddim"])
    assert json.loads(path.read_text()) == {"eta_ddim": 0.5, "future_option": 1, "samples_format": "jpg"}
    opts.save_keys(tmp_path / "fresh.json", ["disabled_extensions"])
    assert json.loads((tmp_path / "fresh.json").read_text()) == {"disabled_extensions": []}


def test_save_keys_refuses_to_overwrite_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{ broken")
    with pytest.raises(ConfigError, match="cannot update config file"):
        Options().save_keys(path, ["eta_ddim"])
    assert path.read_text() == "{ broken"
