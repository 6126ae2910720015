"""Golden case files: validation errors that name file, case and field; digests; the shipped suite; selection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT

from harness.errors import ConfigError, GoldenError
from harness.golden.cases import SYNTHETIC_IMAGES, Case, init_image, load_cases, parse_case, run_order
from harness.golden.measures import degenerate_reason, measure
from harness.golden.selection import Selection, parse_shard

SHIPPED_CASES_DIR = REPO_ROOT / "harness" / "cases"
SHIPPED_INIT_IMAGE = "images/harbour-64.png"

TXT2IMG: dict[str, Any] = {
    "id": "t2i-sample",
    "mode": "txt2img",
    "prompt": "a red fox in the snow",
    "seed": 1,
    "steps": 10,
    "sampler": "DDIM",
    "cfg_scale": 7.5,
}
IMG2IMG: dict[str, Any] = {
    **TXT2IMG,
    "id": "i2i-sample",
    "mode": "img2img",
    "init_image": "synthetic:gradient",
    "denoising_strength": 0.6,
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def cases_toml(*cases: dict[str, Any]) -> str:
    return "".join(
        "[[case]]\n" + "".join(f"{name} = {toml_value(value)}\n" for name, value in case.items()) + "\n"
        for case in cases
    )


def write_cases(folder: Path, *cases: dict[str, Any], name: str = "cases.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(cases_toml(*cases), encoding="utf-8")
    return path


def load_one(folder: Path, case: dict[str, Any]) -> Case:
    write_cases(folder, case)
    [loaded] = load_cases(folder)
    return loaded


def golden_error(cases_dir: Path, *fragments: str) -> str:
    """load_cases raises a one-line GoldenError holding every fragment; returns the message."""
    with pytest.raises(GoldenError) as caught:
        load_cases(cases_dir)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    return message


def without(case: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != name}


# -- loading valid files ----------------------------------------------------------------------
def test_a_minimal_txt2img_case_gets_the_documented_defaults(tmp_path: Path) -> None:
    source = write_cases(tmp_path, TXT2IMG)

    [case] = load_cases(tmp_path)

    assert case.id == "t2i-sample" and case.mode == "txt2img" and case.seed == 1 and case.steps == 10
    assert (case.width, case.height, case.batch_size) == (64, 64, 1)
    assert case.negative_prompt == "" and case.description == "" and dict(case.override_settings) == {}
    assert case.init_image is None and case.denoising_strength is None
    assert case.cfg_scale == 7.5 and isinstance(case.cfg_scale, float)
    assert case.source == str(source)


def test_cases_from_every_file_are_sorted_by_id(tmp_path: Path) -> None:
    write_cases(tmp_path, {**TXT2IMG, "id": "b-case"}, {**TXT2IMG, "id": "c-case"}, name="one.toml")
    write_cases(tmp_path, {**TXT2IMG, "id": "a-case"}, name="two.toml")
    (tmp_path / "notes.txt").write_text("not a case file", encoding="utf-8")

    assert [case.id for case in load_cases(tmp_path)] == ["a-case", "b-case", "c-case"]


def test_the_run_order_groups_cases_by_model_in_order_of_first_appearance(tmp_path: Path) -> None:
    def on(model: str | None) -> dict[str, Any]:
        return {"override_settings": {"sd_model_checkpoint": model}} if model else {}

    write_cases(
        tmp_path,
        {**TXT2IMG, "id": "a-eps", **on("tiny-sd-eps")},
        {**TXT2IMG, "id": "b-default"},
        {**TXT2IMG, "id": "c-inpaint", **on("tiny-sd-inpaint")},
        {**TXT2IMG, "id": "d-default"},
        {**TXT2IMG, "id": "e-eps", **on("tiny-sd-eps")},
    )
    cases = load_cases(tmp_path)

    assert [case.id for case in run_order(cases)] == ["a-eps", "e-eps", "b-default", "d-default", "c-inpaint"]
    assert run_order(cases[1:2]) == cases[1:2]
    assert run_order([]) == []


def test_an_img2img_case_with_a_shipped_file_records_its_sha256(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    shutil.copyfile(SHIPPED_CASES_DIR / SHIPPED_INIT_IMAGE, tmp_path / SHIPPED_INIT_IMAGE)

    case = load_one(tmp_path, {**IMG2IMG, "init_image": SHIPPED_INIT_IMAGE})

    assert case.init_image == SHIPPED_INIT_IMAGE and case.denoising_strength == 0.6
    assert case.params()["init_image_sha256"] is not None
    assert init_image(case, tmp_path).size == (64, 64)


def test_a_shipped_init_image_is_read_as_its_rgb_pixels() -> None:
    case = next(c for c in load_cases(SHIPPED_CASES_DIR) if c.init_image == SHIPPED_INIT_IMAGE and c.width == 64)
    with Image.open(SHIPPED_CASES_DIR / SHIPPED_INIT_IMAGE) as image:
        expected = image.convert("RGB")

    loaded = init_image(case, SHIPPED_CASES_DIR)

    assert loaded.mode == "RGB" and loaded.size == expected.size
    assert loaded.tobytes() == expected.tobytes()


@pytest.mark.parametrize("damage", ["deleted", "truncated", "garbage"])
def test_an_unreadable_init_image_names_case_and_file(tmp_path: Path, damage: str) -> None:
    (tmp_path / "images").mkdir()
    image_path = tmp_path / SHIPPED_INIT_IMAGE
    shutil.copyfile(SHIPPED_CASES_DIR / SHIPPED_INIT_IMAGE, image_path)
    case = load_one(tmp_path, {**IMG2IMG, "init_image": SHIPPED_INIT_IMAGE})
    data = image_path.read_bytes()
    if damage == "deleted":
        image_path.unlink()
    else:
        image_path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a PNG at all")

    with pytest.raises(GoldenError) as caught:
        init_image(case, tmp_path)

    message = str(caught.value)
    assert "'i2i-sample'" in message and str(image_path) in message, message
    assert "\n" not in message


# -- validation errors: file, case and field --------------------------------------------------
def test_unknown_field(tmp_path: Path) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, "colour": "red"})
    golden_error(tmp_path, str(source), "'t2i-sample'", "unknown field 'colour'")


@pytest.mark.parametrize("field", ["id", "mode", "prompt", "seed", "steps", "sampler", "cfg_scale"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    source = write_cases(tmp_path, without(TXT2IMG, field))
    case_name = "case #1" if field == "id" else "'t2i-sample'"
    golden_error(tmp_path, str(source), case_name, f"missing field '{field}'")


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("steps", "10", "'10'"),
        ("steps", True, "True"),
        ("seed", False, "False"),
        ("width", 64.0, "64.0"),
        ("batch_size", True, "True"),
        ("cfg_scale", "7.5", "'7.5'"),
        ("cfg_scale", True, "True"),
        ("prompt", 5, "5"),
        ("negative_prompt", ["blurry"], "['blurry']"),
        ("override_settings", "eta_ddim=0.5", "'eta_ddim=0.5'"),
        ("description", 1, "1"),
    ],
)
def test_wrong_type(tmp_path: Path, field: str, value: Any, shown: str) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, field: value})
    golden_error(tmp_path, str(source), "'t2i-sample'", f"field '{field}'", shown)


def test_an_id_of_the_wrong_type_is_named_by_position(tmp_path: Path) -> None:
    source = write_cases(tmp_path, TXT2IMG, {**TXT2IMG, "id": 7})
    golden_error(tmp_path, str(source), "case #2", "field 'id'", "7")


@pytest.mark.parametrize("bad_id", ["Upper", "has space", "-leading-dash", "dots.here", ""])
def test_bad_id(tmp_path: Path, bad_id: str) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, "id": bad_id})
    golden_error(tmp_path, str(source), "field 'id'", repr(bad_id))


def test_bad_mode(tmp_path: Path) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, "mode": "inpaint"})
    golden_error(tmp_path, str(source), "'t2i-sample'", "field 'mode'", "'inpaint'")


def test_negative_seed(tmp_path: Path) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, "seed": -1})
    golden_error(tmp_path, str(source), "'t2i-sample'", "field 'seed'", "-1")


@pytest.mark.parametrize("field", ["init_image", "denoising_strength"])
def test_img2img_without_its_inputs(tmp_path: Path, field: str) -> None:
    source = write_cases(tmp_path, without(IMG2IMG, field))
    golden_error(tmp_path, str(source), "'i2i-sample'", f"'{field}'")


@pytest.mark.parametrize(("field", "value"), [("init_image", "synthetic:gradient"), ("denoising_strength", 0.5)])
def test_txt2img_with_img2img_inputs(tmp_path: Path, field: str, value: Any) -> None:
    source = write_cases(tmp_path, {**TXT2IMG, field: value})
    golden_error(tmp_path, str(source), "'t2i-sample'", f"'{field}'", "img2img")


def test_unknown_synthetic_generator(tmp_path: Path) -> None:
    source = write_cases(tmp_path, {**IMG2IMG, "init_image": "synthetic:plasma"})
    message = golden_error(tmp_path, str(source), "'i2i-sample'", "field 'init_image'", "'synthetic:plasma'")
    assert "synthetic:gradient" in message  # says which generators exist


def test_missing_init_image_file(tmp_path: Path) -> None:
    source = write_cases(tmp_path, {**IMG2IMG, "init_image": "images/nowhere.png"})
    golden_error(tmp_path, str(source), "'i2i-sample'", "field 'init_image'", "nowhere.png", "not found")


def test_duplicate_id_across_files_names_both_files(tmp_path: Path) -> None:
    first = write_cases(tmp_path, TXT2IMG, name="a.toml")
    second = write_cases(tmp_path, {**TXT2IMG, "prompt": "another"}, name="b.toml")
    golden_error(tmp_path, str(first), str(second), "'t2i-sample'")


def test_duplicate_id_within_one_file(tmp_path: Path) -> None:
    source = write_cases(tmp_path, TXT2IMG, TXT2IMG)
    golden_error(tmp_path, str(source), "'t2i-sample'")


def test_malformed_toml(tmp_path: Path) -> None:
    source = tmp_path / "broken.toml"
    source.write_text('[[case]\nid = "x"\n', encoding="utf-8")
    golden_error(tmp_path, str(source), "malformed TOML")


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    source = tmp_path / "latin1.toml"
    source.write_bytes(cases_toml(TXT2IMG).replace("a red fox", "a caf\u00e9 fox").encode("latin-1"))
    golden_error(tmp_path, str(source))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "case = []\n"])
def test_no_cases(tmp_path: Path, text: str) -> None:
    (tmp_path / "empty.toml").write_text(text, encoding="utf-8")
    golden_error(tmp_path, str(tmp_path), "no golden cases")


def test_missing_cases_folder(tmp_path: Path) -> None:
    golden_error(tmp_path / "absent", str(tmp_path / "absent"), "not found")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    source = tmp_path / "cases.toml"
    source.write_text('title = "my cases"\n\n' + cases_toml(TXT2IMG), encoding="utf-8")
    golden_error(tmp_path, str(source), "'title'")


@pytest.mark.parametrize("text", ['case = "t2i"\n', "case = 3\n", "[case]\nid = 'x'\n"])
def test_case_that_is_not_an_array_of_tables(tmp_path: Path, text: str) -> None:
    source = tmp_path / "cases.toml"
    source.write_text(text, encoding="utf-8")
    golden_error(tmp_path, str(source), "[[case]]")


@pytest.mark.parametrize("text", ['case = ["t2i-sample"]\n', "case = [1, 2]\n"])
def test_case_entries_that_are_not_tables(tmp_path: Path, text: str) -> None:
    source = tmp_path / "cases.toml"
    source.write_text(text, encoding="utf-8")
    golden_error(tmp_path, str(source), "case #1")


def test_parse_case_names_source_and_position(tmp_path: Path) -> None:
    with pytest.raises(GoldenError, match=r"somewhere\.toml: case #3: missing field 'id'"):
        parse_case(without(TXT2IMG, "id"), tmp_path / "somewhere.toml", tmp_path, 2)


# -- digests ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base", "change"),
    [
        (TXT2IMG, {"prompt": "a red fox in the snow."}),
        (TXT2IMG, {"negative_prompt": "blurry"}),
        (TXT2IMG, {"seed": 2}),
        (TXT2IMG, {"steps": 11}),
        (TXT2IMG, {"sampler": "Euler"}),
        (TXT2IMG, {"cfg_scale": 7.0}),
        (TXT2IMG, {"width": 96}),
        (TXT2IMG, {"height": 96}),
        (TXT2IMG, {"batch_size": 2}),
        (TXT2IMG, {"override_settings": {"eta_ddim": 0.5}}),
        (TXT2IMG, {"mode": "img2img", "init_image": "synthetic:gradient", "denoising_strength": 0.6}),
        (IMG2IMG, {"init_image": "synthetic:checker"}),
        (IMG2IMG, {"denoising_strength": 0.7}),
        ({**TXT2IMG, "override_settings": {"eta_ddim": 0.5}}, {"override_settings": {"eta_ddim": 0.25}}),
    ],
)
def test_digest_changes_with_every_output_parameter(tmp_path: Path, base: dict[str, Any], change: dict) -> None:
    original = load_one(tmp_path / "before", base)
    changed = load_one(tmp_path / "after", {**base, **change})

    assert changed.digest() != original.digest()


def test_digest_ignores_description_source_file_and_equivalent_spellings(tmp_path: Path) -> None:
    base = {**TXT2IMG, "cfg_scale": 7, "override_settings": {"eta_ddim": 0.5, "CLIP_stop_at_last_layers": 2}}
    original = load_one(tmp_path / "before", base)
    same = {
        **base,
        "cfg_scale": 7.0,
        "override_settings": {"CLIP_stop_at_last_layers": 2, "eta_ddim": 0.5},
        "description": "described now",
    }
    write_cases(tmp_path / "after", same, name="elsewhere.toml")
    [rewritten] = load_cases(tmp_path / "after")

    assert rewritten.description == "described now"
    assert rewritten.digest() == original.digest()


def test_digest_changes_when_the_shipped_init_image_bytes_change(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    image_path = tmp_path / SHIPPED_INIT_IMAGE
    shutil.copyfile(SHIPPED_CASES_DIR / SHIPPED_INIT_IMAGE, image_path)
    case = {**IMG2IMG, "init_image": SHIPPED_INIT_IMAGE}
    before = load_one(tmp_path, case)
    with Image.open(image_path) as image:
        edited = image.convert("RGB")
    edited.putpixel((0, 0), tuple(255 - v for v in edited.getpixel((0, 0))))
    edited.save(image_path, "PNG")

    after = load_one(tmp_path, case)

    assert after.init_image == before.init_image
    assert after.digest() != before.digest()


# -- the shipped suite ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> list[Case]:
    return load_cases(SHIPPED_CASES_DIR)


def test_shipped_suite_is_large_enough_and_uniquely_named(shipped: list[Case]) -> None:
    ids = [case.id for case in shipped]
    assert len(ids) >= 12
    assert len(set(ids)) == len(ids)


def test_shipped_suite_covers_every_supported_sampler(shipped: list[Case]) -> None:
    from serena.samplers import samplers_for

    supported = {info.name for info in samplers_for("sample")}
    assert supported, "the tiny model supports no sampler?"
    assert supported <= {case.sampler for case in shipped}


def test_shipped_suite_covers_modes_batch_negative_prompt_overrides_and_non_square(shipped: list[Case]) -> None:
    assert {case.mode for case in shipped} == {"txt2img", "img2img"}
    assert any(case.batch_size > 1 for case in shipped)
    assert any(case.negative_prompt for case in shipped)
    assert any(case.override_settings for case in shipped)
    assert any(case.width != case.height for case in shipped)
    assert any(case.init_image and not case.init_image.startswith("synthetic:") for case in shipped)
    assert any(case.init_image and case.init_image.startswith("synthetic:") for case in shipped)


@pytest.mark.parametrize("generator", sorted(SYNTHETIC_IMAGES))
@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_synthetic_init_images_are_deterministic_and_not_flat(generator: str, size: tuple[int, int]) -> None:
    width, height = size
    case = Case(
        id="i2i-sample",
        mode="img2img",
        prompt="p",
        seed=1,
        steps=10,
        sampler="DDIM",
        cfg_scale=7.5,
        width=width,
        height=height,
        init_image=f"synthetic:{generator}",
        denoising_strength=0.6,
    )

    first = init_image(case, SHIPPED_CASES_DIR)
    second = init_image(case, SHIPPED_CASES_DIR)

    assert first.mode == "RGB" and first.size == (width, height)
    assert first.tobytes() == second.tobytes()
    assert degenerate_reason(first, measure(first)) is None
    assert float(np.asarray(first, dtype=np.float64).std()) > 10.0


def test_synthetic_generators_draw_different_pictures() -> None:
    drawn = {name: draw(64, 64).tobytes() for name, draw in SYNTHETIC_IMAGES.items()}
    assert len(set(drawn.values())) == len(drawn)


# -- selection and shards ---------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [(None, None), ("1/1", (1, 1)), ("1/2", (1, 2)), ("4/4", (4, 4))])
def test_parse_shard_accepts_k_of_n(text: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/2", "0/2", "-1/2", "1/0", "2", "a/b", "1/2/3", "", "/"])
def test_parse_shard_rejects_anything_else_naming_the_value(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_shard(text)
    assert "--shard" in str(caught.value) and repr(text) in str(caught.value)


def test_selection_patterns_are_case_sensitive_globs_or_exact_ids(shipped: list[Case]) -> None:
    ids = [case.id for case in shipped]

    assert [c.id for c in Selection().apply(shipped)] == ids
    assert Selection().is_full and not Selection(("t2i-*",)).is_full and not Selection(shard=(1, 2)).is_full
    assert [c.id for c in Selection(("t2i-euler",)).apply(shipped)] == ["t2i-euler"]
    assert [c.id for c in Selection(("t2i-euler*",)).apply(shipped)] == [i for i in ids if i.startswith("t2i-euler")]
    assert [c.id for c in Selection(("t2i-euler-a*",)).apply(shipped)] == [
        "t2i-euler-a",
        "t2i-euler-a-batches",
        "t2i-euler-a-variation-0",
        "t2i-euler-a-variation-03",
    ]
    both = Selection(("i2i-*", "t2i-lcm")).apply(shipped)
    assert [c.id for c in both] == [i for i in ids if i.startswith("i2i-") or i == "t2i-lcm"]
    assert Selection(("T2I-*",)).apply(shipped) == []
    assert Selection(("nothing-like-this",)).apply(shipped) == []


@pytest.mark.parametrize("patterns", [(), ("t2i-*",)])
def test_shards_partition_the_selection_exactly_once(shipped: list[Case], patterns: tuple[str, ...]) -> None:
    selected = [c.id for c in Selection(patterns).apply(shipped)]
    for total in range(1, len(shipped) + 2):
        shards = [[c.id for c in Selection(patterns, (k, total)).apply(shipped)] for k in range(1, total + 1)]
        merged = [case_id for shard in shards for case_id in shard]
        assert sorted(merged) == sorted(selected), f"N={total}"
        assert len(merged) == len(set(merged)), f"N={total}: a case is in two shards"
        sizes = [len(shard) for shard in shards]
        assert max(sizes) - min(sizes) <= 1, f"N={total}: unbalanced shards {sizes}"


def test_selection_reports_itself() -> None:
    assert Selection(("a*",), (2, 3)).to_dict() == {"patterns": ["a*"], "shard": [2, 3]}
    assert Selection().to_dict() == {"patterns": [], "shard": None}


def test_n_iter_is_part_of_a_case_only_when_it_is_not_one(tmp_path: Path) -> None:
    """Cases recorded before n_iter existed keep their digests; a batch count of 2 is a different case."""
    single = load_one(tmp_path, {**TXT2IMG})
    twice = load_one(tmp_path, {**TXT2IMG, "n_iter": 2, "batch_size": 2})
    assert "n_iter" not in single.params() and single.processing_kwargs()["n_iter"] == 1
    assert twice.params()["n_iter"] == 2 and twice.processing_kwargs()["n_iter"] == 2 and twice.image_count == 4
    assert single.digest() != load_one(tmp_path, {**TXT2IMG, "n_iter": 2}).digest()
    with pytest.raises(GoldenError, match="field 'n_iter' must be at least 1, got 0"):
        load_one(tmp_path, {**TXT2IMG, "n_iter": 0})
