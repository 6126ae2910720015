"""Bad input and a failure of the code under test are told apart on every front end: InputError (a ValueError that
names its field) is the caller's mistake — exit 2, HTTP 422 at that field; anything else generation raises is the
runtime's failure — exit 1, a one-line HTTP 500, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import txt2img

import serena.processing
from serena import shared
from serena.api import background_server, create_app
from serena.api_models import ApiLimits
from serena.cli import main
from serena.errors import EXIT_FAILED, EXIT_USAGE, InputError

FAST = {"prompt": "a fox", "seed": 1, "steps": 4, "sampler_name": "DDIM", "width": 64, "height": 64}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"negative_prompt": 3}, "negative_prompt"),
        ({"width": 65}, "width"),
        ({"sampler_name": "Nope"}, "sampler_name"),
        ({"sampler_name": "DPM2"}, "sampler_name"),  # the model predicts the sample; DPM2 needs noise
        ({"override_settings": {"CLIP_stop_at_last_layers": 3}}, "CLIP_stop_at_last_layers"),  # 2-layer encoder
    ],
)
def test_input_errors_are_value_errors_that_name_their_field(overrides: dict, field: str) -> None:
    with pytest.raises(InputError) as caught:
        serena.processing.process_images(txt2img(**{**FAST, **overrides}))
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field


@pytest.fixture
def runtime_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refactor slip: generation raises a plain ValueError, which is no input check."""

    def broken(p):
        raise ValueError("scheduler timesteps out of order")

    monkeypatch.setattr(serena.processing, "process_images_inner", broken)


def test_the_cli_exits_1_for_a_runtime_failure_and_2_for_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runtime_fault: None
) -> None:
    args = ["--data-dir", str(tmp_path), "txt2img", "-p", "a fox", "--width", "64", "--height", "64", "--steps", "4"]
    assert main(args) == EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert err == (
        "serena: error: unexpected ValueError: scheduler timesteps out of order (set SERENA_DEBUG=1 for a traceback)"
    )
    assert main([*args, "--steps", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == "serena: error: steps must be an integer from 1 to 1000, got 0"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with background_server(create_app(ApiLimits())) as url:
        yield url


def test_the_api_answers_422_at_the_field_the_error_names(base_url: str) -> None:
    body = {**FAST, "override_settings": {"CLIP_stop_at_last_layers": 2}, "sampler_name": "DPM2"}
    response = httpx.post(f"{base_url}/sdapi/v1/txt2img", json=body, timeout=120, trust_env=False)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sampler_name"]
    clip = {**FAST, "override_settings": {"CLIP_stop_at_last_layers": 3}}
    response = httpx.post(f"{base_url}/sdapi/v1/txt2img", json=clip, timeout=120, trust_env=False)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "override_settings", "CLIP_stop_at_last_layers"]
    assert shared.opts.CLIP_stop_at_last_layers == 1


def test_the_api_answers_a_one_line_500_for_a_runtime_failure_and_keeps_serving(
    base_url: str, monkeypatch: pytest.MonkeyPatch, runtime_fault: None
) -> None:
    response = httpx.post(f"{base_url}/sdapi/v1/txt2img", json=FAST, timeout=120, trust_env=False)
    assert response.status_code == 500
    assert response.json() == {"error": "ValueError", "detail": "ValueError: scheduler timesteps out of order"}
    monkeypatch.undo()
    healthy = httpx.post(f"{base_url}/sdapi/v1/txt2img", json=FAST, timeout=120, trust_env=False)
    assert healthy.status_code == 200 and len(healthy.json()["images"]) == 1
