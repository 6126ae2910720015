"""Extensions: loading them, the callbacks they register, what those callbacks see, and surviving their failures."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

from support import EXAMPLE_EXTENSIONS, txt2img

from serena import models, script_callbacks, shared
from serena.cmd_args import CmdOpts
from serena.extensions import LoadedExtension
from serena.images import read_infotext
from serena.initialize import initialize
from serena.processing import process_images

EXAMPLE = "callback-log"


def load(data_dir: Path, extensions_dir: Path = EXAMPLE_EXTENSIONS) -> dict[str, LoadedExtension]:
    """Start up the way the CLI does, with `extensions_dir`; the loaded extensions by name."""
    return {ext.name: ext for ext in initialize(CmdOpts(data_dir=data_dir, extensions_dir=extensions_dir))}


def write_extension(root: Path, name: str, source: str, script: str = "main.py") -> Path:
    scripts = root / name / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / script).write_text(textwrap.dedent(source), encoding="utf-8")
    return root / name


def copy_example(root: Path) -> None:
    shutil.copytree(EXAMPLE_EXTENSIONS / EXAMPLE, root / EXAMPLE, ignore=shutil.ignore_patterns("__pycache__"))


def logged_events(data_dir: Path) -> list[dict[str, Any]]:
    log_file = data_dir / "callback-log.jsonl"
    return [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]


def test_example_extension_registers_all_six_callbacks(data_dir: Path) -> None:
    loaded = load(data_dir)

    assert list(loaded) == [EXAMPLE]
    assert loaded[EXAMPLE].errors == ()
    assert [script.name for script in loaded[EXAMPLE].scripts] == ["callback_log.py"]
    for name in script_callbacks.CALLBACK_NAMES:
        entries = script_callbacks.registered(name)
        assert [entry.extension for entry in entries] == [EXAMPLE], name
    assert shared.cmd_opts.extensions_dir == EXAMPLE_EXTENSIONS


def test_callbacks_fire_in_order_around_a_saved_image(data_dir: Path) -> None:
    load(data_dir)
    models.model_cache.clear()  # so this run loads the model and model_loaded fires too

    processed = process_images(txt2img(do_not_save_samples=False, seed=21))

    events = logged_events(data_dir)
    assert [event["callback"] for event in events] == [
        "before_process",
        "model_loaded",
        "process",
        "before_image_saved",
        "image_saved",
        "postprocess",
    ]
    by_name = {event["callback"]: event for event in events}
    assert by_name["model_loaded"]["name"] == "tiny-sd"
    assert by_name["model_loaded"]["hash"] == processed.sd_model_hash
    assert by_name["process"]["seeds"] == [21]
    assert by_name["process"]["has_runtime_context"] is True
    assert by_name["before_image_saved"]["has_infotext"] is True
    assert by_name["image_saved"]["filename"] == processed.saved_paths[0]
    assert Path(processed.saved_paths[0]).is_file()
    assert by_name["postprocess"]["images"] == 1


def test_process_callbacks_see_overrides_and_the_global_value_comes_back(data_dir: Path) -> None:
    load(data_dir)

    processed = process_images(txt2img(override_settings={"CLIP_stop_at_last_layers": 2}))

    events = {event["callback"]: event for event in logged_events(data_dir)}
    # before_process runs before the overrides are applied and before the snapshot exists
    assert events["before_process"]["options"] == {
        "global": {"CLIP_stop_at_last_layers": 1, "eta_ddim": 0.0, "samples_format": "png"}
    }
    for name in ("process", "postprocess"):
        seen = events[name]["options"]
        assert seen["global"]["CLIP_stop_at_last_layers"] == 2, name
        assert seen["snapshot"]["CLIP_stop_at_last_layers"] == 2, name
    assert processed.clip_skip == 2
    assert "Clip skip: 2" in processed.infotexts[0]
    assert shared.opts.CLIP_stop_at_last_layers == 1


def test_example_extension_tags_the_infotext(data_dir: Path) -> None:
    load(data_dir)

    processed = process_images(txt2img(do_not_save_samples=False))

    assert "Callback log: on" in processed.infotexts[0]
    saved_infotext = read_infotext(Path(processed.saved_paths[0]))
    assert saved_infotext is not None and "Callback log: on" in saved_infotext


def test_a_raising_callback_does_not_stop_generation(data_dir: Path, tmp_path: Path, caplog) -> None:
    extensions_dir = tmp_path / "extensions"
    write_extension(
        extensions_dir,
        "flaky",
        """
        from serena import script_callbacks

        def explode(*args):
            raise RuntimeError("flaky is broken")

        script_callbacks.on_process(explode)
        script_callbacks.on_before_image_saved(explode)
        """,
    )
    copy_example(extensions_dir)
    load(data_dir, extensions_dir)

    with caplog.at_level(logging.WARNING, logger="serena"):
        processed = process_images(txt2img(do_not_save_samples=False))

    assert len(processed.images) == 1
    assert Path(processed.saved_paths[0]).is_file()
    assert processed.callback_errors == [
        "extension 'flaky': process callback failed: RuntimeError: flaky is broken",
        "extension 'flaky': before_image_saved callback failed: RuntimeError: flaky is broken",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "extension 'flaky': process callback failed: RuntimeError: flaky is broken" in warnings
    # the healthy extension beside it still ran every callback
    callbacks = [event["callback"] for event in logged_events(data_dir)]
    assert callbacks[-4:] == ["process", "before_image_saved", "image_saved", "postprocess"]


def test_a_script_that_fails_to_import_is_reported_and_others_still_load(
    data_dir: Path, tmp_path: Path, caplog
) -> None:
    extensions_dir = tmp_path / "extensions"
    write_extension(extensions_dir, "a-broken", "import serena_no_such_dependency\n", script="needs_dep.py")
    copy_example(extensions_dir)

    with caplog.at_level(logging.WARNING, logger="serena"):
        loaded = load(data_dir, extensions_dir)

    assert list(loaded) == ["a-broken", EXAMPLE]
    (error,) = loaded["a-broken"].errors
    assert "'a-broken'" in error
    assert "needs_dep.py" in error
    assert "ModuleNotFoundError" in error and "serena_no_such_dependency" in error
    assert any(error in record.getMessage() for record in caplog.records)
    assert loaded[EXAMPLE].errors == ()
    for name in script_callbacks.CALLBACK_NAMES:
        assert [entry.extension for entry in script_callbacks.registered(name)] == [EXAMPLE]


def test_disabled_extensions_option_skips_an_extension(data_dir: Path, tmp_path: Path) -> None:
    extensions_dir = tmp_path / "extensions"
    copy_example(extensions_dir)
    write_extension(
        extensions_dir,
        "tagger",
        """
        from serena import script_callbacks

        script_callbacks.on_process(lambda p: p.extra_generation_params.update({"Tagged": "yes"}))
        """,
    )
    data_dir.mkdir(parents=True)
    (data_dir / "config.json").write_text(json.dumps({"disabled_extensions": [EXAMPLE]}), encoding="utf-8")

    loaded = load(data_dir, extensions_dir)
    processed = process_images(txt2img())

    assert [(name, extension.enabled, extension.scripts) for name, extension in loaded.items()] == [
        (EXAMPLE, False, ()),
        ("tagger", True, (extensions_dir / "tagger" / "scripts" / "main.py",)),
    ]
    assert [entry.extension for entry in script_callbacks.registered("process")] == ["tagger"]
    assert "Tagged: yes" in processed.infotexts[0]
    assert "Callback log" not in processed.infotexts[0]
    assert not (data_dir / "callback-log.jsonl").exists()


def test_model_loaded_fires_with_the_model_once_per_load(data_dir: Path) -> None:
    seen: list[Any] = []
    script_callbacks.on_model_loaded(seen.append)
    models.model_cache.clear()

    first = process_images(txt2img())
    process_images(txt2img())  # the model is cached now: no second load

    assert len(seen) == 1
    assert seen[0] is models.model_cache.current
    assert seen[0].name == "tiny-sd"
    assert seen[0].short_hash == first.sd_model_hash


def test_before_image_saved_can_change_the_saved_infotext_and_filename(data_dir: Path, tmp_path: Path) -> None:
    extensions_dir = tmp_path / "extensions"
    write_extension(
        extensions_dir,
        "stamp",
        """
        from pathlib import Path

        from serena import script_callbacks

        def stamp(params):
            params.pnginfo["parameters"] = "stamped by the stamp extension"
            path = Path(params.filename)
            params.filename = str(path.with_name("stamped-" + path.name))

        script_callbacks.on_before_image_saved(stamp)
        """,
    )
    load(data_dir, extensions_dir)

    processed = process_images(txt2img(do_not_save_samples=False))

    saved = Path(processed.saved_paths[0])
    assert saved.name.startswith("stamped-")
    assert saved.is_file()
    assert read_infotext(saved) == "stamped by the stamp extension"
    # the result handed back still describes the generation
    assert "Seed: 1" in processed.infotexts[0]


def test_before_image_saved_can_drop_the_infotext(data_dir: Path) -> None:
    script_callbacks.on_before_image_saved(lambda params: params.pnginfo.pop("parameters"))

    processed = process_images(txt2img(do_not_save_samples=False))

    assert read_infotext(Path(processed.saved_paths[0])) is None


def test_a_script_that_fails_after_registering_leaves_no_callbacks(data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "exts"
    write_extension(
        root,
        "half-done",
        """
        from serena import script_callbacks

        script_callbacks.on_process(lambda p: p.extra_generation_params.update({"Half": "done"}))
        raise RuntimeError("broke after registering")
        """,
    )
    loaded = load(data_dir, root)
    assert "broke after registering" in loaded["half-done"].errors[0]
    assert script_callbacks.registered("process") == []
    processed = process_images(txt2img())
    assert "Half: done" not in processed.infotexts[0]


def test_a_failing_model_loaded_callback_is_reported_on_the_result(data_dir: Path) -> None:
    def broken(model: Any) -> None:
        raise RuntimeError("cannot inspect model")

    script_callbacks.on_model_loaded(broken)
    models.model_cache.clear()
    processed = process_images(txt2img())
    assert len(processed.images) == 1
    assert any(
        "model_loaded callback failed: RuntimeError: cannot inspect model" in e for e in processed.callback_errors
    )
