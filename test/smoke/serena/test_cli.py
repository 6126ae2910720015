"""The `serena` command line: what it prints, the files it writes and the exit codes it returns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from support import gradient_image, pixels

from serena import errors, shared
from serena.cli import main
from serena.images import read_infotext
from serena.models import TINY_MODEL_DIR

FAST_ARGS = ["--width", "64", "--height", "64", "--steps", "10", "--sampler", "DDIM"]


@pytest.fixture(autouse=True)
def hermetic_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SERENA_* variable from the caller's shell, and relative paths resolve inside the test's folder."""
    for name in list(os.environ):
        if name.startswith("SERENA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run_cli(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run `serena --data-dir DATA_DIR ARGS...` in-process; return (exit code, stdout, stderr)."""
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, err: str, *fragments: str) -> str:
    """The documented usage exit code and exactly one `serena: error` line on stderr holding every fragment."""
    assert code == errors.EXIT_USAGE, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("serena: error"), err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} missing from {lines[0]!r}"
    return lines[0]


def saved_files(data_dir: Path) -> list[Path]:
    return sorted(data_dir.rglob("*.png")) if data_dir.exists() else []


# -- txt2img -----------------------------------------------------------------------------------
def test_txt2img_writes_a_png_and_prints_its_path(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(capsys, data_dir, "txt2img", "-p", "a red fox", *FAST_ARGS, "--seed", "7")

    assert code == errors.EXIT_OK, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1
    path = Path(lines[0])
    assert path.is_file()
    assert path.parent == data_dir / "outputs" / "txt2img-images"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (64, 64)
    infotext = read_infotext(path)
    assert infotext is not None
    assert infotext.startswith("a red fox\n")
    assert "Seed: 7" in infotext and "Sampler: DDIM" in infotext and "Size: 64x64" in infotext


def test_txt2img_same_command_twice_gives_identical_pixels(capsys, data_dir: Path) -> None:
    command = ["txt2img", "-p", "a red fox", *FAST_ARGS, "--seed", "11"]
    first_code, first_out, _ = run_cli(capsys, data_dir, *command)
    second_code, second_out, _ = run_cli(capsys, data_dir, *command)
    other_code, other_out, _ = run_cli(capsys, data_dir, *command[:-1], "12")

    assert first_code == second_code == other_code == errors.EXIT_OK
    first, second, other = Path(first_out.strip()), Path(second_out.strip()), Path(other_out.strip())
    assert len({first, second, other}) == 3, "a second run must not overwrite the first image"
    with Image.open(first) as a, Image.open(second) as b, Image.open(other) as c:
        assert pixels(a) == pixels(b)
        assert pixels(a) != pixels(c), "another seed should give another image"


def test_txt2img_json_prints_the_result_with_all_seeds(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(
        capsys, data_dir, "txt2img", "-p", "a red fox", *FAST_ARGS, "--seed", "5", "--batch-size", "2", "--json"
    )

    assert code == errors.EXIT_OK, err
    result = json.loads(out)
    assert result["all_seeds"] == [5, 6]
    assert result["seed"] == 5
    assert result["sampler_name"] == "DDIM"
    assert (result["width"], result["height"]) == (64, 64)
    assert result["sd_model_name"] == "tiny-sd"
    assert len(result["infotexts"]) == 2
    assert len(result["saved_paths"]) == 2
    assert all(Path(path).is_file() for path in result["saved_paths"])
    assert result["skipped_override_keys"] == []


def test_override_clip_skip_changes_the_image_and_is_not_persisted(capsys, data_dir: Path) -> None:
    command = ["txt2img", "-p", "a red fox", *FAST_ARGS, "--seed", "3", "--json"]
    _, plain_out, _ = run_cli(capsys, data_dir, *command)
    code, skip_out, err = run_cli(capsys, data_dir, *command, "--override", "CLIP_stop_at_last_layers=2")

    assert code == errors.EXIT_OK, err
    plain, skipped = json.loads(plain_out), json.loads(skip_out)
    assert "Clip skip" not in plain["infotexts"][0]
    assert "Clip skip: 2" in skipped["infotexts"][0]
    assert skipped["clip_skip"] == 2
    saved_infotext = read_infotext(Path(skipped["saved_paths"][0]))
    assert saved_infotext is not None and "Clip skip: 2" in saved_infotext
    with Image.open(plain["saved_paths"][0]) as a, Image.open(skipped["saved_paths"][0]) as b:
        assert pixels(a) != pixels(b)

    # the override was for that run only: not in memory, not on disk
    assert shared.opts.CLIP_stop_at_last_layers == 1
    assert not (data_dir / "config.json").exists()
    code, out, _ = run_cli(capsys, data_dir, "options", "get", "CLIP_stop_at_last_layers")
    assert (code, out) == (errors.EXIT_OK, "1\n")


def test_unknown_override_key_is_warned_about_and_listed(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(
        capsys, data_dir, "txt2img", *FAST_ARGS, "--seed", "1", "--json", "--override", "no_such_option=3"
    )

    assert code == errors.EXIT_OK, err
    assert json.loads(out)["skipped_override_keys"] == ["no_such_option"]
    warnings = [line for line in err.splitlines() if line.startswith("serena: warning:")]
    assert len(warnings) == 1
    assert "'no_such_option'" in warnings[0]


# -- errors: one line on stderr, the documented exit code, nothing written -----------------------
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            ["txt2img", *FAST_ARGS[:-1], "Bogus"],
            ["'Bogus'", "Euler, Euler a", "DDIM", "DPM++ 2M", "UniPC"],
            id="unknown-sampler",
        ),
        pytest.param(["txt2img", "--width", "65", *FAST_ARGS[2:]], ["width", "65"], id="width"),
        pytest.param(["txt2img", *FAST_ARGS, "--override", "eta_ddim"], ["--override", "'eta_ddim'"], id="no-equals"),
        pytest.param(
            ["txt2img", *FAST_ARGS, "--override", "CLIP_stop_at_last_layers=two"],
            ["CLIP_stop_at_last_layers", "'two'"],
            id="override-type",
        ),
        pytest.param(
            ["txt2img", *FAST_ARGS, "--override", "CLIP_stop_at_last_layers=40"],
            ["CLIP_stop_at_last_layers", "40"],
            id="override-range",
        ),
        pytest.param(["--precision", "fp16", "txt2img", *FAST_ARGS], ["fp16", "cuda"], id="fp16-on-cpu"),
        pytest.param(["--model", "no-such-model", "txt2img", *FAST_ARGS], ["no-such-model"], id="unknown-model"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(capsys, data_dir: Path, args: list[str], fragments: list[str]) -> None:
    code, out, err = run_cli(capsys, data_dir, *args)

    assert_one_error_line(code, err, *fragments)
    assert out == ""
    assert saved_files(data_dir) == []


def test_unknown_model_is_rejected_before_anything_is_saved(capsys, data_dir: Path) -> None:
    # A mistyped --model must not end up in config.json, where it would break every later run.
    code, _, err = run_cli(capsys, data_dir, "--model", "no-such-model", "options", "set", "eta_ddim", "0.5")

    assert_one_error_line(code, err, "no-such-model")
    assert not (data_dir / "config.json").exists()


def test_device_cuda_without_a_gpu_exits_2(capsys, data_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code, out, err = run_cli(capsys, data_dir, "--device", "cuda", "txt2img", *FAST_ARGS)

    assert_one_error_line(code, err, "cuda")
    assert out == ""


def test_img2img_missing_init_file_names_it(capsys, data_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    code, out, err = run_cli(capsys, data_dir, "img2img", "--init", str(missing), *FAST_ARGS)

    assert_one_error_line(code, err, str(missing), "not found")
    assert out == ""


def test_img2img_corrupt_init_file_names_it(capsys, data_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    code, out, err = run_cli(capsys, data_dir, "img2img", "--init", str(corrupt), *FAST_ARGS)

    assert_one_error_line(code, err, str(corrupt))
    assert out == ""
    assert saved_files(data_dir) == []


def test_img2img_writes_a_png(capsys, data_dir: Path, tmp_path: Path) -> None:
    init = tmp_path / "init.png"
    gradient_image(96, 80).save(init)
    code, out, err = run_cli(capsys, data_dir, "img2img", "--init", str(init), *FAST_ARGS, "--seed", "2")

    assert code == errors.EXIT_OK, err
    path = Path(out.strip())
    assert path.parent == data_dir / "outputs" / "img2img-images"
    with Image.open(path) as image:
        assert image.size == (64, 64)
    assert "Denoising strength: 0.75" in (read_infotext(path) or "")


def test_img2img_with_a_mask_inpaints_and_a_bad_mask_is_named(capsys, data_dir: Path, tmp_path: Path) -> None:
    init, mask, small = tmp_path / "init.png", tmp_path / "mask.png", tmp_path / "small.png"
    gradient_image(96, 80).save(init)
    drawn = Image.new("L", (96, 80), 0)
    drawn.paste(255, (40, 24, 72, 56))
    drawn.save(mask)
    Image.new("L", (32, 32), 255).save(small)
    inpaint = ("--mask-blur", "0", "--inpainting-fill", "1", "--inpaint-full-res-padding", "8")
    code, out, err = run_cli(
        capsys, data_dir, "img2img", "--init", str(init), "--mask", str(mask), *inpaint, *FAST_ARGS
    )

    assert code == errors.EXIT_OK, err
    path = Path(out.strip())
    with Image.open(path) as image:
        assert image.size == (96, 80)  # Only masked (the default) keeps the init image's size
        outside = image.convert("RGB").crop((0, 0, 96, 20))
        assert pixels(outside) == pixels(gradient_image(96, 80).crop((0, 0, 96, 20)))
    infotext = read_infotext(path) or ""
    assert "Masked content: original" in infotext and "Inpaint area: Only masked" in infotext

    code, out, err = run_cli(capsys, data_dir, "img2img", "--init", str(init), "--mask", str(small), *FAST_ARGS)
    assert_one_error_line(code, err, "mask", "32x32", "96x80")
    code, out, err = run_cli(
        capsys, data_dir, "img2img", "--init", str(init), "--mask", str(tmp_path / "none.png"), *FAST_ARGS
    )
    assert_one_error_line(code, err, str(tmp_path / "none.png"), "not found")


def test_malformed_config_json_names_file_and_line(capsys, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    config = data_dir / "config.json"
    config.write_text('{\n  "eta_ddim": 0.1,\n  oops\n}\n', encoding="utf-8")
    code, out, err = run_cli(capsys, data_dir, "txt2img", *FAST_ARGS)

    assert_one_error_line(code, err, f"{config}:3:", "malformed JSON")
    assert out == ""
    assert saved_files(data_dir) == []


def test_bad_value_in_config_json_names_the_field(capsys, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    config = data_dir / "config.json"
    config.write_text(json.dumps({"eta_ddim": "high"}), encoding="utf-8")
    code, out, err = run_cli(capsys, data_dir, "options", "get", "eta_ddim")

    assert_one_error_line(code, err, str(config), "'eta_ddim'", "'high'")
    assert out == ""


# -- options -----------------------------------------------------------------------------------
def test_options_list_shows_every_option(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(capsys, data_dir, "options", "list")

    assert code == errors.EXIT_OK, err
    lines = out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == list(shared.opts.data_labels)
    assert "CLIP_stop_at_last_layers = 1  [sd, int] " in out
    assert 'samples_format = "png"  [saving, str] ' in out


def test_options_list_json_reflects_config_json(capsys, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "config.json").write_text(json.dumps({"eta_ddim": 0.25}), encoding="utf-8")
    code, out, err = run_cli(capsys, data_dir, "options", "list", "--json")

    assert code == errors.EXIT_OK, err
    rows = {row["key"]: row for row in json.loads(out)}
    assert set(rows) == set(shared.opts.data_labels)
    assert rows["eta_ddim"]["value"] == 0.25
    assert rows["eta_ddim"]["default"] == 0.0
    assert rows["samples_format"]["choices"] == ["png", "jpg", "webp"]
    assert rows["disabled_extensions"]["value"] == []


def test_options_get_prints_the_value_as_json(capsys, data_dir: Path) -> None:
    assert run_cli(capsys, data_dir, "options", "get", "samples_format")[:2] == (errors.EXIT_OK, '"png"\n')
    assert run_cli(capsys, data_dir, "options", "get", "samples_save")[:2] == (errors.EXIT_OK, "true\n")
    code, out, err = run_cli(capsys, data_dir, "options", "get", "no_such_option")
    assert_one_error_line(code, err, "'no_such_option'")
    assert out == ""


def test_options_set_persists_to_config_json(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(capsys, data_dir, "options", "set", "eta_ddim", "0.5")
    assert code == errors.EXIT_OK, err
    assert out == "eta_ddim = 0.5\n"
    code, _, err = run_cli(capsys, data_dir, "options", "set", "disabled_extensions", "one, two")
    assert code == errors.EXIT_OK, err

    saved = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
    assert saved["eta_ddim"] == 0.5
    assert saved["disabled_extensions"] == ["one", "two"]
    # a fresh process starts from defaults and reads the file back
    shared.opts.reset()
    assert run_cli(capsys, data_dir, "options", "get", "eta_ddim")[:2] == (errors.EXIT_OK, "0.5\n")


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("CLIP_stop_at_last_layers", "99", ["'CLIP_stop_at_last_layers'", "99", "maximum"]),
        ("samples_save", "maybe", ["'samples_save'", "'maybe'"]),
        ("samples_format", "gif", ["'samples_format'", "'gif'"]),
        ("no_such_option", "1", ["'no_such_option'"]),
    ],
)
def test_options_set_invalid_value_leaves_config_unchanged(
    capsys, data_dir: Path, key: str, value: str, fragments: list[str]
) -> None:
    assert run_cli(capsys, data_dir, "options", "set", "eta_ddim", "0.5")[0] == errors.EXIT_OK
    config = data_dir / "config.json"
    before = config.read_bytes()

    code, out, err = run_cli(capsys, data_dir, "options", "set", key, value)

    assert_one_error_line(code, err, *fragments)
    assert out == ""
    assert config.read_bytes() == before


# -- catalogue ---------------------------------------------------------------------------------
def test_samplers_marks_those_the_tiny_model_cannot_use(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(capsys, data_dir, "samplers")

    assert code == errors.EXIT_OK, err
    by_name = {line.split("  (")[0]: line for line in out.splitlines()}
    for usable in ("Euler", "Euler a", "DDIM", "DPM++ 2M", "UniPC"):
        assert by_name[usable] == usable
    for unusable in ("DPM2", "DPM2 a", "PLMS"):
        assert by_name[unusable] == f"{unusable}  (not for sample-prediction models)"


def test_samplers_json_agrees_with_generation(capsys, data_dir: Path) -> None:
    code, out, _ = run_cli(capsys, data_dir, "samplers", "--json")
    assert code == errors.EXIT_OK
    listing = json.loads(out)
    assert listing["model"] == "tiny-sd"
    assert listing["prediction_type"] == "sample"
    supported = {row["name"]: row["supported"] for row in listing["samplers"]}
    assert supported["PLMS"] is False and supported["DDIM"] is True

    # a sampler listed as unsupported is refused at run time with the same verdict
    code, _, err = run_cli(capsys, data_dir, "txt2img", *FAST_ARGS[:-1], "PLMS", "--no-save")
    assert_one_error_line(code, err, "'PLMS'", "'sample'")


def test_models_lists_tiny_sd_with_a_short_hash(capsys, data_dir: Path) -> None:
    code, out, err = run_cli(capsys, data_dir, "models")
    assert code == errors.EXIT_OK, err
    match = re.fullmatch(r"tiny-sd \[([0-9a-f]{10})\]  (.+)", out.splitlines()[0])
    assert match is not None, out
    assert Path(match.group(2)) == TINY_MODEL_DIR

    code, out, _ = run_cli(capsys, data_dir, "models", "--json")
    assert code == errors.EXIT_OK
    row = json.loads(out)[0]
    assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"])
    assert row["hash"] == row["sha256"][:10] == match.group(1)


def test_help_documents_the_exit_codes(capsys) -> None:
    code = main(["--help"])
    out = capsys.readouterr().out

    assert code == errors.EXIT_OK
    text = " ".join(out.split())
    assert "Exit codes:" in text
    for documented in ("0 success", "1 generation or model loading failed", "2 bad input", "130 interrupted"):
        assert documented in text


# -- saving switched off -----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["options-set", "--no-save"])
def test_nothing_saved_prints_no_path_and_a_note(capsys, data_dir: Path, how: str) -> None:
    extra = []
    if how == "options-set":
        assert run_cli(capsys, data_dir, "options", "set", "samples_save", "false")[0] == errors.EXIT_OK
    else:
        extra = ["--no-save"]
    code, out, err = run_cli(capsys, data_dir, "txt2img", *FAST_ARGS, "--seed", "1", *extra)

    assert code == errors.EXIT_OK, err
    assert out == ""
    assert err.splitlines() == ["serena: note: no files written (samples_save is off or --no-save was given)"]
    assert saved_files(data_dir) == []


# -- the real entry point ----------------------------------------------------------------------
def test_installed_command_runs_end_to_end(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("serena")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "serena"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERENA_")}
    data_dir = tmp_path / "cli-data"

    good = subprocess.run(
        [*command, "--data-dir", str(data_dir), "txt2img", "-p", "a lighthouse", *FAST_ARGS, "--seed", "1234"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    path = Path(good.stdout.strip())
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", (64, 64))

    bad = subprocess.run(
        [*command, "--data-dir", str(data_dir), "txt2img", *FAST_ARGS[:-1], "Bogus"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert bad.returncode == errors.EXIT_USAGE
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    lines = bad.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("serena: error: sampler_name: unknown sampler 'Bogus'")
