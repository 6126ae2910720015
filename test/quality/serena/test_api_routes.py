"""The endpoints web-UI clients call when they connect, through a real loopback server: each answers 200 with the web
UI's shape and Serena's own content; png-info reads back what Serena wrote and refuses what is not an image."""

from __future__ import annotations

import base64
import dataclasses
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from serena import samplers, shared
from serena.api import background_server, create_app
from serena.api_models import ApiLimits
from serena.cmd_args import CmdOpts
from serena.images import EXIF_IFD, EXIF_USER_COMMENT
from serena.initialize import initialize

PAYLOAD_LIMIT = 256 * 1024
LIMITS = ApiLimits(
    max_width=256, max_height=256, max_steps=20, max_batch_size=2, max_n_iter=2, max_payload_bytes=PAYLOAD_LIMIT
)
TIMEOUT = httpx.Timeout(120.0, connect=10.0)
STYLES_CSV = (
    "name,prompt,negative_prompt,description\n"
    'watercolour,"{prompt}, watercolour painting",photo,soft\n'
    "dusk,evening light,\n"
)
INFOTEXT = "a red fox\nNegative prompt: blurry\nSteps: 4, Sampler: DDIM, CFG scale: 7, Seed: 1234, Size: 64x64"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with background_server(create_app(LIMITS)) as url:
        yield url


def get(base_url: str, path: str) -> Any:
    response = httpx.get(f"{base_url}/sdapi/v1/{path}", timeout=TIMEOUT, trust_env=False)
    assert response.status_code == 200, response.text
    return response.json()


