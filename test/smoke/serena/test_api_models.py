"""The HTTP API without a server: limits, request validation, option checks, image decoding and the OpenAPI schema."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from support import gradient_image

from serena import shared
from serena.api import (
    ApiError,
    bind_socket,
    create_app,
    decode_image,
    field_name,
    openapi_document,
    override_errors,
    response_schemas,
)
from serena.api_models import ApiLimits, options_models, request_models
from serena.api_policy import check_api_option
from serena.cli import main
from serena.errors import OptionError

SMALL = ApiLimits(max_width=256, max_height=128, max_steps=30, max_batch_size=2, max_n_iter=3, max_payload_bytes=4096)


def png_base64(image: Any = None, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    (image or gradient_image(16, 16)).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def error_fields(exc: ValidationError) -> list[str]:
    return [field_name(error["loc"]) for error in exc.errors()]


# -- limits ------------------------------------------------------------------------------------
def test_limits_have_documented_defaults() -> None:
    limits = ApiLimits()
    assert (limits.max_width, limits.max_height, limits.max_steps) == (2048, 2048, 150)
    assert (limits.max_batch_size, limits.max_n_iter, limits.max_payload_bytes) == (8, 16, 16 * 1024 * 1024)
    assert limits.max_request_bytes == limits.max_payload_bytes + 1024 * 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_steps", 0), ("max_steps", 1001), ("max_width", 4096), ("max_height", 32), ("max_batch_size", True)],
)
def test_limits_out_of_range_are_refused_naming_the_limit(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^API limit {field} must be an integer from \d+ to \d+, got {value!r}$"):
        ApiLimits(**{field: value})


def test_limits_layer_environment_then_flags() -> None:
    env = {"SERENA_API_MAX_STEPS": " 40 ", "SERENA_API_MAX_WIDTH": "512", "SERENA_API_MAX_N_ITER": ""}
    limits = ApiLimits.from_environment(env)
    assert (limits.max_steps, limits.max_width, limits.max_n_iter) == (40, 512, 16)
    flagged = limits.with_values(max_steps=10, max_width=None)
    assert (flagged.max_steps, flagged.max_width) == (10, 512)


def test_limits_from_a_bad_environment_name_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^SERENA_API_MAX_BATCH_SIZE must be a whole number, got 'eight'$"):
        ApiLimits.from_environment({"SERENA_API_MAX_BATCH_SIZE": "eight"})
    with pytest.raises(ValueError, match=r"max_payload_bytes .* \(from the SERENA_API_\* environment\)$"):
        ApiLimits.from_environment({"SERENA_API_MAX_PAYLOAD_BYTES": "10"})


# -- requests ----------------------------------------------------------------------------------
def test_request_defaults_fit_the_limits() -> None:
    request = request_models(SMALL).txt2img()
    assert (request.width, request.height, request.steps) == (256, 128, 20)
    assert request.send_images is True and request.save_images is False
    args = request.processing_args()
    assert args["sampler_name"] == "Euler a" and args["do_not_save_samples"] is True
    assert args["override_settings"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"width": 65}, "width"),
        ({"width": 264}, "width"),
        ({"height": 136}, "height"),
        ({"steps": 0}, "steps"),
        ({"steps": 31}, "steps"),
        ({"batch_size": 3}, "batch_size"),
        ({"n_iter": 4}, "n_iter"),
        ({"cfg_scale": -0.5}, "cfg_scale"),
        ({"cfg_scale": float("nan")}, "cfg_scale"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"prompt": 5}, "prompt"),
        ({"sampler_name": "Nope"}, "sampler_name"),
        ({"sampler_index": "Nope"}, "sampler_index"),
    ],
)
def test_bad_txt2img_fields_are_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request_models(SMALL).txt2img.model_validate(body)
    assert error_fields(caught.value) == [field]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLIP_stop_at_last_layers", "2"),
        ("outdir_txt2img", "/etc"),
        ("outdir_img2img", "../../elsewhere"),
        ("sd_model_checkpoint", "no-such-model"),
        ("samples_filename_pattern", "[nope]"),
    ],
)
def test_bad_override_settings_are_named_by_key(key: str, value: Any) -> None:
    lenient = override_errors({key: value, "not_an_option": {"skipped": True}, "jpeg_quality": 90}, lenient=True)
    assert [error["loc"] for error in lenient] == [("body", "override_settings", key)]
    assert key in lenient[0]["msg"]
    strict = override_errors({key: value, "not_an_option": {"skipped": True}, "jpeg_quality": 90})
    assert [error["loc"][-1] for error in strict] == [key, "not_an_option"]
    assert "Serena has no option 'not_an_option'" in strict[1]["msg"]


def test_sampler_index_is_the_fallback_for_sampler_name() -> None:
    model = request_models(SMALL).txt2img
    assert model.model_validate({"sampler_index": "k_euler"}).processing_args()["sampler_name"] == "k_euler"
    both = model.model_validate({"sampler_name": "DDIM", "sampler_index": "Euler"})
    assert both.processing_args()["sampler_name"] == "DDIM"


def test_web_ui_fields_serena_does_not_implement_are_found_unless_they_are_no_ops() -> None:
    models = request_models(SMALL)
    no_ops = {
        "enable_hr": False,
        "hr_checkpoint_name": "other-model",  # no effect while enable_hr is off
        "firstphase_width": 512,
        "alwayson_scripts": {},
        "s_noise": 1.0,
        "force_task_id": "task-1",
        "restore_faces": None,
    }
    assert models.txt2img.model_validate(no_ops).unsupported_fields() == []
    changing = {
        "enable_hr": True,
        "hr_checkpoint_name": "other-model",
        "firstpass_image": "abc",
        "alwayson_scripts": {"controlnet": {"args": []}},
        "tiling": True,
        "made_up_field": 1,
    }
    request = models.txt2img.model_validate({**changing, "override_settings": {"not_an_option": 1}})
    found = dict(request.unsupported_fields())
    assert set(found) == set(changing) - {"enable_hr"}
    assert found["hr_checkpoint_name"] == (
        "not supported by Serena (hires fix with another checkpoint); accepted: "
        'null, "" or "Use same checkpoint", or any while enable_hr is off'
    )
    assert found["made_up_field"] == "not a field of the web-UI API"
    assert "made_up_field" not in request.echo() and request.echo()["enable_hr"] is True
    assert request.processing_args()["override_settings"] == {"not_an_option": 1}
    img2img = models.img2img.model_validate(
        {
            "init_images": ["x"],
            "mask": "abc",
            "mask_blur": 4,
            "inpainting_fill": 1,
            "resize_mode": 1,
            "latent_mask": "m",
        }
    )
    # inpainting is implemented; a separate latent mask is not
    assert [name for name, _ in img2img.unsupported_fields()] == ["latent_mask"]
    assert img2img.resize_mode == 1
    args = img2img.processing_args()
    assert (args["mask_blur"], args["inpainting_fill"], args["inpaint_full_res"]) == (4, 1, True)
    assert "mask" not in args  # the endpoint decodes it
    # txt2img's own fields are not img2img's and the reverse: an img2img field sent to txt2img is unknown
    assert dict(models.txt2img.model_validate({"mask": "abc"}).unsupported_fields()) == {
        "mask": "not a field of the web-UI API"
    }


def test_implemented_web_ui_fields_reach_processing() -> None:
    fields = {
        "styles": ["cinematic", "film grain"],
        "scheduler": "Karras",
        "subseed": 1234,
        "subseed_strength": 0.5,
        "seed_resize_from_w": 48,
        "seed_resize_from_h": 56,
    }
    request = request_models(SMALL).txt2img.model_validate(fields)
    assert request.unsupported_fields() == []
    assert {name: request.processing_args()[name] for name in fields} == fields
    # null means the default, as for every other field
    defaults = request_models(SMALL).txt2img.model_validate(dict.fromkeys(fields)).processing_args()
    assert {name: defaults[name] for name in fields} == {
        "styles": [],
        "scheduler": "Automatic",
        "subseed": -1,
        "subseed_strength": 0.0,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scheduler", "Polyexponential", "diffusers cannot compute"),
        ("scheduler", "Wobbly", "is not a schedule type"),
        ("subseed_strength", 1.5, "less than or equal to 1"),
        ("subseed", -2, "greater than or equal to -1"),
    ],
)
def test_implemented_web_ui_fields_refuse_bad_values(field: str, value: object, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        request_models(SMALL).txt2img.model_validate({field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and message in error["msg"]


def test_null_means_the_default() -> None:
    request = request_models(SMALL).txt2img.model_validate(
        {"prompt": None, "steps": None, "seed": None, "width": None, "send_images": None, "eta": None}
    )
    args = request.processing_args()
    assert args["prompt"] == "" and args["steps"] == 20 and args["seed"] == -1 and args["width"] == 256
    assert args["eta"] is None and request.send_images is True
    img2img = request_models(SMALL).img2img.model_validate({"init_images": ["x"], "denoising_strength": None})
    assert img2img.denoising_strength == 0.75


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "init_images"),
        ({"init_images": []}, "init_images"),
        ({"init_images": ["x" * 4097]}, "init_images[0]"),
        ({"init_images": ["x" * 3000, "y" * 3000]}, "init_images"),
        ({"init_images": ["x"], "denoising_strength": 0}, "denoising_strength"),
        ({"init_images": ["x"], "denoising_strength": 0.04}, "denoising_strength"),  # 20 steps x 0.04: no step
    ],
)
def test_bad_img2img_fields_are_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request_models(SMALL).img2img.model_validate(body)
    assert error_fields(caught.value) == [field]
    if field == "init_images" and body.get("init_images"):
        assert "init_images[1]" in caught.value.errors()[0]["msg"] and "max_payload_bytes" in str(caught.value)


# -- options -----------------------------------------------------------------------------------
def test_options_models_cover_every_option_strictly() -> None:
    options, update = options_models()
    assert set(options.model_fields) == set(shared.opts.data_labels)
    assert update.model_validate({"eta_ddim": 1}).model_dump(exclude_unset=True) == {"eta_ddim": 1.0}
    for bad in ({"jpeg_quality": "90"}, {"samples_save": 1}, {"samples_format": "gif"}, {"jpeg_quality": None}):
        with pytest.raises(ValidationError):
            update.model_validate(bad)
    with pytest.raises(ValidationError) as caught:
        update.model_validate({"eta_ddim": 0.1, "no_such_option": 1})
    assert error_fields(caught.value) == ["no_such_option"]


def test_api_option_checks_refuse_paths_outside_the_data_dir_and_unknown_models() -> None:
    assert check_api_option("outdir_txt2img", "elsewhere/txt2img") == "elsewhere/txt2img"
    assert check_api_option("sd_model_checkpoint", "tiny-sd") == "tiny-sd"
    for key, value in [
        ("outdir_txt2img", "/tmp/x"),
        ("outdir_img2img", "a/../../b"),
        ("outdir_img2img", "C:\\Windows"),
        ("sd_model_checkpoint", "nope"),
        ("sd_model_checkpoint", "~no-such-user-here/model"),
    ]:
        with pytest.raises(OptionError, match=key if key.startswith("outdir") else "sd_model_checkpoint|no model"):
            check_api_option(key, value)


# -- images ------------------------------------------------------------------------------------
def test_decode_image_accepts_base64_and_data_urls() -> None:
    encoded = png_base64()
    plain = decode_image(encoded, 10_000)
    assert plain.size == (16, 16) and plain.mode == "RGB"
    assert decode_image(f"data:image/png;base64,{encoded}", 10_000).tobytes() == plain.tobytes()
    wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
    assert decode_image(wrapped, 10_000).tobytes() == plain.tobytes()
    assert decode_image(png_base64(fmt="JPEG"), 10_000).size == (16, 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "not valid base64"),
        ("ünïcode", "not valid base64"),
        (base64.b64encode(b"just some bytes").decode(), "not a decodable"),
        (base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n").decode(), "not a decodable"),
        ("data:image/png,abc", "data: URL must carry base64"),
    ],
)
def test_decode_image_refuses_what_is_not_an_image(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_image(text, 10_000)


def test_decode_image_refuses_too_many_pixels_before_decoding_them() -> None:
    with pytest.raises(ValueError, match="16x16 pixels is over the limit of 100 pixels"):
        decode_image(png_base64(), 100)


# -- schema ------------------------------------------------------------------------------------
def test_openapi_document_lists_the_endpoints_and_states_the_limits() -> None:
    document = openapi_document()
    assert set(document["paths"]) == {
        f"/sdapi/v1/{name}"
        for name in (
            "txt2img",
            "img2img",
            "options",
            "samplers",
            "sd-models",
            "progress",
            "interrupt",
            "skip",
            # what clients call when they connect (serena/api_routes.py)
            "schedulers",
            "upscalers",
            "latent-upscale-modes",
            "prompt-styles",
            "sd-vae",
            "loras",
            "hypernetworks",
            "face-restorers",
            "realesrgan-models",
            "embeddings",
            "scripts",
            "script-info",
            "extensions",
            "cmd-flags",
            "memory",
            "png-info",
            "refresh-checkpoints",
            "refresh-vae",
            "refresh-loras",
        )
    }
    assert set(document["paths"]["/sdapi/v1/options"]) == {"get", "post"}
    schemas = document["components"]["schemas"]
    steps = schemas["StableDiffusionTxt2ImgProcessingAPI"]["properties"]["steps"]["anyOf"]
    assert steps[0]["maximum"] == 150 and steps[1] == {"type": "null"}  # null means the default
    small = openapi_document(SMALL)["components"]["schemas"]["StableDiffusionImg2ImgProcessingAPI"]["properties"]
    assert small["width"]["anyOf"][0]["maximum"] == 256 and small["width"]["anyOf"][0]["multipleOf"] == 8
    assert json.dumps(document, sort_keys=True) == json.dumps(openapi_document(), sort_keys=True)


def test_response_schemas_have_images_parameters_and_info() -> None:
    for schema in response_schemas().values():
        assert schema["required"] == ["images", "parameters", "info"]
        assert schema["properties"]["images"]["items"] == {"type": "string"}


def test_field_names_read_like_paths() -> None:
    assert field_name(("body", "init_images", 2)) == "init_images[2]"
    assert field_name(("body", "override_settings", "eta_ddim")) == "override_settings.eta_ddim"
    assert field_name(("body",)) == "body"
    assert field_name(("body", 7)) == "body[7]"
    assert field_name(("query", "skip_current_image")) == "skip_current_image"


# -- the app in-process (no server, no generation) --------------------------------------------
class InProcessClient:
    """Requests straight into the ASGI app: no socket, no server."""

    def __init__(self) -> None:
        self.app = create_app(SMALL)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serena.test") as client:
                return await client.post(path, **kwargs)

        return asyncio.run(send())


@pytest.fixture
def app_client() -> InProcessClient:
    return InProcessClient()


def test_a_422_names_every_bad_field_in_one_line(app_client: InProcessClient) -> None:
    response = app_client.post("/sdapi/v1/txt2img", json={"width": 65, "steps": 31})
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == (
        "steps: Input should be less than or equal to 30; width: Input should be a multiple of 8"
    )
    assert [item["loc"] for item in body["detail"]] == [["body", "steps"], ["body", "width"]]


def test_bad_init_images_are_named_by_index(app_client: InProcessClient) -> None:
    response = app_client.post("/sdapi/v1/img2img", json={"init_images": [png_base64(), "bm90IGFuIGltYWdl"]})
    assert response.status_code == 422
    assert response.json()["message"].startswith("init_images[1]: not a decodable")


def test_a_body_over_the_limit_is_refused_before_parsing(app_client: InProcessClient) -> None:
    response = app_client.post("/sdapi/v1/img2img", content=b"{" + b" " * SMALL.max_request_bytes + b"}")
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


def test_posting_options_applies_nothing_when_one_key_is_bad(app_client: InProcessClient, data_dir: Path) -> None:
    response = app_client.post("/sdapi/v1/options", json={"eta_ddim": 0.5, "outdir_txt2img": "/etc"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("outdir_txt2img: option 'outdir_txt2img'")
    assert shared.opts.eta_ddim == 0.0
    assert not (data_dir / "config.json").exists()


def test_posting_options_applies_and_saves_them(app_client: InProcessClient, data_dir: Path) -> None:
    response = app_client.post("/sdapi/v1/options", json={"eta_ddim": 0.5, "disabled_extensions": ["a"]})
    assert response.status_code == 200
    assert response.json()["eta_ddim"] == 0.5 and response.json()["disabled_extensions"] == ["a"]
    assert shared.opts.eta_ddim == 0.5
    assert json.loads((data_dir / "config.json").read_text()) == {"disabled_extensions": ["a"], "eta_ddim": 0.5}


# -- wiring ------------------------------------------------------------------------------------
def test_importing_the_api_does_not_load_torch() -> None:
    code = (
        "import sys; import serena.api; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_serena_api_refuses_a_bad_limit_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("SERENA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert main(["--data-dir", str(tmp_path / "data"), "api", "--max-steps", "5000"]) == 2
    assert capsys.readouterr().err == "serena: error: API limit max_steps must be an integer from 1 to 1000, got 5000\n"
    monkeypatch.setenv("SERENA_API_MAX_WIDTH", "wide")
    assert main(["--data-dir", str(tmp_path / "data"), "api"]) == 2
    assert capsys.readouterr().err == "serena: error: SERENA_API_MAX_WIDTH must be a whole number, got 'wide'\n"


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed_by_nagle() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY on accepted sockets only then
        with pytest.raises(ApiError, match=rf"^cannot listen on 127.0.0.1:{sock.getsockname()[1]}: "):
            sock.listen()
            bind_socket("127.0.0.1", sock.getsockname()[1])


def test_posting_options_is_all_or_nothing_when_a_change_callback_fails(
    app_client: InProcessClient, data_dir: Path
) -> None:
    def refuse() -> None:
        raise RuntimeError("eta_ddim cannot change now")

    shared.opts.onchange("eta_ddim", refuse)
    response = app_client.post("/sdapi/v1/options", json={"samples_format": "jpg", "eta_ddim": 0.5})
    assert response.status_code == 500
    assert response.json() == {"error": "RuntimeError", "detail": "RuntimeError: eta_ddim cannot change now"}
    assert (shared.opts.samples_format, shared.opts.eta_ddim) == ("png", 0.0)
    assert not (data_dir / "config.json").exists()


def test_posting_options_is_undone_when_the_config_cannot_be_saved(app_client: InProcessClient, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "config.json").write_text("[1, 2]")
    response = app_client.post("/sdapi/v1/options", json={"samples_format": "jpg"})
    assert response.status_code == 500
    assert response.json()["error"] == "ConfigError" and "config.json" in response.json()["detail"]
    assert shared.opts.samples_format == "png"
