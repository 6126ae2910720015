"""Models: the shipped tiny model's manifest, local diffusers folders, model hashes, and a deterministic rebuild."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, pixels, txt2img

from serena import models, script_callbacks, shared
from serena.errors import ModelError
from serena.processing import process_images


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    target = tmp_path / "my-model"
    shutil.copytree(models.TINY_MODEL_DIR, target)
    return target


def test_shipped_model_verifies_and_has_a_short_hash() -> None:
    models.verify_manifest(models.TINY_MODEL_DIR)
    sha = models.model_sha256(models.TINY_MODEL_DIR)
    assert re.fullmatch(r"[0-9a-f]{64}", sha) and models.short_hash(sha) == sha[:10]
    processed = process_images(txt2img())
    assert f"Model hash: {sha[:10]}, Model: tiny-sd," in processed.infotexts[0]


def test_a_tampered_file_is_a_clear_error(model_copy: Path) -> None:
    weights = model_copy / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"diffusion_pytorch_model\.safetensors: sha256 .* does not match SHA256SUMS"):
        models.load_model(models.ModelInfo("my-model", model_copy))


def test_a_missing_listed_file_and_a_malformed_manifest_are_errors(model_copy: Path) -> None:
    (model_copy / "unet" / "config.json").unlink()
    with pytest.raises(ModelError, match=r"unet/config\.json: listed in SHA256SUMS but missing"):
        models.verify_manifest(model_copy)
    (model_copy / "SHA256SUMS").write_text("not a manifest line\n")
    with pytest.raises(ModelError, match=r"SHA256SUMS:1: malformed line"):
        models.verify_manifest(model_copy)


def test_a_local_folder_loads_by_path_and_gives_the_same_pixels(model_copy: Path, data_dir: Path) -> None:
    (model_copy / "SHA256SUMS").unlink()  # a user's model need not carry a manifest
    baseline = process_images(txt2img()).images[0]
    processed = process_images(txt2img(override_settings={"sd_model_checkpoint": str(model_copy)}))
    assert processed.sd_model_name == "my-model"
    assert processed.sd_model_hash == models.short_hash(models.model_sha256(models.TINY_MODEL_DIR))
    assert pixels(processed.images[0]) == pixels(baseline)
    assert (data_dir / "cache" / "model-hashes.json").is_file()
    assert shared.opts.sd_model_checkpoint == "tiny-sd"


def test_models_under_the_data_dir_are_listed_and_resolved(data_dir: Path) -> None:
    shutil.copytree(models.TINY_MODEL_DIR, data_dir / "models" / "copy-a")
    (data_dir / "models" / "not-a-model").mkdir()
    names = [m.name for m in models.list_models(data_dir)]
    assert names == ["tiny-sd", "tiny-sd-eps", "tiny-sd-inpaint", "copy-a"]
    assert models.resolve_model("copy-a", data_dir).path == (data_dir / "models" / "copy-a").resolve()
    title = models.list_models(data_dir)[3].title
    assert models.resolve_model(title, data_dir).name == "copy-a"


def test_unknown_model_lists_the_available_ones(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model 'nope'; available: tiny-sd"):
        models.resolve_model("nope", data_dir)
    with pytest.raises(ModelError, match=r"no model_index\.json"):
        models.resolve_model(str(tmp_path), data_dir)


def test_a_broken_model_folder_is_a_model_error(model_copy: Path) -> None:
    (model_copy / "SHA256SUMS").unlink()
    (model_copy / "unet" / "config.json").write_text("{ not json")
    with pytest.raises(ModelError, match="cannot load model"):
        models.load_model(models.ModelInfo("my-model", model_copy))


def test_switching_checkpoints_loads_and_announces_the_model(model_copy: Path) -> None:
    loaded: list[str] = []
    script_callbacks.on_model_loaded(lambda model: loaded.append(model.name))
    process_images(txt2img())
    process_images(txt2img(override_settings={"sd_model_checkpoint": str(model_copy)}))
    process_images(txt2img(override_settings={"sd_model_checkpoint": str(model_copy)}))
    assert loaded[-1] == "my-model" and loaded.count("my-model") == 1
    models.model_cache.clear()


def test_rebuild_script_reproduces_the_shipped_model(tmp_path: Path) -> None:
    out = tmp_path / "rebuilt"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "dev" / "build_tiny_model.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert (out / "SHA256SUMS").read_text() == (models.TINY_MODEL_DIR / "SHA256SUMS").read_text()


def test_a_home_folder_of_an_unknown_user_is_a_model_error(data_dir: Path) -> None:
    with pytest.raises(ModelError, match="cannot expand '~'"):
        models.resolve_model("~no-such-user-here/model", data_dir)
    with pytest.raises(ModelError, match="cannot expand '~'"):
        models.list_models(data_dir, "~no-such-user-here/model")
