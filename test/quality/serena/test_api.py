"""The HTTP API through a real uvicorn server on loopback: images, isolation, progress, interrupt, errors, fuzzing."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from support import gradient_image, img2img, pixels, txt2img

from serena import processing, script_callbacks, shared
from serena.api import background_server, create_app, openapi_document
from serena.api_models import ApiLimits
from serena.processing import process_images

LIMITS = ApiLimits(
    max_width=256, max_height=256, max_steps=100, max_batch_size=4, max_n_iter=16, max_payload_bytes=64 * 1024
)
FAST = {
    "prompt": "a red fox in the snow",
    "seed": 1,
    "steps": 10,
    "sampler_name": "DDIM",
    "cfg_scale": 7.5,
    "width": 64,
    "height": 64,
}
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with background_server(create_app(LIMITS)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    # trust_env off: a proxy from the environment must never see loopback traffic
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def post(base_url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """One request on its own connection, for use from several threads at once."""
    return httpx.post(f"{base_url}/sdapi/v1/{path}", json=body, timeout=TIMEOUT, trust_env=False)


def png(encoded: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    image.load()
    assert image.format == "PNG"
    return image


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def maximum(schema: dict[str, Any]) -> Any:
    """A property's maximum, also when the property is nullable (anyOf [bounded, null])."""
    return next(part["maximum"] for part in [schema, *schema.get("anyOf", [])] if "maximum" in part)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


# -- generation --------------------------------------------------------------------------------
def test_txt2img_returns_pngs_with_infotext_and_info(client: httpx.Client) -> None:
    result = ok(client.post("/sdapi/v1/txt2img", json={**FAST, "batch_size": 2, "n_iter": 2}))
    info = json.loads(result["info"])
    assert info["all_seeds"] == [1, 2, 3, 4] and info["sampler_name"] == "DDIM" and not info["interrupted"]
    assert len(result["images"]) == 4
    for encoded, infotext, seed in zip(result["images"], info["infotexts"], info["all_seeds"], strict=True):
        image = png(encoded)
        assert image.size == (64, 64)
        assert image.info["parameters"] == infotext
        assert infotext.startswith("a red fox in the snow\nSteps: 10, Sampler: DDIM, CFG scale: 7.5, Seed: ")
        assert f"Seed: {seed}," in infotext
    assert result["parameters"]["prompt"] == "a red fox in the snow" and result["parameters"]["n_iter"] == 2
    assert info["saved_paths"] == []


def test_the_same_request_gives_the_same_images_as_a_direct_run(client: httpx.Client) -> None:
    first = ok(client.post("/sdapi/v1/txt2img", json=FAST))
    second = ok(client.post("/sdapi/v1/txt2img", json=FAST))
    assert first["images"] == second["images"]
    direct = process_images(txt2img())
    assert pixels(png(first["images"][0])) == pixels(direct.images[0])


def test_sampler_index_is_accepted_as_clients_send_it(client: httpx.Client) -> None:
    body = {key: value for key, value in FAST.items() if key != "sampler_name"}
    info = json.loads(ok(client.post("/sdapi/v1/txt2img", json={**body, "sampler_index": "k_euler"}))["info"])
    assert info["sampler_name"] == "Euler"


def test_send_and_save_images(client: httpx.Client, data_dir: Path) -> None:
    result = ok(client.post("/sdapi/v1/txt2img", json={**FAST, "send_images": False, "save_images": True}))
    assert result["images"] == []
    saved = json.loads(result["info"])["saved_paths"]
    assert len(saved) == 1 and Path(saved[0]).is_file()
    assert Path(saved[0]).parent == data_dir / "outputs" / "txt2img-images"


def test_img2img_round_trip(client: httpx.Client) -> None:
    init = gradient_image()
    encoded = png_base64(init)
    result = ok(client.post("/sdapi/v1/img2img", json={**FAST, "init_images": [encoded], "denoising_strength": 0.6}))
    info = json.loads(result["info"])
    assert info["denoising_strength"] == 0.6 and "Denoising strength: 0.6" in info["infotexts"][0]
    assert result["parameters"]["init_images"] is None
    image = png(result["images"][0])
    assert image.size == (64, 64) and image.info["parameters"] == info["infotexts"][0]
    assert pixels(image) == pixels(process_images(img2img(init)).images[0])
    # a data: URL is the same image, and include_init_images echoes the input back
    as_url = ok(
        client.post(
            "/sdapi/v1/img2img",
            json={
                **FAST,
                "init_images": [f"data:image/png;base64,{encoded}"],
                "denoising_strength": 0.6,
                "include_init_images": True,
            },
        )
    )
    assert as_url["images"] == result["images"]
    assert as_url["parameters"]["init_images"] == [f"data:image/png;base64,{encoded}"]


