"""Never a silently different image: web-UI fields Serena does not implement are refused (422 naming them), or under
`--compat lenient` ignored and reported; `eta` is implemented as the web UI does; null means the default."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from serena import shared
from serena.api import background_server, create_app
from serena.api_models import ApiLimits
from serena.cli import main
from serena.infotext import parse_infotext

LIMITS = ApiLimits(max_width=128, max_height=128, max_steps=8, max_batch_size=2, max_n_iter=2, max_payload_bytes=8192)
FAST = {"prompt": "a red fox", "seed": 11, "steps": 4, "sampler_name": "DDIM", "width": 64, "height": 64}
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with background_server(create_app(LIMITS)) as strict, background_server(create_app(LIMITS, "lenient")) as lenient:
        yield {"strict": strict, "lenient": lenient}


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/{path}", json=body, timeout=TIMEOUT, trust_env=False)


def generated(response: httpx.Response) -> tuple[bytes, dict[str, Any]]:
    """(the image's pixels, info) of a 200 response."""
    assert response.status_code == 200, response.text
    body = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    return image.convert("RGB").tobytes(), json.loads(body["info"])


REFUSED = [
    ({"enable_hr": True, "hr_checkpoint_name": "other"}, "hr_checkpoint_name", "hires fix with another checkpoint"),
    ({"firstpass_image": "abc"}, "firstpass_image", "hires fix from a given first pass"),
    ({"restore_faces": True}, "restore_faces", "face restoration"),
    ({"tiling": True}, "tiling", "tiling"),
    ({"script_name": "x/y/z plot"}, "script_name", "scripts"),
    ({"alwayson_scripts": {"controlnet": {"args": [{}]}}}, "alwayson_scripts", "always-on scripts"),
    ({"infotext": "a cat\nSteps: 30"}, "infotext", "parameters from infotext"),
    ({"refiner_checkpoint": "sdxl-refiner", "refiner_switch_at": 0.8}, "refiner_checkpoint", "refiner"),
    ({"s_churn": 0.5}, "s_churn", "s_churn"),
    ({"made_up_field": 1}, "made_up_field", "not a field of the web-UI API"),
    ({"mask": "abc"}, "mask", "not a field of the web-UI API"),  # an img2img field
]


@pytest.mark.parametrize(("extra", "field", "words"), REFUSED)
def test_strict_refuses_what_would_change_the_image(
    servers: dict[str, str], extra: dict[str, Any], field: str, words: str
) -> None:
    response = post(servers["strict"], "txt2img", {**FAST, **extra})
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith(f"{field}: ") and words in message, message


def test_strict_accepts_what_a_client_sends_as_a_no_op(servers: dict[str, str]) -> None:
    plain, _ = generated(post(servers["strict"], "txt2img", FAST))
    no_ops = {
        "enable_hr": False,
        "hr_scale": 2,
        "hr_upscaler": "Latent",
        "denoising_strength": 0.7,
        "styles": [],
        "subseed": -1,
        "subseed_strength": 0,
        "seed_resize_from_h": -1,
        "seed_resize_from_w": -1,
        "restore_faces": False,
        "tiling": False,
        "scheduler": "Automatic",
        "script_name": None,
        "script_args": [],
        "alwayson_scripts": {},
        "do_not_save_grid": True,
        "force_task_id": "abc",
        "s_noise": 1,
        "sampler_index": "Euler",  # sampler_name wins
        # "None" is how the web UI's own client says "no refiner": its switch point then changes nothing
        "refiner_checkpoint": "None",
        "refiner_switch_at": 0.8,
    }
    pixels, info = generated(post(servers["strict"], "txt2img", {**FAST, **no_ops}))
    assert pixels == plain and info["ignored_fields"] == []


def test_lenient_ignores_and_reports(servers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    plain, _ = generated(post(servers["lenient"], "txt2img", FAST))
    extra = {"tiling": True, "restore_faces": True, "made_up_field": 1, "override_settings": {"sd_vae": "x"}}
    pixels, info = generated(post(servers["lenient"], "txt2img", {**FAST, **extra}))
    assert pixels == plain  # the image Serena makes, and the client is told what was ignored
    assert info["ignored_fields"] == ["restore_faces", "tiling", "made_up_field"]
    assert info["skipped_override_keys"] == ["sd_vae"]
    assert "tiling: ignored under --compat lenient" in caplog.text


def test_unknown_options_are_refused_or_skipped_alike_in_options_and_override_settings(
    servers: dict[str, str], data_dir: Any
) -> None:
    strict, lenient = servers["strict"], servers["lenient"]
    refused = post(strict, "txt2img", {**FAST, "override_settings": {"sd_vae": "Automatic"}})
    assert refused.status_code == 422 and refused.json()["message"].startswith("override_settings.sd_vae: ")
    assert "Serena has no option 'sd_vae'" in refused.json()["message"]
    refused = post(strict, "options", {"sd_vae": "Automatic", "jpeg_quality": 80})
    assert refused.status_code == 422 and refused.json()["message"].startswith("sd_vae: ")
    assert shared.opts.jpeg_quality == 95
    accepted = post(lenient, "options", {"sd_vae": "Automatic", "jpeg_quality": 80})
    assert accepted.status_code == 200 and accepted.headers["X-Serena-Skipped-Options"] == "sd_vae"
    assert accepted.json()["jpeg_quality"] == 80 and "sd_vae" not in accepted.json()
    assert json.loads((data_dir / "config.json").read_text()) == {"jpeg_quality": 80}


def test_eta_overrides_eta_ddim_and_shows_in_infotext(servers: dict[str, str]) -> None:
    url = servers["strict"]
    by_option, _ = generated(post(url, "txt2img", {**FAST, "override_settings": {"eta_ddim": 0.5}}))
    by_eta, info = generated(post(url, "txt2img", {**FAST, "eta": 0.5, "override_settings": {"eta_ddim": 0.0}}))
    deterministic, plain_info = generated(post(url, "txt2img", FAST))
    assert by_eta == by_option != deterministic
    assert parse_infotext(info["infotexts"][0])["Eta DDIM"] == "0.5" and info["eta_ddim"] == 0.5
    assert "Eta DDIM" not in parse_infotext(plain_info["infotexts"][0])
    assert generated(post(url, "txt2img", {**FAST, "eta": 0}))[0] == deterministic


def test_eta_for_samplers_that_do_not_use_it(servers: dict[str, str]) -> None:
    url = servers["strict"]
    euler_a = {**FAST, "sampler_name": "Euler a"}
    plain, _ = generated(post(url, "txt2img", euler_a))
    # the ancestral samplers run at eta 1, the web UI's default: 1 is that image, anything else is refused
    assert generated(post(url, "txt2img", {**euler_a, "eta": 1.0}))[0] == plain
    refused = post(url, "txt2img", {**euler_a, "eta": 0.5})
    assert refused.status_code == 422 and refused.json()["message"].startswith("eta: eta 0.5 is not supported")
    # samplers without eta ignore it, as in the web UI
    euler = {**FAST, "sampler_name": "Euler"}
    assert generated(post(url, "txt2img", {**euler, "eta": 0.3}))[0] == generated(post(url, "txt2img", euler))[0]


def test_null_means_the_default_through_the_api(servers: dict[str, str]) -> None:
    plain, _ = generated(post(servers["strict"], "txt2img", FAST))
    nulls = {"negative_prompt": None, "cfg_scale": None, "batch_size": None, "n_iter": None, "eta": None}
    pixels, _ = generated(post(servers["strict"], "txt2img", {**FAST, **nulls}))
    assert pixels == plain


def test_serena_api_refuses_an_unknown_compat_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "--compat", "loose", "--port", "1"]) == 2
    assert "--compat" in capsys.readouterr().err


def test_the_readme_table_lists_every_field_serena_does_not_implement() -> None:
    from support import REPO_ROOT

    from serena.api_models import COMPAT_FIELDS

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    groups: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for name, spec in COMPAT_FIELDS.items():
        groups.setdefault((spec.feature, spec.accepted, spec.modes), []).append(name)
    for (feature, accepted, modes), names in groups.items():
        where = "both" if len(modes) == 2 else modes[0]
        row = f"| {', '.join(f'`{name}`' for name in names)} | {feature} | {where} | {accepted} |"
        assert row in readme, row
    # and no more: a field Serena implements leaves the table
    table = readme.split("| field | web-UI feature | endpoint | accepted (no effect) |")[1].split("\n\n")[0]
    listed = set(re.findall(r"`([a-z_]+)`", table))
    assert listed == set(COMPAT_FIELDS)