def post(base_url: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{base_url}/sdapi/v1/{path}", json=body or {}, timeout=TIMEOUT, trust_env=False)


def png_info(base_url: str, image: str) -> dict[str, Any]:
    response = post(base_url, "png-info", {"image": image})
    assert response.status_code == 200, response.text
    return response.json()


def encode(image: Image.Image, fmt: str, **save_args: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def use_cmd_opts(**values: Any) -> None:
    shared.cmd_opts = dataclasses.replace(shared.cmd_opts, **values)  # conftest restores it after each test


# -- the lists ---------------------------------------------------------------------------------
def test_schedulers_are_serenas_schedule_types(base_url: str) -> None:
    assert get(base_url, "schedulers") == [
        {
            "name": schedule.name,
            "label": schedule.label,
            "aliases": list(schedule.aliases) or None,
            "default_rho": schedule.default_rho,
            "need_inner_model": schedule.need_inner_model,
        }
        for schedule in samplers.SCHEDULE_TYPES
    ]
    karras = next(item for item in get(base_url, "schedulers") if item["name"] == "karras")
    assert karras["default_rho"] == 7.0 and get(base_url, "schedulers")[0]["default_rho"] == -1


def test_upscalers_and_latent_upscale_modes(base_url: str) -> None:
    assert get(base_url, "upscalers") == [
        {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": None}
        for name in ("None", "Lanczos", "Nearest")
    ]
    assert get(base_url, "latent-upscale-modes") == [
        {"name": name}
        for name in (
            "Latent",
            "Latent (antialiased)",
            "Latent (bicubic)",
            "Latent (bicubic antialiased)",
            "Latent (nearest)",
            "Latent (nearest-exact)",
        )
    ]


def test_what_serena_does_not_have_is_an_empty_answer_of_the_web_uis_shape(base_url: str) -> None:
    for path in ("sd-vae", "loras", "hypernetworks", "face-restorers", "realesrgan-models", "script-info"):
        assert get(base_url, path) == [], path
    assert get(base_url, "embeddings") == {"loaded": {}, "skipped": {}}
    assert get(base_url, "scripts") == {"txt2img": [], "img2img": []}


def test_the_openapi_document_describes_every_client_route(base_url: str) -> None:
    document = httpx.get(f"{base_url}/openapi.json", timeout=TIMEOUT, trust_env=False).json()
    routes = {
        ("get", "schedulers"): "SchedulerItem",
        ("get", "upscalers"): "UpscalerItem",
        ("get", "latent-upscale-modes"): "LatentUpscaleModeItem",
        ("get", "prompt-styles"): "PromptStyleItem",
        ("get", "sd-vae"): "VaeItem",
        ("get", "loras"): "LoraItem",
        ("get", "hypernetworks"): "HypernetworkItem",
        ("get", "face-restorers"): "FaceRestorerItem",
        ("get", "realesrgan-models"): "RealesrganItem",
        ("get", "script-info"): "ScriptInfo",
        ("get", "extensions"): "ExtensionItem",
        ("get", "embeddings"): "EmbeddingsResponse",
        ("get", "scripts"): "ScriptsList",
        ("get", "cmd-flags"): "CmdFlags",
        ("get", "memory"): "MemoryResponse",
        ("post", "png-info"): "PngInfoResponse",
        ("post", "refresh-checkpoints"): "EmptyResponse",
        ("post", "refresh-vae"): "EmptyResponse",
        ("post", "refresh-loras"): "EmptyResponse",
    }
    for (method, path), model in routes.items():
        operation = document["paths"][f"/sdapi/v1/{path}"][method]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema.get("$ref", schema.get("items", {}).get("$ref")) == f"#/components/schemas/{model}", path
        assert model in document["components"]["schemas"]
    png_info_responses = document["paths"]["/sdapi/v1/png-info"]["post"]["responses"]
    assert {"200", "400", "413", "422"} <= set(png_info_responses)
    assert "500" in document["paths"]["/sdapi/v1/prompt-styles"]["get"]["responses"]


# -- prompt styles -----------------------------------------------------------------------------
def test_prompt_styles_lists_the_styles_file_in_the_data_dir(base_url: str, data_dir: Path) -> None:
    assert get(base_url, "prompt-styles") == []  # no styles file yet
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    assert get(base_url, "prompt-styles") == [
        {"name": "watercolour", "prompt": "{prompt}, watercolour painting", "negative_prompt": "photo"},
        {"name": "dusk", "prompt": "evening light", "negative_prompt": ""},
    ]


def test_prompt_styles_follows_a_styles_file_given_at_start_up(base_url: str, tmp_path: Path) -> None:
    chosen = tmp_path / "my-styles.csv"
    chosen.write_text("name,prompt,negative_prompt\nmine,{prompt} at noon,\n", encoding="utf-8")
    use_cmd_opts(styles_file=chosen)
    assert [style["name"] for style in get(base_url, "prompt-styles")] == ["mine"]


def test_a_malformed_styles_file_is_a_one_line_server_error_naming_file_and_line(base_url: str, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "styles.csv"
    path.write_text("name,prompt,negative_prompt\na,x,\na,y,\n", encoding="utf-8")
    response = httpx.get(f"{base_url}/sdapi/v1/prompt-styles", timeout=TIMEOUT, trust_env=False)
    assert response.status_code == 500
    assert response.json() == {"error": "InputFileError", "detail": f"[input] {path}:3: style 'a' is defined twice"}
    # the server goes on serving
    path.write_text(STYLES_CSV, encoding="utf-8")
    assert len(get(base_url, "prompt-styles")) == 2


# -- refreshing --------------------------------------------------------------------------------
def test_refresh_endpoints_answer_an_empty_object(base_url: str) -> None:
    for path in ("refresh-checkpoints", "refresh-vae", "refresh-loras"):
        response = post(base_url, path)
        assert response.status_code == 200 and response.json() == {}, path


def test_refresh_checkpoints_lists_the_models_again(base_url: str) -> None:
    # the model list is never cached: refreshing reads it again, so a --model that cannot be read shows up
    use_cmd_opts(model="~nosuchuser-serena/model")
    response = post(base_url, "refresh-checkpoints")
    assert response.status_code == 500 and response.json()["error"] == "ModelError"
    assert "'~nosuchuser-serena/model': cannot expand '~'" in response.json()["detail"]


# -- start-up flags, extensions, memory --------------------------------------------------------
def test_cmd_flags_are_the_start_up_options(base_url: str, data_dir: Path, tmp_path: Path) -> None:
    use_cmd_opts(styles_file=tmp_path / "styles.csv", port=7861)
    flags = get(base_url, "cmd-flags")
    assert set(flags) == {field.name for field in dataclasses.fields(CmdOpts)}
    assert flags["data_dir"] == str(data_dir) and flags["styles_file"] == str(tmp_path / "styles.csv")
    assert flags["extensions_dir"] is None and flags["model"] is None
    assert (flags["device"], flags["precision"], flags["port"], flags["listen"]) == ("cpu", "fp32", 7861, False)


def test_extensions_lists_what_start_up_found_and_only_that(base_url: str, tmp_path: Path, data_dir: Path) -> None:
    """Enabled (a script that failed to import included, as the web UI lists it) or disabled by the option as it
    read at start-up; a folder added or an option changed after start-up shows after the next start."""
    import json

    extensions_dir = tmp_path / "extensions"
    for name in ("beta", "alpha", ".hidden", "no-scripts"):
        (extensions_dir / name).mkdir(parents=True)
    (extensions_dir / "beta" / "scripts").mkdir()
    (extensions_dir / "alpha" / "scripts").mkdir()
    (extensions_dir / "alpha" / "scripts" / "broken.py").write_text("raise RuntimeError('no')\n", encoding="utf-8")
    (extensions_dir / "a-file.py").write_text("", encoding="utf-8")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.json").write_text(json.dumps({"disabled_extensions": ["beta"]}), encoding="utf-8")
    blank = {"remote": "", "branch": "", "commit_hash": "", "version": "", "commit_date": 0}
    assert get(base_url, "extensions") == []  # nothing started up in this process yet

    initialize(CmdOpts(data_dir=data_dir, extensions_dir=extensions_dir))
    listed = [
        {"name": "alpha", **blank, "enabled": True},
        {"name": "beta", **blank, "enabled": False},
        {"name": "no-scripts", **blank, "enabled": True},
    ]
    assert get(base_url, "extensions") == listed
    (extensions_dir / "gamma" / "scripts").mkdir(parents=True)
    shared.opts.set("disabled_extensions", [])
    assert get(base_url, "extensions") == listed
    (data_dir / "config.json").write_text(json.dumps({"disabled_extensions": []}), encoding="utf-8")

    initialize(CmdOpts(data_dir=data_dir, extensions_dir=extensions_dir))  # the next start
    assert [(item["name"], item["enabled"]) for item in get(base_url, "extensions")] == [
        ("alpha", True),
        ("beta", True),
        ("gamma", True),
        ("no-scripts", True),
    ]
    initialize(CmdOpts(data_dir=data_dir, extensions_dir=extensions_dir), load_extensions=False)
    assert get(base_url, "extensions") == []


def test_memory_reports_system_memory_and_cuda(base_url: str) -> None:
    import torch

    memory = get(base_url, "memory")
    ram = memory["ram"]
    assert set(ram) == {"free", "used", "total"}
    assert ram["total"] > 64 * 1024 * 1024 and 0 <= ram["free"] <= ram["total"]
    assert ram["used"] == ram["total"] - ram["free"]
    if torch.cuda.is_available():
        system = memory["cuda"]["system"]
        assert system["total"] > 0 and system["used"] == system["total"] - system["free"]
        assert set(memory["cuda"]) == {"system", "active", "allocated", "reserved", "inactive", "events"}
    else:
        assert memory["cuda"] == {"error": "CUDA is not available"}


# -- png-info ----------------------------------------------------------------------------------
def test_png_info_reads_back_the_infotext_of_an_image_serena_generated(base_url: str) -> None:
    request = {
        "prompt": "a red fox",
        "negative_prompt": "blurry",
        "seed": 4321,
        "steps": 4,
        "sampler_name": "DDIM",
        "width": 64,
        "height": 64,
    }
    generated = post(base_url, "txt2img", request)
    assert generated.status_code == 200, generated.text
    body = png_info(base_url, generated.json()["images"][0])
    assert body["info"].startswith("a red fox\nNegative prompt: blurry\nSteps: 4, Sampler: DDIM")
    assert body["items"] == {}
    parameters = body["parameters"]
    assert parameters["Seed"] == "4321" and parameters["Prompt"] == "a red fox"
    assert parameters["Negative prompt"] == "blurry" and parameters["Size-1"] == "64"


def test_png_info_takes_a_data_url_and_lists_the_other_text_chunks(base_url: str) -> None:
    chunks = PngInfo()
    chunks.add_text("parameters", INFOTEXT)
    chunks.add_text("Software", "a painter")
    chunks.add_itxt("notes", "ünïcode", zip=True)
    image = "data:image/png;base64," + encode(Image.new("RGB", (8, 8)), "PNG", pnginfo=chunks)
    body = png_info(base_url, image)
    assert body["info"] == INFOTEXT and body["items"] == {"Software": "a painter", "notes": "ünïcode"}
    assert body["parameters"]["Seed"] == "1234"


def test_an_image_without_infotext_has_none(base_url: str) -> None:
    assert png_info(base_url, encode(Image.new("RGB", (8, 8)), "PNG")) == {"info": "", "items": {}, "parameters": {}}
    # the web UI answers an empty image the same way
    assert png_info(base_url, "") == {"info": "", "items": {}, "parameters": {}}


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("code", ["UNICODE", "ASCII"])
def test_png_info_reads_the_exif_user_comment_of_jpeg_and_webp(base_url: str, fmt: str, code: str) -> None:
    # where Serena (and the web UI) keep infotext in a JPEG or WEBP
    exif = Image.Exif()
    encoded = b"UNICODE\0" + INFOTEXT.encode("utf-16-be") if code == "UNICODE" else b"ASCII\0\0\0" + INFOTEXT.encode()
    exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = encoded
    body = png_info(base_url, encode(Image.new("RGB", (8, 8)), fmt, exif=exif.tobytes()))
    assert body["info"] == INFOTEXT and body["parameters"]["Seed"] == "1234" and body["items"] == {}


def test_png_info_reads_a_gif_comment(base_url: str) -> None:
    body = png_info(base_url, encode(Image.new("P", (8, 8)), "GIF", comment=INFOTEXT.encode("utf-8")))
    assert body["info"] == INFOTEXT and body["parameters"]["Prompt"] == "a red fox"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of pixel data: decoding it would fail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def refused(base_url: str, image: str) -> str:
    response = post(base_url, "png-info", {"image": image})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "image"]
    message: str = response.json()["message"]
    assert message.startswith("image: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"GIF89a but not really").decode("ascii"), "not a readable"),
        (base64.b64encode(b"\x89PNG\r\n\x1a\n").decode("ascii"), "not a readable"),
        ("data:text/plain,hello", "a data: URL must carry base64"),
        (encode(Image.new("RGB", (8, 8)), "TIFF"), "not a readable PNG, JPEG, WEBP, BMP, GIF image"),
        (encode(Image.new("RGB", (16, 16)), "ICO"), "not a readable PNG, JPEG, WEBP, BMP, GIF image"),
    ],
)
def test_png_info_refuses_what_is_not_an_image_naming_the_field(base_url: str, image: str, words: str) -> None:
    assert words in refused(base_url, image)


def test_png_info_refuses_a_value_that_is_not_a_string_or_missing(base_url: str) -> None:
    for body in ({"image": 5}, {}):
        response = post(base_url, "png-info", body)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "image"]


def test_png_info_refuses_an_image_over_the_pixel_limit_from_its_header(base_url: str) -> None:
    limit = LIMITS.max_init_image_pixels
    # 81 megapixels claimed over a few bytes: refused by size, never decoded
    message = refused(base_url, base64.b64encode(png_header_only(9000, 9000)).decode("ascii"))
    assert message == f"image: 9000x9000 pixels is over the limit of {limit} pixels"
    # just within the limit it is read
    side = 512
    assert side * side == limit
    assert png_info(base_url, encode(Image.new("L", (side, side)), "PNG"))["info"] == ""


def test_png_info_refuses_base64_over_the_payload_limit(base_url: str) -> None:
    message = refused(base_url, "A" * (PAYLOAD_LIMIT + 4))
    assert f"over the {PAYLOAD_LIMIT} characters" in message