# -- isolation ---------------------------------------------------------------------------------
OVERRIDE_VARIANTS: list[dict[str, Any]] = [
    {},
    {"CLIP_stop_at_last_layers": 2},
    {"eta_ddim": 0.5},
    {"CLIP_stop_at_last_layers": 2, "eta_ddim": 0.5},
]


def test_concurrent_requests_never_see_each_others_overrides(client: httpx.Client, base_url: str) -> None:
    seen: dict[str, tuple[Any, ...]] = {}

    def record(p: processing.StableDiffusionProcessing) -> None:
        assert p.opts_snapshot is not None
        seen[p.prompt] = (
            shared.opts.CLIP_stop_at_last_layers,
            shared.opts.eta_ddim,
            p.opts_snapshot["CLIP_stop_at_last_layers"],
            p.opts_snapshot["eta_ddim"],
        )

    script_callbacks.on_process(record)
    bodies = [
        {**FAST, "prompt": f"request {index}", "override_settings": OVERRIDE_VARIANTS[index % 4]} for index in range(8)
    ]
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(lambda body: post(base_url, "txt2img", body), bodies))

    for body, response in zip(bodies, responses, strict=True):
        clip = body["override_settings"].get("CLIP_stop_at_last_layers", 1)
        eta = body["override_settings"].get("eta_ddim", 0.0)
        info = json.loads(ok(response)["info"])
        assert seen[body["prompt"]] == (clip, eta, clip, eta)
        assert (info["clip_skip"], info["eta_ddim"]) == (clip, eta)
        assert ("Clip skip: 2" in info["infotexts"][0]) == (clip == 2)
        assert ("Eta DDIM: 0.5" in info["infotexts"][0]) == (eta == 0.5)
    # the global options are as they were, and each image is what that request makes alone
    assert (shared.opts.CLIP_stop_at_last_layers, shared.opts.eta_ddim) == (1, 0.0)
    options = ok(client.get("/sdapi/v1/options"))
    assert (options["CLIP_stop_at_last_layers"], options["eta_ddim"]) == (1, 0.0)
    for body, response in zip(bodies, responses, strict=True):
        assert ok(client.post("/sdapi/v1/txt2img", json=body))["images"] == response.json()["images"]


# -- progress, interrupt, skip -----------------------------------------------------------------
def start_long_run(base_url: str, body: dict[str, Any]) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.update(response=post(base_url, "txt2img", body)), daemon=True)
    thread.start()
    return thread, result


def wait_for_sampling(client: httpx.Client, thread: threading.Thread) -> tuple[dict[str, Any], list[float]]:
    """Poll /progress until the run is denoising; returns the last answer and how long each poll took."""
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    while True:
        started = time.monotonic()
        progress = ok(client.get("/sdapi/v1/progress", params={"skip_current_image": True}))
        latencies.append(time.monotonic() - started)
        if progress["state"]["job"] == "txt2img" and progress["state"]["sampling_step"] > 0:
            return progress, latencies
        assert thread.is_alive(), "the generation ended before it was seen running"
        assert time.monotonic() < deadline, "the generation never started sampling"
        time.sleep(0.02)


def test_progress_and_interrupt_during_a_long_generation(client: httpx.Client, base_url: str) -> None:
    thread, result = start_long_run(base_url, {**FAST, "steps": 100, "n_iter": 16})
    progress, latencies = wait_for_sampling(client, thread)
    assert progress["state"]["job_count"] == 16 and progress["state"]["sampling_steps"] == 100
    assert 0 < progress["progress"] < 1 and progress["eta_relative"] > 0 and progress["current_image"] is None
    # the event loop answers while the worker generates
    for _ in range(5):
        started = time.monotonic()
        ok(client.get("/sdapi/v1/progress"))
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 3.0, latencies

    assert ok(client.post("/sdapi/v1/interrupt")) == {}
    thread.join(timeout=60)
    assert not thread.is_alive()
    response = ok(result["response"])
    info = json.loads(response["info"])
    assert info["interrupted"] is True
    assert 1 <= len(response["images"]) < 16
    assert ok(client.get("/sdapi/v1/progress"))["state"]["job"] == ""


