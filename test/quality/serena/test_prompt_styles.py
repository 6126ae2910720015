"""Saved prompt styles in a run: applied to every image's prompts, listed in info, refused by name when unknown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support import pixels, txt2img

from serena import shared
from serena.errors import InputError
from serena.infotext import infotext_to_params
from serena.processing import StableDiffusionProcessingTxt2Img, process_images

STYLES_CSV = """name,prompt,negative_prompt
watercolour,"{prompt}, watercolour painting","photo"
dusk,evening light,
"""


@pytest.fixture
def styles_file(tmp_path: Path):
    path = tmp_path / "styles.csv"
    path.write_text(STYLES_CSV, encoding="utf-8")
    saved = shared.cmd_opts
    shared.cmd_opts = dataclasses.replace(saved, styles_file=path)
    try:
        yield path
    finally:
        shared.cmd_opts = saved


def test_styles_shape_every_prompt_and_pasting_the_infotext_reproduces_the_image(styles_file: Path) -> None:
    styled = process_images(
        txt2img(prompt="a fox", negative_prompt="blurry", styles=["watercolour", "dusk"], batch_size=2)
    )
    assert styled.all_prompts == ["a fox, watercolour painting, evening light"] * 2
    assert styled.all_negative_prompts == ["blurry, photo"] * 2
    assert styled.styles == ["watercolour", "dusk"] and styled.prompt == "a fox"
    # the same prompts written out give the same pixels: styles only change the text
    by_hand = process_images(
        txt2img(prompt=styled.all_prompts[0], negative_prompt=styled.all_negative_prompts[0], batch_size=2)
    )
    assert [pixels(i) for i in styled.images] == [pixels(i) for i in by_hand.images]
    # infotext carries the styled prompts, so pasting it needs no styles file
    params = infotext_to_params(styled.infotexts[0])
    assert params["prompt"] == styled.all_prompts[0]
    pasted = process_images(StableDiffusionProcessingTxt2Img(**params, do_not_save_samples=True))
    assert pixels(pasted.images[0]) == pixels(styled.images[0])


def test_an_unknown_style_is_refused_naming_it(styles_file: Path) -> None:
    with pytest.raises(InputError) as caught:
        process_images(txt2img(styles=["watercolour", "neon"]))
    assert caught.value.field == "styles" and "'neon'" in str(caught.value)


def test_styles_must_be_a_list_of_names() -> None:
    with pytest.raises(InputError) as caught:
        txt2img(styles="watercolour").check()
    assert caught.value.field == "styles"


def test_no_styles_reads_no_file(tmp_path: Path) -> None:
    broken = tmp_path / "styles.csv"
    broken.write_bytes(b"\xff\xfe not a csv")
    saved = shared.cmd_opts
    shared.cmd_opts = dataclasses.replace(saved, styles_file=broken)
    try:
        processed = process_images(txt2img(prompt="a fox"))
    finally:
        shared.cmd_opts = saved
    assert processed.all_prompts == ["a fox"] and processed.styles == []
