"""The second shipped model, tiny-sd-eps: listed, verified and loaded offline, epsilon prediction, and the samplers
that need a noise-predicting model (DPM2, DPM2 Karras, DPM2 a, DPM2 a Karras, PLMS) running on it deterministically."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT, pixels, txt2img

from serena import models, samplers
from serena.api import background_server, create_app
from serena.api_models import ApiLimits
from serena.cli import main
from serena.processing import process_images

EPS = models.TINY_EPS_MODEL_NAME
NOISE_SAMPLERS = [s.name for s in samplers.SAMPLERS if not s.supports("sample")]
ON_EPS = {"sd_model_checkpoint": EPS}
# the golden tolerance on mean absolute pixel difference (harness/goldens/cpu-fp32/manifest.json)
GOLDEN_MEAN_ABS = 1.0
MIN_STD = 2.0  # below this an image is flat (harness.golden.measures.MIN_STD)


def mean_abs_difference(first: Any, second: Any) -> float:
    a = np.asarray(first.convert("RGB"), dtype=np.float64)
    b = np.asarray(second.convert("RGB"), dtype=np.float64)
    return float(np.abs(a - b).mean())


def test_the_samplers_under_test_are_the_noise_prediction_ones() -> None:
    assert NOISE_SAMPLERS == ["DPM2", "DPM2 Karras", "DPM2 a", "DPM2 a Karras", "PLMS"]


def test_tiny_sd_eps_is_a_second_shipped_model_and_tiny_sd_stays_the_default(data_dir: Path) -> None:
    listed = models.list_models(data_dir)
    assert [(m.name, m.shipped) for m in listed][:2] == [("tiny-sd", True), (EPS, True)]
    assert listed[1].path == models.TINY_EPS_MODEL_DIR == REPO_ROOT / "serena" / "assets" / EPS
    assert models.resolve_model(EPS, data_dir, listed_only=True) == listed[1]
    assert process_images(txt2img()).sd_model_name == "tiny-sd"


def test_tiny_sd_eps_verifies_and_loads_offline_with_epsilon_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("loading the shipped model tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    info = models.ModelInfo(EPS, models.TINY_EPS_MODEL_DIR, shipped=True)
    models.verify_manifest(info.path)
    listed = set(models.read_manifest(info.path))
    on_disk = {p.relative_to(info.path).as_posix() for p in info.path.rglob("*") if p.is_file()}
    assert listed == on_disk - {models.MANIFEST_NAME}
    assert models.read_prediction_type(info.path) == "epsilon"

    model = models.load_model(info)
    assert model.prediction_type == "epsilon" and model.text_encoder_layers == 2
    assert type(model.txt2img.scheduler).__name__ == "DDIMScheduler"
    assert model.short_hash != models.short_hash(models.model_sha256(models.TINY_MODEL_DIR))


def test_tiny_sd_eps_shares_tiny_sd_s_tokenizer_and_scheduler_config() -> None:
    source, eps = models.TINY_MODEL_DIR, models.TINY_EPS_MODEL_DIR
    names = sorted(p.name for p in (source / "tokenizer").iterdir())
    assert names == sorted(p.name for p in (eps / "tokenizer").iterdir())
    for name in names:
        assert (eps / "tokenizer" / name).read_bytes() == (source / "tokenizer" / name).read_bytes(), name
    source_config = json.loads((source / "scheduler" / "scheduler_config.json").read_text())
    eps_config = json.loads((eps / "scheduler" / "scheduler_config.json").read_text())
    assert eps_config == {**source_config, "prediction_type": "epsilon"}
    assert json.loads((eps / "text_encoder" / "config.json").read_text()) == json.loads(
        (source / "text_encoder" / "config.json").read_text()
    )
    assert sum(p.stat().st_size for p in eps.rglob("*") if p.is_file()) < 2_000_000


def test_every_sampler_is_offered_for_it_on_the_cli(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    """No sampler is refused for epsilon prediction: each lists it among its prediction types."""
    code = main(["--data-dir", str(data_dir), "--model", EPS, "samplers", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert code == 0
    assert listing["model"] == EPS and listing["prediction_type"] == "epsilon"
    assert all(row["supported"] for row in listing["samplers"])
    assert [row["name"] for row in listing["samplers"]] == samplers.sampler_names()


@pytest.mark.parametrize("name", NOISE_SAMPLERS)
def test_noise_sampler_runs_on_tiny_sd_eps_deterministically_and_not_flat(name: str) -> None:
    first = process_images(txt2img(sampler_name=name, override_settings=ON_EPS))
    second = process_images(txt2img(sampler_name=name, override_settings=ON_EPS))
    assert first.sd_model_name == EPS and f"Model: {EPS}," in first.infotexts[0]
    assert pixels(first.images[0]) == pixels(second.images[0])
    array = np.asarray(first.images[0].convert("RGB"), dtype=np.float64)
    assert array.std() >= MIN_STD and array.std(axis=(0, 1)).max() >= MIN_STD


@pytest.mark.parametrize(("plain", "karras"), [("DPM2", "DPM2 Karras"), ("DPM2 a", "DPM2 a Karras")])
def test_karras_sigmas_move_the_image_beyond_the_golden_tolerance(plain: str, karras: str) -> None:
    """What the golden cases rest on: a sampler configuration slip changes the pixels, not only the float bits."""
    first = process_images(txt2img(sampler_name=plain, override_settings=ON_EPS)).images[0]
    second = process_images(txt2img(sampler_name=karras, override_settings=ON_EPS)).images[0]
    assert mean_abs_difference(first, second) > GOLDEN_MEAN_ABS


def test_the_make_script_reproduces_the_shipped_model_and_never_overwrites_it(tmp_path: Path) -> None:
    script = REPO_ROOT / "scripts" / "dev" / "build_tiny_eps_model.py"
    refused = subprocess.run(
        [sys.executable, str(script), "--out", str(models.TINY_EPS_MODEL_DIR)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "already exists" in refused.stderr
    out = tmp_path / "remade"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, capture_output=True)
    assert (out / "SHA256SUMS").read_text() == (models.TINY_EPS_MODEL_DIR / "SHA256SUMS").read_text()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    limits = ApiLimits(
        max_width=256, max_height=256, max_steps=100, max_batch_size=4, max_n_iter=16, max_payload_bytes=64 * 1024
    )
    with background_server(create_app(limits)) as url:
        yield url


def test_the_api_lists_it_and_override_settings_select_it(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(120.0, connect=10.0), trust_env=False) as client:
        listed = client.get("/sdapi/v1/sd-models").json()
        eps = next(item for item in listed if item["model_name"] == EPS)
        assert eps["title"] == f"{EPS} [{eps['hash']}]" and Path(eps["filename"]) == models.TINY_EPS_MODEL_DIR
        body = {"prompt": "a red fox in the snow", "seed": 1, "steps": 10, "cfg_scale": 7.5, "width": 64, "height": 64}
        response = client.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "DPM2", "override_settings": ON_EPS})
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["info"])["sd_model_name"] == EPS
        image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
        local = process_images(txt2img(sampler_name="DPM2", override_settings=ON_EPS)).images[0]
        assert pixels(image) == pixels(local)
        # without the override the default model is used, which refuses DPM2
        refused = client.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "DPM2"})
        assert refused.status_code == 422 and "'sample'" in refused.text