def test_skip_abandons_the_current_batch_only(client: httpx.Client, base_url: str) -> None:
    thread, result = start_long_run(base_url, {**FAST, "steps": 60, "n_iter": 2})
    wait_for_sampling(client, thread)
    assert ok(client.post("/sdapi/v1/skip")) == {}
    thread.join(timeout=60)
    response = ok(result["response"])
    assert json.loads(response["info"])["interrupted"] is False
    assert len(response["images"]) == 2


# -- bad requests ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"width": 65}, "width"),
        ({"height": 264}, "height"),
        ({"steps": 0}, "steps"),
        ({"steps": 101}, "steps"),
        ({"batch_size": 5}, "batch_size"),
        ({"n_iter": 17}, "n_iter"),
        ({"cfg_scale": -1}, "cfg_scale"),
        ({"seed": -2}, "seed"),
        ({"sampler_name": "Nope"}, "sampler_name"),
        ({"sampler_index": "Nope"}, "sampler_index"),
        ({"sampler_name": "DPM2"}, "sampler_name"),  # refused by the runtime: the model predicts the sample
        ({"override_settings": {"CLIP_stop_at_last_layers": 13}}, "override_settings.CLIP_stop_at_last_layers"),
        # the runtime's own check: the tiny model's text encoder has 2 layers
        ({"override_settings": {"CLIP_stop_at_last_layers": 3}}, "override_settings.CLIP_stop_at_last_layers"),
        ({"override_settings": {"outdir_txt2img": "/tmp/elsewhere"}}, "override_settings.outdir_txt2img"),
        ({"override_settings": {"sd_model_checkpoint": "no-such-model"}}, "override_settings.sd_model_checkpoint"),
    ],
)
def test_bad_txt2img_requests_get_422_naming_the_field(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = client.post("/sdapi/v1/txt2img", json={**FAST, **body})
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]
    assert shared.opts.CLIP_stop_at_last_layers == 1


def big_png_base64() -> str:
    """A valid PNG whose base64 is over LIMITS.max_payload_bytes (noise does not compress)."""
    import random

    rng = random.Random(0)
    image = Image.frombytes("RGB", (128, 128), bytes(rng.getrandbits(8) for _ in range(128 * 128 * 3)))
    return png_base64(image)


@pytest.mark.parametrize(
    ("init_images", "field"),
    [
        (["!!! not base64 !!!"], "init_images[0]: not valid base64"),
        (["GOOD", base64.b64encode(b"not an image").decode()], "init_images[1]: not a decodable"),
        (["data:image/png,abc"], "init_images[0]: a data: URL must carry base64"),
        (["BIG"], "init_images[0]: String should have at most 65536 characters"),
        ([], "init_images: List should have at least 1 item"),
    ],
)
def test_bad_init_images_get_422_naming_the_image(client: httpx.Client, init_images: list[str], field: str) -> None:
    good = png_base64(gradient_image())
    images = [good if item == "GOOD" else big_png_base64() if item == "BIG" else item for item in init_images]
    response = client.post("/sdapi/v1/img2img", json={**FAST, "init_images": images})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(field)


