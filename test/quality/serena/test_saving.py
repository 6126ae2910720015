"""Saving through the real runtime: where files go, how they are named, and the infotext written into them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import gradient_image, pixels, txt2img

from serena import shared
from serena.errors import InputFileError, OptionError
from serena.images import load_image, read_infotext
from serena.infotext import parse_infotext
from serena.processing import Processed, process_images

FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
NAME_MAX_BYTES = 255  # ext4, xfs, btrfs, tmpfs and APFS all cap a file name at 255 bytes


def generate(**overrides: Any) -> Processed:
    """One run with saving switched on; a single step, since what is saved matters here, not how it looks."""
    return process_images(txt2img(**{"do_not_save_samples": False, "steps": 1, **overrides}))


def default_folder(data_dir: Path) -> Path:
    return data_dir / "outputs" / "txt2img-images"


def names(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def saved_files(processed: Processed) -> list[Path]:
    return [Path(path) for path in processed.saved_paths]


# -- where and under which number --------------------------------------------------------------------


def test_png_is_saved_under_data_dir_as_number_and_seed(data_dir: Path) -> None:
    processed = generate(seed=123)

    folder = default_folder(data_dir)
    assert names(folder) == ["00000-123.png"]
    assert saved_files(processed) == [folder / "00000-123.png"]
    with Image.open(folder / "00000-123.png") as saved:
        assert saved.format == "PNG"
        assert pixels(saved) == pixels(processed.images[0])
    assert pixels(load_image(folder / "00000-123.png")) == pixels(processed.images[0])


def test_numbering_goes_on_from_run_to_run(data_dir: Path) -> None:
    generate(seed=5)
    generate(seed=5)

    assert names(default_folder(data_dir)) == ["00000-5.png", "00001-5.png"]


def test_numbering_continues_after_existing_files(data_dir: Path) -> None:
    folder = default_folder(data_dir)
    folder.mkdir(parents=True)
    (folder / "00041-earlier.png").write_bytes(b"earlier image")
    (folder / "notes.txt").write_text("not numbered")

    generate(seed=1)

    assert names(folder) == ["00041-earlier.png", "00042-1.png", "notes.txt"]
    assert (folder / "00041-earlier.png").read_bytes() == b"earlier image"


def test_outpath_samples_overrides_the_folder(data_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "nested"

    processed = generate(outpath_samples=str(elsewhere))

    assert names(elsewhere) == ["00000-1.png"]
    assert saved_files(processed) == [elsewhere / "00000-1.png"]
    assert not default_folder(data_dir).exists()


def test_outdir_option_is_relative_to_data_dir(data_dir: Path) -> None:
    shared.opts.set("outdir_txt2img", "my-renders")

    generate()

    assert names(data_dir / "my-renders") == ["00000-1.png"]
    assert not default_folder(data_dir).exists()


# -- file name patterns ------------------------------------------------------------------------------


def test_pattern_tokens_expand_to_the_run_values(data_dir: Path) -> None:
    pattern = "[seed]-[steps]-[sampler]-[cfg]-[width]x[height]-[model_name]-[model_hash]-[clip_skip]-[prompt_words]"
    shared.opts.set("samples_filename_pattern", pattern)

    processed = generate(seed=77, steps=2, sampler_name="Euler", prompt='a "red" fox: in/the snow?')

    expected = f"00000-77-2-Euler-7.5-64x64-tiny-sd-{processed.sd_model_hash}-1-a red fox in the snow.png"
    assert names(default_folder(data_dir)) == [expected]


def test_batch_and_generation_number_tokens(data_dir: Path) -> None:
    shared.opts.set("samples_filename_pattern", "[seed]-b[batch_number]-g[generation_number]")

    generate(seed=10, batch_size=2, n_iter=2)

    assert names(default_folder(data_dir)) == [
        "00000-10-b0-g0.png",
        "00001-11-b1-g1.png",
        "00002-12-b0-g2.png",
        "00003-13-b1-g3.png",
    ]


def test_date_tokens_use_the_run_start_time(data_dir: Path) -> None:
    shared.opts.set("samples_filename_pattern", "[date]_[datetime]_[job_timestamp]")

    processed = generate()

    stamp = processed.job_timestamp
    day = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
    assert names(default_folder(data_dir)) == [f"00000-{day}_{stamp}_{stamp}.png"]


def test_prompt_tokens_drop_forbidden_characters(data_dir: Path) -> None:
    shared.opts.set("samples_filename_pattern", "[prompt]~[prompt_spaces]~[negative_prompt]")

    generate(prompt='fox: "red"/grey? <snow>|night\\dawn*', negative_prompt="blur\nry: bad")

    assert names(default_folder(data_dir)) == [
        "00000-fox_redgrey_snownightdawn~fox redgrey snownightdawn~blurry bad.png"
    ]


@pytest.mark.parametrize(
    ("pattern", "prompt"),
    [
        ("[prompt]", "東京の夜景 " * 60),
        ("[prompt]-[prompt_spaces]", "a red fox in the snow " * 12),
    ],
    ids=["multibyte-prompt", "two-long-tokens"],
)
def test_long_prompt_gives_a_file_name_the_filesystem_accepts(data_dir: Path, pattern: str, prompt: str) -> None:
    shared.opts.set("samples_filename_pattern", pattern)

    processed = generate(prompt=prompt)

    (saved,) = saved_files(processed)
    assert saved.is_file()
    assert len(saved.name.encode("utf-8")) <= NAME_MAX_BYTES
    assert saved.name.startswith("00000-")


def test_pattern_that_expands_to_nothing_still_numbers_on(data_dir: Path) -> None:
    # with no negative prompt the pattern expands to "", leaving just the running number
    shared.opts.set("samples_filename_pattern", "[negative_prompt]")

    generate(seed=1)
    generate(seed=2)

    assert names(default_folder(data_dir)) == ["00000.png", "00001.png"]


def test_without_numbers_an_existing_file_is_never_overwritten(data_dir: Path) -> None:
    shared.opts.set("save_images_add_number", False)
    folder = default_folder(data_dir)
    folder.mkdir(parents=True)
    (folder / "1.png").write_bytes(b"earlier image")

    first = generate(seed=1)
    second = generate(seed=1)

    assert saved_files(first) == [folder / "1-1.png"]
    assert saved_files(second) == [folder / "1-2.png"]
    assert names(folder) == ["1-1.png", "1-2.png", "1.png"]
    assert (folder / "1.png").read_bytes() == b"earlier image"


def test_unknown_token_is_rejected_by_opts_set_naming_it() -> None:
    with pytest.raises(OptionError, match=r"\[bogus\]") as raised:
        shared.opts.set("samples_filename_pattern", "[seed]-[bogus]")

    assert "samples_filename_pattern" in str(raised.value)
    assert shared.opts.samples_filename_pattern == "[seed]"


def test_unknown_token_in_override_settings_stops_the_run_before_saving(data_dir: Path) -> None:
    with pytest.raises(OptionError, match=r"\[nope\]"):
        generate(override_settings={"samples_filename_pattern": "[nope]"})

    assert not default_folder(data_dir).exists()
    assert shared.opts.samples_filename_pattern == "[seed]"


def test_pattern_with_a_path_separator_is_rejected() -> None:
    with pytest.raises(OptionError, match="not allowed in file names"):
        shared.opts.set("samples_filename_pattern", "sub/[seed]")


def test_override_settings_pattern_applies_to_that_run_only(data_dir: Path) -> None:
    generate(seed=4, override_settings={"samples_filename_pattern": "fox-[seed]"})
    generate(seed=4)

    assert names(default_folder(data_dir)) == ["00000-fox-4.png", "00001-4.png"]


# -- when nothing is written -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "switch_off",
    [
        {"option": ("samples_save", False)},
        {"override_settings": {"samples_save": False}},
        {"do_not_save_samples": True},
    ],
    ids=["samples_save-option", "samples_save-override", "do_not_save_samples"],
)
def test_saving_switched_off_writes_nothing(data_dir: Path, switch_off: dict[str, Any]) -> None:
    arguments = dict(switch_off)
    if "option" in arguments:
        shared.opts.set(*arguments.pop("option"))

    processed = process_images(txt2img(**{"do_not_save_samples": False, **arguments}))

    assert len(processed.images) == 1
    assert processed.saved_paths == []
    assert not (data_dir / "outputs").exists()


# -- infotext in the files ---------------------------------------------------------------------------


def test_png_parameters_chunk_is_the_infotext_and_parses_back(data_dir: Path) -> None:
    processed = generate(
        prompt='a red fox, "quoted"\nsecond line: 東京', negative_prompt="blurry", seed=321, steps=2, width=72
    )

    (saved,) = saved_files(processed)
    with Image.open(saved) as image:
        text = image.info["parameters"]
    assert text == processed.infotexts[0]
    assert read_infotext(saved) == processed.infotexts[0]
    fields = parse_infotext(text)
    assert fields["Prompt"] == 'a red fox, "quoted"\nsecond line: 東京'
    assert fields["Negative prompt"] == "blurry"
    assert fields["Seed"] == "321"
    assert fields["Steps"] == "2"
    assert fields["Sampler"] == "DDIM"
    assert (fields["Size-1"], fields["Size-2"]) == ("72", "64")
    assert fields["Model hash"] == processed.sd_model_hash
    assert re.fullmatch(r"[0-9a-f]{10}", processed.sd_model_hash)


@pytest.mark.parametrize(("samples_format", "pil_format"), [("jpg", "JPEG"), ("webp", "WEBP")])
def test_jpeg_and_webp_carry_the_infotext(data_dir: Path, samples_format: str, pil_format: str) -> None:
    shared.opts.set("samples_format", samples_format)

    processed = generate(seed=9, prompt="ünïcödé fox, 東京\nline two", negative_prompt="bad: hands")

    (saved,) = saved_files(processed)
    assert saved == default_folder(data_dir) / f"00000-9.{samples_format}"
    with Image.open(saved) as image:
        assert image.format == pil_format
        assert image.size == (64, 64)
    assert read_infotext(saved) == processed.infotexts[0]
    assert parse_infotext(read_infotext(saved) or "")["Negative prompt"] == "bad: hands"


@pytest.mark.parametrize("samples_format", ["png", "jpg", "webp"])
def test_save_infotext_off_writes_no_parameters(data_dir: Path, samples_format: str) -> None:
    shared.opts.set("save_infotext", False)
    shared.opts.set("samples_format", samples_format)

    processed = generate()

    (saved,) = saved_files(processed)
    with Image.open(saved) as image:
        assert "parameters" not in image.info
        assert image.size == (64, 64)
    assert read_infotext(saved) is None
    assert processed.infotexts[0].startswith("a red fox in the snow\n")


def test_batch_of_two_saves_two_files_with_consecutive_seeds(data_dir: Path) -> None:
    processed = generate(seed=500, batch_size=2)

    folder = default_folder(data_dir)
    assert names(folder) == ["00000-500.png", "00001-501.png"]
    for index, (saved, seed) in enumerate(zip(saved_files(processed), (500, 501), strict=True)):
        assert saved == folder / f"{index:05}-{seed}.png"
        text = read_infotext(saved)
        assert text == processed.infotexts[index]
        fields = parse_infotext(text or "")
        assert (fields["Seed"], fields["Batch size"], fields["Batch pos"]) == (str(seed), "2", str(index))
        with Image.open(saved) as image:
            assert pixels(image) == pixels(processed.images[index])
    assert pixels(processed.images[0]) != pixels(processed.images[1])


def test_no_temporary_files_are_left_behind(data_dir: Path) -> None:
    generate(batch_size=3)
    shared.opts.set("samples_format", "jpg")
    generate()

    folder = default_folder(data_dir)
    assert len(names(folder)) == 4
    assert [name for name in names(folder) if name.startswith(".")] == []


# -- reading files back ------------------------------------------------------------------------------


def _missing(folder: Path) -> Path:
    return folder / "missing.png"


def _truncated_png(folder: Path) -> Path:
    source = folder / "whole.png"
    gradient_image().save(source, "PNG")
    data = source.read_bytes()
    truncated = folder / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    return truncated


def _not_an_image(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path


@pytest.mark.parametrize("reader", [read_infotext, load_image], ids=["read_infotext", "load_image"])
@pytest.mark.parametrize("make_path", [_missing, _truncated_png, _not_an_image], ids=["missing", "truncated", "text"])
def test_unreadable_files_raise_input_file_error_naming_the_path(tmp_path: Path, reader: Any, make_path: Any) -> None:
    path = make_path(tmp_path)

    with pytest.raises(InputFileError) as raised:
        reader(path)

    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        (b"UNICODE\0" + "a fox, ünïcode".encode("utf-16-be"), "a fox, ünïcode"),
        (b"ASCII\0\0\0" + b"a fox\0", "a fox"),
        (b"\0" * 8 + "a fox, ünïcode".encode(), "a fox, ünïcode"),  # the undefined code: read as UTF-8
        ("a fox, ünïcode".encode(), "a fox, ünïcode"),  # no character-code prefix at all
        (b"", None),
    ],
    ids=["unicode", "ascii", "undefined", "unprefixed", "empty"],
)
def test_read_infotext_decodes_an_exif_user_comment_by_its_character_code(
    tmp_path: Path, comment: bytes, expected: str | None
) -> None:
    """The same decoding as /sdapi/v1/png-info (serena.images.exif_user_comment serves both)."""
    from serena.images import EXIF_IFD, EXIF_USER_COMMENT

    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = comment
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(path, "JPEG", exif=exif.tobytes())
    assert read_infotext(path) == expected


def test_jpeg_with_an_infotext_too_long_for_exif_keeps_the_image(caplog: pytest.LogCaptureFixture) -> None:
    # ~36K characters of infotext: over JPEG's 64 KiB EXIF segment in UTF-16 (a prompt that long is refused since
    # prompts are encoded whole, so an extension's generation parameter carries the length)
    processed = process_images(
        txt2img(
            steps=1,
            do_not_save_samples=False,
            override_settings={"samples_format": "jpg"},
            extra_generation_params={"Note": "a fox " * 6000},
        )
    )
    [path] = saved_files(processed)
    assert Image.open(path).size == (64, 64)
    assert read_infotext(path) is None
    assert "does not fit in JPEG EXIF" in caplog.text
