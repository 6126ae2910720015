"""Hostile input gets a 4xx naming the field from the API (and exit 2 from the CLI), never a 5xx, and the server stays
healthy: lone surrogates, NUL, huge and deeply nested values, model choices, and output folders a file is in the way
of. A hypothesis fuzz of those classes sends hundreds of requests and sees no response >= 500."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import gradient_image

from serena import models, shared
from serena.api import MAX_JSON_DEPTH, background_server, create_app
from serena.api_models import ApiLimits
from serena.cli import main
from serena.errors import InputError, ModelError
from serena.processing import MAX_PROMPT_CHARS, StableDiffusionProcessingTxt2Img, process_images

LIMITS = ApiLimits(max_width=128, max_height=128, max_steps=4, max_batch_size=2, max_n_iter=2, max_payload_bytes=8192)
FAST = {"prompt": "a red fox", "seed": 3, "steps": 2, "sampler_name": "DDIM", "width": 64, "height": 64}
TIMEOUT = httpx.Timeout(120.0, connect=10.0)
TINY_SHA = models.model_sha256(models.TINY_MODEL_DIR)
TINY_TITLE = f"tiny-sd [{models.short_hash(TINY_SHA)}]"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with background_server(create_app(LIMITS)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


@pytest.fixture
def server_files(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """What a hostile request may name: a file where a folder goes, folders that exist and are no model, a real model
    outside the listed ones, and two listed models that do not load."""
    (data_dir / "outputs").mkdir(parents=True)
    (data_dir / "outputs" / "afile").write_text("not a folder")
    (tmp_path / "plain-folder").mkdir()
    (tmp_path / "unlisted-model").symlink_to(models.TINY_MODEL_DIR)
    no_weights = data_dir / "models" / "no-weights"
    no_weights.mkdir(parents=True)
    (no_weights / "model_index.json").write_text("{}")
    bad_weights = data_dir / "models" / "bad-weights"
    (bad_weights / "unet").mkdir(parents=True)
    (bad_weights / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (bad_weights / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    return {"plain_folder": str(tmp_path / "plain-folder"), "unlisted_model": str(tmp_path / "unlisted-model")}


def body_bytes(body: dict[str, Any]) -> bytes:
    """JSON as a hostile client sends it: lone surrogates as \\udXXX escapes (valid JSON, invalid Unicode)."""
    return json.dumps(body, ensure_ascii=True).encode("ascii")


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/sdapi/v1/{path}", content=body_bytes(body), headers={"content-type": "application/json"})


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]} if depth % 2 else {"a": value}
    return value


def assert_healthy(client: httpx.Client) -> None:
    """The server answers, the options are the defaults, and a generation still works."""
    options = client.get("/sdapi/v1/options")
    assert options.status_code == 200
    assert options.json()["sd_model_checkpoint"] == "tiny-sd" and options.json()["outdir_txt2img"] == (
        "outputs/txt2img-images"
    )
    response = post(client, "txt2img", FAST)
    assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 1


SURROGATE = "a\ud800b"
LONG_NAME = "n" * 300

HOSTILE_GENERATIONS = [
    ({"prompt": SURROGATE}, "prompt"),
    ({"negative_prompt": "x\udfff"}, "negative_prompt"),
    ({"prompt": "a\x00b"}, "prompt"),
    ({"prompt": "a" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
    # within the character cap, over the chunks a prompt may take: refused before the UNet runs
    ({"prompt": "fox " * (MAX_PROMPT_CHARS // 4)}, "prompt"),
    ({"negative_prompt": "blurry, " * 1000}, "negative_prompt"),
    ({"override_settings": {"\udc80": 1}}, "override_settings.\\udc80"),
    ({"override_settings": {"not_an_option": nested(MAX_JSON_DEPTH + 40)}}, "override_settings.not_an_option"),
    ({"override_settings": {"not_an_option": [SURROGATE]}}, "override_settings.not_an_option[0]"),
    ({"override_settings": {"sd_model_checkpoint": "{plain_folder}"}}, "override_settings.sd_model_checkpoint"),
    ({"override_settings": {"sd_model_checkpoint": "{unlisted_model}"}}, "override_settings.sd_model_checkpoint"),
    ({"override_settings": {"sd_model_checkpoint": "tiny-sd [0123456789]"}}, "override_settings.sd_model_checkpoint"),
    ({"override_settings": {"sd_model_checkpoint": "no-weights"}}, "override_settings.sd_model_checkpoint"),
    ({"override_settings": {"sd_model_checkpoint": "bad-weights"}}, "override_settings.sd_model_checkpoint"),
    (
        {"save_images": True, "override_settings": {"outdir_txt2img": "outputs/afile"}},
        "override_settings.outdir_txt2img",
    ),
    (
        {"save_images": True, "override_settings": {"outdir_txt2img": "outputs/afile/below"}},
        "override_settings.outdir_txt2img",
    ),
    ({"save_images": True, "override_settings": {"outdir_txt2img": LONG_NAME}}, "override_settings.outdir_txt2img"),
    ({"save_images": True, "override_settings": {"outdir_txt2img": "a\x00b"}}, "override_settings.outdir_txt2img"),
    ({"override_settings": {"samples_filename_pattern": "[seed]\ud800"}}, "override_settings.samples_filename_pattern"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_GENERATIONS)
def test_hostile_generation_requests_get_422_naming_the_field(
    client: httpx.Client, server_files: dict[str, str], body: dict[str, Any], field: str
) -> None:
    body = json.loads(
        json.dumps(body)
        .replace("{plain_folder}", server_files["plain_folder"])
        .replace("{unlisted_model}", server_files["unlisted_model"])
    )
    response = post(client, "txt2img", {**FAST, **body})
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith(field) and message[len(field)] in ":.[", message
    assert_healthy(client)


def test_img2img_gets_the_same_screen(client: httpx.Client) -> None:
    from test_api import png_base64

    image = png_base64(gradient_image())
    response = post(client, "img2img", {**FAST, "prompt": SURROGATE, "init_images": [image]})
    assert response.status_code == 422 and response.json()["message"].startswith("prompt: ")


HOSTILE_OPTIONS = [
    ("sd_model_checkpoint", "{plain_folder}"),
    ("sd_model_checkpoint", "{unlisted_model}"),
    ("sd_model_checkpoint", "tiny-sd [0123456789]"),
    ("sd_model_checkpoint", "no-weights"),
    ("sd_model_checkpoint", "bad-weights"),
    ("sd_model_checkpoint", SURROGATE),
    ("outdir_txt2img", "outputs/afile"),
    ("outdir_img2img", "outputs/afile/below"),
    ("outdir_txt2img", LONG_NAME),
    ("outdir_txt2img", "x" * 2000),
    ("outdir_img2img", "a\x00b"),
    ("samples_filename_pattern", "\udcff"),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE_OPTIONS)
def test_hostile_options_get_422_and_change_nothing(
    client: httpx.Client, server_files: dict[str, str], data_dir: Path, key: str, value: str
) -> None:
    value = value.format(**server_files) if value.startswith("{") else value
    response = post(client, "options", {"jpeg_quality": 80, key: value})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{key}: "), response.json()["message"]
    assert shared.opts.jpeg_quality == 95 and not (data_dir / "config.json").exists()
    assert_healthy(client)


def test_a_listed_model_is_chosen_by_name_or_title(client: httpx.Client) -> None:
    listed = client.get("/sdapi/v1/sd-models").json()
    assert TINY_TITLE in [item["title"] for item in listed]
    for choice in ("tiny-sd", TINY_TITLE, f"tiny-sd [{TINY_SHA[:8]}]", f"tiny-sd [{TINY_SHA}]"):
        assert post(client, "options", {"sd_model_checkpoint": choice}).status_code == 200
        assert (
            post(client, "txt2img", {**FAST, "override_settings": {"sd_model_checkpoint": choice}}).status_code == 200
        )


def test_models_that_cannot_be_hashed_are_listed_without_a_hash(
    client: httpx.Client, server_files: dict[str, str]
) -> None:
    response = client.get("/sdapi/v1/sd-models")
    assert response.status_code == 200
    by_name = {item["model_name"]: item for item in response.json()}
    assert by_name["no-weights"]["hash"] is None and by_name["no-weights"]["title"] == "no-weights"
    assert by_name["bad-weights"]["hash"] is not None


def test_a_refused_model_does_not_tell_which_server_folders_exist(
    client: httpx.Client, server_files: dict[str, str], tmp_path: Path
) -> None:
    messages = set()
    for path in (server_files["plain_folder"], server_files["unlisted_model"], str(tmp_path / "nothing-here"), "/etc"):
        response = post(client, "options", {"sd_model_checkpoint": path})
        assert response.status_code == 422
        messages.add(response.json()["message"].replace(path, "PATH"))
    assert len(messages) == 1, messages


# -- the runtime and the CLI --------------------------------------------------------------------
def test_a_file_in_the_way_of_the_output_folder_at_run_time_is_an_input_error(data_dir: Path) -> None:
    # chosen before the file appeared: the runtime still names the option instead of failing with an OSError
    shared.opts.set("outdir_txt2img", "later")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "later").write_text("a file now")
    with pytest.raises(InputError) as caught:
        process_images(StableDiffusionProcessingTxt2Img(**FAST))
    assert caught.value.field == "outdir_txt2img"
    with pytest.raises(InputError) as caught:
        process_images(StableDiffusionProcessingTxt2Img(**FAST, outpath_samples=str(data_dir / ("o" * 300))))
    assert caught.value.field == "outpath_samples"


def test_model_titles_must_carry_the_models_hash(data_dir: Path) -> None:
    for good in ("tiny-sd", TINY_TITLE, f"tiny-sd [{TINY_SHA[:8]}]", f"tiny-sd [{TINY_SHA.upper()}]"):
        assert models.resolve_model(good, data_dir).name == "tiny-sd"
    for bad in ("tiny-sd [0123456789]", f"tiny-sd [{TINY_SHA[:7]}]", "tiny-sd []", f"tiny-sd [{TINY_SHA}0]"):
        with pytest.raises(ModelError, match=r"the hash is not tiny-sd's; its title is tiny-sd \["):
            models.resolve_model(bad, data_dir)
    with pytest.raises(ModelError, match="choose a name or title"):
        models.resolve_model(str(models.TINY_MODEL_DIR), data_dir, listed_only=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["options", "set", "sd_model_checkpoint", "/no/such/model"], "sd_model_checkpoint"),
        (["options", "set", "sd_model_checkpoint", "tiny-sd [0123456789]"], "the hash is not tiny-sd's"),
        (["options", "set", "outdir_txt2img", "outputs/afile"], "a file of that name is in the way"),
        (["options", "set", "outdir_img2img", LONG_NAME], "bytes; a file system allows 255"),
        (["options", "set", "samples_filename_pattern", "[seed]\udcff"], "lone UTF-16 surrogate"),
        (["txt2img", "--steps", "1", "--width", "64", "-p", "a\udcffb"], "prompt holds a lone UTF-16"),
    ],
)
def test_the_cli_refuses_the_same_choices_with_exit_2(
    args: list[str], message: str, data_dir: Path, server_files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(data_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serena: error: ") and message in err and err.count("\n") == 1, err
    assert not (data_dir / "config.json").exists()


def test_the_cli_still_takes_a_model_folder_path(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(data_dir), "options", "set", "sd_model_checkpoint", str(models.TINY_MODEL_DIR)]) == 0
    assert json.loads((data_dir / "config.json").read_text())["sd_model_checkpoint"] == str(models.TINY_MODEL_DIR)


# -- fuzzing -----------------------------------------------------------------------------------
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.text(max_size=5), SURROGATES, st.just("\x00")), max_size=8).map("".join),
    st.integers(MAX_PROMPT_CHARS - 2, MAX_PROMPT_CHARS + 50).map(lambda n: "p" * n),
    st.lists(
        st.sampled_from(["..", "", "outputs", "afile", "n" * 256, "C:", "~", "\x00", "\udc00", "/etc", "a b"]),
        min_size=1,
        max_size=5,
    ).map("/".join),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)
json_values = st.one_of(
    st.recursive(
        json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3)
    ),
    st.integers(0, MAX_JSON_DEPTH + 20).map(nested),
)
known_keys = st.sampled_from(
    ["sd_model_checkpoint", "outdir_txt2img", "outdir_img2img", "samples_filename_pattern", "samples_format"]
)
fuzz_requests = st.one_of(
    st.tuples(st.just("txt2img"), st.fixed_dictionaries({"prompt": hostile_text})),
    st.tuples(st.just("txt2img"), st.fixed_dictionaries({"negative_prompt": hostile_text})),
    st.tuples(
        st.just("txt2img"),
        st.fixed_dictionaries(
            {"save_images": st.booleans(), "override_settings": st.dictionaries(known_keys, hostile_text, max_size=2)}
        ),
    ),
    st.tuples(
        st.just("txt2img"),
        st.fixed_dictionaries({"override_settings": st.dictionaries(hostile_text, json_values, max_size=2)}),
    ),
    st.tuples(st.just("options"), st.dictionaries(known_keys, hostile_text, min_size=1, max_size=2)),
    st.tuples(st.just("options"), st.dictionaries(known_keys, json_values, min_size=1, max_size=1)),
)


def test_a_fuzz_of_hostile_input_gets_no_server_error(
    base_url: str, server_files: dict[str, str], record_property: Any
) -> None:
    statuses: list[int] = []
    examples = int(os.environ.get("SERENA_FUZZ_EXAMPLES", "400"))
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, trust_env=False) as client:

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(request=fuzz_requests)
        def call(request: tuple[str, dict[str, Any]]) -> None:
            path, body = request
            full = {**FAST, **body} if path == "txt2img" else body
            try:
                response = post(client, path, full)
                statuses.append(response.status_code)
                assert response.status_code < 500, (path, response.text[:300])
            finally:
                shared.opts.reset()  # an accepted POST /options must not carry over into the next example

        call()
        assert_healthy(client)
    record_property("fuzz_requests", len(statuses))
    print(f"hostile-input fuzz: {len(statuses)} requests, {statuses.count(200)} x 200, {statuses.count(422)} x 422")
    assert len(statuses) >= examples // 2 and 200 in statuses and 422 in statuses
    assert all(status < 500 for status in statuses)