def _box_mask(mode: str = "L") -> Image.Image:
    from PIL import ImageDraw

    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 24, 39, 47), fill=255)
    if mode == "RGBA":
        transparent = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        transparent.putalpha(mask)
        return transparent
    return mask


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_img2img_with_a_mask_inpaints_as_in_process(client: httpx.Client, mode: str) -> None:
    fields = {"mask_blur": 2, "inpainting_fill": 2, "inpaint_full_res": False, "inpainting_mask_invert": 0}
    body = {**FAST, "init_images": [png_base64(gradient_image())], "denoising_strength": 0.6, **fields}
    result = ok(client.post("/sdapi/v1/img2img", json={**body, "mask": png_base64(_box_mask(mode))}))
    expected = process_images(img2img(gradient_image(), mask=_box_mask(), **fields))
    assert pixels(png(result["images"][0])) == pixels(expected.images[0])
    info = json.loads(result["info"])
    assert info["infotexts"][0] == expected.infotexts[0] and "Masked content: latent noise" in info["infotexts"][0]
    assert result["parameters"]["mask"] is None and info["ignored_fields"] == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mask": "!!! not base64 !!!"}, "mask: not valid base64"),
        ({"mask": base64.b64encode(b"not an image").decode()}, "mask: not a decodable"),
        ({"mask": "SMALL"}, "mask: mask is 32x32 but init_images[0] is 64x64"),
        ({"mask": "GOOD", "mask_blur": 65}, "mask_blur: Input should be less than or equal to 64"),
        ({"mask": "GOOD", "inpainting_fill": 4}, "inpainting_fill: Input should be less than or equal to 3"),
        ({"mask": "GOOD", "resize_mode": 3}, "resize_mode: resize_mode 3 (latent upscale) cannot be used with a mask"),
    ],
)
def test_a_bad_mask_or_mask_field_gets_422_naming_it(client: httpx.Client, fields: dict, message: str) -> None:
    good, small = png_base64(_box_mask()), png_base64(Image.new("L", (32, 32), 255))
    mask = {"GOOD": good, "SMALL": small}.get(fields["mask"], fields["mask"])
    body = {**FAST, "init_images": [png_base64(gradient_image())], **fields, "mask": mask}
    response = client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(message)


def test_a_body_over_the_size_limit_gets_413(client: httpx.Client) -> None:
    response = client.post("/sdapi/v1/img2img", json={**FAST, "init_images": ["A" * (LIMITS.max_request_bytes + 8)]})
    assert response.status_code == 413
    assert response.json() == {
        "error": "PayloadTooLarge",
        "detail": f"request body over {LIMITS.max_request_bytes} bytes (max_payload_bytes + 1 MiB)",
    }


