"""img2img resize modes in a run: each fits the init image its own way, shows in infotext and reads back."""

from __future__ import annotations

import pytest
from PIL import Image
from support import gradient_image, img2img, pixels

from serena.infotext import infotext_to_params, parse_infotext
from serena.processing import StableDiffusionProcessingImg2Img, process_images


def test_each_resize_mode_gives_its_own_image_of_the_output_size() -> None:
    made = {mode: process_images(img2img(gradient_image(), seed=4, width=96, resize_mode=mode)) for mode in range(4)}
    assert {processed.images[0].size for processed in made.values()} == {(96, 64)}
    assert len({pixels(processed.images[0]) for processed in made.values()}) == 4
    assert "Resize mode" not in made[0].infotexts[0]
    assert parse_infotext(made[1].infotexts[0])["Resize mode"] == "Crop and resize"


def test_just_resize_is_the_init_image_stretched_beforehand() -> None:
    stretched = gradient_image().resize((96, 64), Image.Resampling.LANCZOS)
    direct = process_images(img2img(gradient_image(), seed=4, width=96, resize_mode=0))
    by_hand = process_images(img2img(stretched, seed=4, width=96))
    assert pixels(direct.images[0]) == pixels(by_hand.images[0])


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_pasting_the_infotext_reproduces_a_resized_image(mode: int) -> None:
    original = process_images(img2img(gradient_image(), seed=4, width=96, resize_mode=mode))
    params = infotext_to_params(original.infotexts[0])
    assert params["resize_mode"] == mode
    again = process_images(
        StableDiffusionProcessingImg2Img(**params, init_images=[gradient_image()], do_not_save_samples=True)
    )
    assert pixels(again.images[0]) == pixels(original.images[0])