def test_a_chunked_body_over_the_size_limit_gets_413(client: httpx.Client) -> None:
    chunk = b" " * 65536
    chunks = (LIMITS.max_request_bytes // len(chunk)) + 2
    response = client.post(
        "/sdapi/v1/txt2img", content=iter([chunk] * chunks), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"] == "PayloadTooLarge"


def test_a_failing_request_gives_500_and_the_server_goes_on(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(p: processing.StableDiffusionProcessing) -> processing.Processed:
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(processing, "process_images_inner", broken)
    with caplog.at_level(logging.ERROR, logger="serena"):
        response = client.post("/sdapi/v1/txt2img", json={**FAST, "override_settings": {"CLIP_stop_at_last_layers": 2}})
    assert response.status_code == 500
    assert response.json() == {"error": "RuntimeError", "detail": "RuntimeError: the GPU caught fire"}
    assert any("POST /sdapi/v1/txt2img failed" in record.getMessage() for record in caplog.records)
    assert shared.opts.CLIP_stop_at_last_layers == 1  # the override was restored after the failure
    monkeypatch.undo()
    assert len(ok(client.post("/sdapi/v1/txt2img", json=FAST))["images"]) == 1


# -- options and catalogues --------------------------------------------------------------------
def test_options_round_trip(client: httpx.Client, data_dir: Path) -> None:
    options = ok(client.get("/sdapi/v1/options"))
    assert options == {
        key: info.default if info.type != "list" else [] for key, info in shared.opts.data_labels.items()
    }
    changed = ok(client.post("/sdapi/v1/options", json={"samples_format": "jpg", "eta_ddim": 0.25}))
    assert changed["samples_format"] == "jpg" and changed["eta_ddim"] == 0.25
    assert ok(client.get("/sdapi/v1/options")) == changed
    assert (shared.opts.samples_format, shared.opts.eta_ddim) == ("jpg", 0.25)
    assert json.loads((data_dir / "config.json").read_text()) == {"eta_ddim": 0.25, "samples_format": "jpg"}
    # a run with overrides restores the POSTed values, not the defaults
    info = json.loads(
        ok(client.post("/sdapi/v1/txt2img", json={**FAST, "override_settings": {"eta_ddim": 0.75}}))["info"]
    )
    assert info["eta_ddim"] == 0.75
    assert ok(client.get("/sdapi/v1/options"))["eta_ddim"] == 0.25


def test_options_post_with_an_unknown_key_changes_nothing(client: httpx.Client, data_dir: Path) -> None:
    response = client.post("/sdapi/v1/options", json={"eta_ddim": 0.5, "no_such_option": True, "jpeg_quality": 0})
    assert response.status_code == 422
    message = response.json()["message"]
    assert "no_such_option: Extra inputs are not permitted" in message and "jpeg_quality" in message
    assert ok(client.get("/sdapi/v1/options"))["eta_ddim"] == 0.0
    assert not (data_dir / "config.json").exists()


def test_samplers_and_models_are_listed(client: httpx.Client) -> None:
    listed = {item["name"]: item for item in ok(client.get("/sdapi/v1/samplers"))}
    assert listed["Euler a"]["aliases"] == ["k_euler_a"]
    assert listed["DDIM"]["options"]["scheduler"] == "DDIMScheduler"
    # the tiny model predicts the sample: the samplers it refuses are not listed
    assert "DPM2" not in listed and "PLMS" not in listed and len(listed) == 14
    assert all("sample" in item["options"]["prediction_types"] for item in listed.values())
    tiny, eps, inpaint = ok(client.get("/sdapi/v1/sd-models"))
    assert eps["model_name"] == "tiny-sd-eps" and eps["title"] == f"tiny-sd-eps [{eps['hash']}]"
    assert inpaint["model_name"] == "tiny-sd-inpaint"
    assert tiny["model_name"] == "tiny-sd" and len(tiny["sha256"]) == 64
    assert tiny["hash"] == tiny["sha256"][:10] and tiny["title"] == f"tiny-sd [{tiny['hash']}]"
    assert Path(tiny["filename"]).is_dir()


def test_small_requests_answer_in_milliseconds(client: httpx.Client) -> None:
    latencies = []
    for _ in range(21):
        started = time.monotonic()
        ok(client.get("/sdapi/v1/progress"))
        latencies.append(time.monotonic() - started)
    # ~44 ms each when Nagle's algorithm meets delayed ACKs (a listening socket without IPPROTO_TCP)
    assert sorted(latencies)[10] < 0.025, latencies


def test_the_live_openapi_document_is_openapi_document(client: httpx.Client) -> None:
    assert ok(client.get("/openapi.json")) == openapi_document(LIMITS)


# -- the command ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serena_api_serves_with_layered_limits_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERENA_")}
    env |= {"SERENA_API_MAX_STEPS": "12", "OMP_NUM_THREADS": "1"}
    # --port after the command, as people type it (before it works too)
    command = [sys.executable, "-m", "serena", "--data-dir", str(tmp_path / "data"), "api", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--max-batch-size", "2"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[1].decode()
            assert time.monotonic() < deadline, "serena api did not come up"
            try:
                document = httpx.get(f"{url}/openapi.json", timeout=5, trust_env=False).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        request_schema = document["components"]["schemas"]["StableDiffusionTxt2ImgProcessingAPI"]["properties"]
        assert maximum(request_schema["steps"]) == 12 and maximum(request_schema["batch_size"]) == 2
        result = httpx.post(f"{url}/sdapi/v1/txt2img", json=FAST, timeout=TIMEOUT, trust_env=False)
        assert len(ok(result)["images"]) == 1
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 130
    assert f"serving the API on http://127.0.0.1:{port}/sdapi/v1" in stderr.decode()


# -- fuzzing -----------------------------------------------------------------------------------
FUZZ_LIMITS = ApiLimits(
    max_width=128, max_height=128, max_steps=3, max_batch_size=2, max_n_iter=2, max_payload_bytes=4096
)


def test_schemathesis_finds_no_server_error(record_property: Any) -> None:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_dict(openapi_document(FUZZ_LIMITS))
    cases = st.one_of(
        schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    statuses: list[int] = []
    session = requests.Session()
    session.trust_env = False

    with background_server(create_app(FUZZ_LIMITS)) as url:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def call(case: schemathesis.Case) -> None:
            try:
                response = case.call(base_url=url, session=session, timeout=60)
                statuses.append(response.status_code)
                case.validate_response(response, checks=checks)
            finally:
                shared.opts.reset()  # a POST /options must not carry over into the next case

        call()
    record_property("schemathesis_requests", len(statuses))
    print(f"schemathesis: {len(statuses)} requests, {sum(status >= 500 for status in statuses)} x 5xx")
    assert len(statuses) >= 150 and 200 in statuses and 422 in statuses and all(status < 500 for status in statuses)
