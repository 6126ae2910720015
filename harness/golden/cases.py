"""Golden case definitions: TOML files under harness/cases/, validated with file, case and field in every error."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from harness.errors import GoldenError

Mode = Literal["txt2img", "img2img"]
CASE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SYNTHETIC_PREFIX = "synthetic:"

# field -> (accepted types, required, default)
_FIELDS: dict[str, tuple[tuple[type, ...], bool, Any]] = {
    "id": ((str,), True, None),
    "mode": ((str,), True, None),
    "prompt": ((str,), True, None),
    "negative_prompt": ((str,), False, ""),
    "seed": ((int,), True, None),
    "steps": ((int,), True, None),
    "sampler": ((str,), True, None),
    "cfg_scale": ((int, float), True, None),
    "width": ((int,), False, 64),
    "height": ((int,), False, 64),
    "batch_size": ((int,), False, 1),
    "n_iter": ((int,), False, 1),
    "init_image": ((str,), False, None),
    "mask_image": ((str,), False, None),
    "denoising_strength": ((int, float), False, None),
    "override_settings": ((dict,), False, {}),
    "description": ((str,), False, ""),
    "quarantine": ((dict,), False, None),
}
# Request fields beyond the basics, named as in StableDiffusionProcessing and the HTTP API (the CLI's flag is the name
# with dashes): set in a case only when it uses them, and part of its digest only then, so older cases keep theirs.
GENERATION_FIELDS: dict[str, tuple[type, ...]] = {
    "scheduler": (str,),
    "subseed": (int,),
    "subseed_strength": (int, float),
    "seed_resize_from_w": (int,),
    "seed_resize_from_h": (int,),
    "styles": (list,),
    "resize_mode": (int,),
    # img2img: inpainting (with mask_image)
    "mask_blur": (int,),
    "mask_blur_x": (int,),
    "mask_blur_y": (int,),
    "inpainting_fill": (int,),
    "inpaint_full_res": (bool,),
    "inpaint_full_res_padding": (int,),
    "inpainting_mask_invert": (int,),
    "mask_round": (bool,),
    # txt2img: the hires fix (its denoising_strength is the case's own field)
    "enable_hr": (bool,),
    "hr_scale": (int, float),
    "hr_resize_x": (int,),
    "hr_resize_y": (int,),
    "hr_upscaler": (str,),
    "hr_second_pass_steps": (int,),
    "hr_sampler_name": (str,),
    "hr_scheduler": (str,),
    "hr_prompt": (str,),
    "hr_negative_prompt": (str,),
}
_FIELDS.update({name: (types, False, None) for name, types in GENERATION_FIELDS.items()})


@dataclass(frozen=True)
class Quarantine:
    """A case that runs and reports but does not fail the run until `until` (inclusive); after that it fails."""

    reason: str
    until: date

    def expired(self, today: date) -> bool:
        return today > self.until

    def to_dict(self, today: date) -> dict[str, Any]:
        return {"reason": self.reason, "until": self.until.isoformat(), "expired": self.expired(today)}


@dataclass(frozen=True)
class Case:
    """One seeded generation whose output is recorded and compared."""

    id: str
    mode: Mode
    prompt: str
    seed: int
    steps: int
    sampler: str
    cfg_scale: float
    width: int = 64
    height: int = 64
    negative_prompt: str = ""
    batch_size: int = 1
    n_iter: int = 1  # batches run one after another (the web UI's batch count)
    init_image: str | None = None
    mask_image: str | None = None  # a shipped mask file: the case inpaints
    denoising_strength: float | None = None
    override_settings: Mapping[str, Any] = field(default_factory=dict)
    # the GENERATION_FIELDS the case sets
    generation: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""  # the TOML file it came from
    init_image_sha256: str | None = None  # of a shipped init image file, part of the digest
    mask_image_sha256: str | None = None  # of the mask file, part of the digest (only when there is one)
    quarantine: Quarantine | None = None  # not part of the digest: it says how to judge, not what to make

    def params(self) -> dict[str, Any]:
        """Everything that determines the output, as plain JSON values (n_iter only when not 1, so the cases that
        predate it keep their digests)."""
        params = {
            "mode": self.mode,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "steps": self.steps,
            "sampler": self.sampler,
            "cfg_scale": self.cfg_scale,
            "width": self.width,
            "height": self.height,
            "batch_size": self.batch_size,
            "init_image": self.init_image,
            "init_image_sha256": self.init_image_sha256,
            "denoising_strength": self.denoising_strength,
            "override_settings": dict(sorted(self.override_settings.items())),
        }
        if self.n_iter != 1:
            params["n_iter"] = self.n_iter
        if self.mask_image is not None:
            params["mask_image"] = self.mask_image
            params["mask_image_sha256"] = self.mask_image_sha256
        params.update(sorted(self.generation.items()))
        return params

    @property
    def image_count(self) -> int:
        return self.batch_size * self.n_iter

    def processing_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the runtime's processing class for this case; img2img adds its init image.

        harness/golden/ab_worker.py keeps a copy (it imports nothing from harness); a smoke test checks they agree.
        """
        kwargs: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "steps": self.steps,
            "sampler_name": self.sampler,
            "cfg_scale": self.cfg_scale,
            "width": self.width,
            "height": self.height,
            "batch_size": self.batch_size,
            "n_iter": self.n_iter,
            "override_settings": dict(self.override_settings),
            "do_not_save_samples": True,
            **self.generation,
        }
        if self.denoising_strength is not None:
            kwargs["denoising_strength"] = self.denoising_strength
        return kwargs

    def digest(self) -> str:
        canonical = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def with_changes(self, **changes: Any) -> Case:
        from dataclasses import replace

        return replace(self, **changes)


def _check_field(where: str, name: str, value: Any) -> Any:
    types, _, _ = _FIELDS[name]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise GoldenError(f"{where}: field {name!r} expects {expected}, got {value!r}")
    return float(value) if float in types else value


def parse_case(table: Mapping[str, Any], source: Path, cases_dir: Path, index: int) -> Case:
    where = f"{source}: case #{index + 1}"
    if isinstance(table.get("id"), str):
        where = f"{source}: case {table['id']!r}"
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise GoldenError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(_FIELDS)}")
    values: dict[str, Any] = {}
    for name, (_, required, default) in _FIELDS.items():
        if name in table:
            values[name] = _check_field(where, name, table[name])
        elif required:
            raise GoldenError(f"{where}: missing field {name!r}")
        else:
            values[name] = default
    if not CASE_ID.match(values["id"]):
        raise GoldenError(f"{where}: field 'id' must match {CASE_ID.pattern}, got {values['id']!r}")
    if values["mode"] not in ("txt2img", "img2img"):
        raise GoldenError(f"{where}: field 'mode' must be txt2img or img2img, got {values['mode']!r}")
    for count in ("batch_size", "n_iter"):
        if values[count] < 1:
            raise GoldenError(f"{where}: field {count!r} must be at least 1, got {values[count]}")
    if values["seed"] < 0:
        raise GoldenError(f"{where}: field 'seed' must be fixed (>= 0) in a golden case, got {values['seed']}")
    init_sha = mask_sha = None
    if values["mode"] == "img2img":
        if values["init_image"] is None:
            raise GoldenError(f"{where}: img2img needs field 'init_image' (a file or synthetic:<name>)")
        if values["denoising_strength"] is None:
            raise GoldenError(f"{where}: img2img needs field 'denoising_strength'")
        init_sha = _check_init_image(where, values["init_image"], cases_dir)
        if values["mask_image"] is not None:
            mask_sha = _check_mask_image(where, values["mask_image"], cases_dir)
    elif any(values[name] is not None for name in ("init_image", "resize_mode", "mask_image")):
        raise GoldenError(f"{where}: fields 'init_image', 'mask_image' and 'resize_mode' are for img2img cases only")
    elif values["denoising_strength"] is not None and not values["enable_hr"]:
        raise GoldenError(
            f"{where}: field 'denoising_strength' is for img2img cases and txt2img cases with enable_hr = true"
        )
    # the validated fields are exactly Case's fields, by name
    values["override_settings"] = dict(values["override_settings"])
    if values["styles"] is not None and not all(isinstance(name, str) for name in values["styles"]):
        raise GoldenError(f"{where}: field 'styles' expects a list of style names, got {values['styles']!r}")
    values["generation"] = {name: values.pop(name) for name in GENERATION_FIELDS if values.get(name) is not None}
    for name in GENERATION_FIELDS:
        values.pop(name, None)
    if values["quarantine"] is not None:
        values["quarantine"] = _parse_quarantine(where, values["quarantine"])
    return Case(**values, source=str(source), init_image_sha256=init_sha, mask_image_sha256=mask_sha)


def _parse_quarantine(where: str, table: Mapping[str, Any]) -> Quarantine:
    at = f"{where}: field 'quarantine'"
    unknown = sorted(set(table) - {"reason", "until"})
    if unknown:
        raise GoldenError(f"{at}: unknown key {unknown[0]!r}; known: reason, until")
    reason = table.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise GoldenError(f"{at}: needs a reason (a non-empty string)")
    until = table.get("until")
    if isinstance(until, str):
        try:
            until = date.fromisoformat(until)
        except ValueError:
            raise GoldenError(f"{at}: until {until!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(until, datetime) or not isinstance(until, date):
        raise GoldenError(f"{at}: needs until, a date (until = 2026-12-31), got {until!r}")
    return Quarantine(reason.strip(), until)


def _check_init_image(where: str, reference: str, cases_dir: Path) -> str | None:
    if reference.startswith(SYNTHETIC_PREFIX):
        name = reference.removeprefix(SYNTHETIC_PREFIX)
        if name not in SYNTHETIC_IMAGES:
            known = ", ".join(SYNTHETIC_PREFIX + n for n in SYNTHETIC_IMAGES)
            raise GoldenError(f"{where}: field 'init_image': unknown generator {reference!r}; known: {known}")
        return None
    path = cases_dir / reference
    if not path.is_file():
        raise GoldenError(f"{where}: field 'init_image': file {path} not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_mask_image(where: str, reference: str, cases_dir: Path) -> str:
    path = cases_dir / reference
    if not path.is_file():
        raise GoldenError(f"{where}: field 'mask_image': file {path} not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_cases(cases_dir: Path) -> list[Case]:
    """Every case in every *.toml under `cases_dir`, sorted by id; ids must be unique."""
    if not cases_dir.is_dir():
        raise GoldenError(f"{cases_dir}: golden cases folder not found")
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for source in sorted(cases_dir.glob("*.toml")):
        try:
            document = tomllib.loads(source.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise GoldenError(f"{source}: malformed TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GoldenError(f"{source}: cannot read ({exc})") from None
        extra = sorted(set(document) - {"case"})
        if extra:
            raise GoldenError(f"{source}: unknown top-level key {extra[0]!r}; cases are [[case]] tables")
        tables = document.get("case", [])
        if not isinstance(tables, list):
            raise GoldenError(f"{source}: 'case' must be an array of tables ([[case]])")
        for index, table in enumerate(tables):
            if not isinstance(table, dict):
                raise GoldenError(f"{source}: case #{index + 1}: expected a [[case]] table, got {table!r}")
            case = parse_case(table, source, cases_dir, index)
            if case.id in seen:
                raise GoldenError(f"{source}: case {case.id!r} is also defined in {seen[case.id]}")
            seen[case.id] = str(source)
            cases.append(case)
    if not cases:
        raise GoldenError(f"{cases_dir}: no golden cases found (expected [[case]] tables in *.toml)")
    return sorted(cases, key=lambda c: c.id)


def run_order(cases: list[Case]) -> list[Case]:
    """`cases` grouped by the model they name (override_settings' sd_model_checkpoint; none is the default model), the
    groups in order of their first case and each group in the given order. The runtime holds one model at a time, so
    in this order each model loads once; reports still list the cases in their own order."""
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(str(case.override_settings.get("sd_model_checkpoint", "")), []).append(case)
    return [case for group in groups.values() for case in group]


# -- init images -----------------------------------------------------------------------------
def _gradient(width: int, height: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    green = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    blue = ((x + y) * 127 // max(width + height - 2, 1)).astype(np.uint8)
    return np.stack([red, green, blue], axis=-1)


def _checker(width: int, height: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    cells = ((x // 8 + y // 8) % 2).astype(np.uint8)
    return np.stack([cells * 200 + 30, cells * 60 + 90, (1 - cells) * 180 + 40], axis=-1).astype(np.uint8)


def _rings(width: int, height: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    radius = np.hypot(x - width / 2, y - height / 2)
    wave = ((np.sin(radius / 3.0) + 1) * 127.5).astype(np.uint8)
    return np.stack([wave, 255 - wave, (x * 255 // max(width - 1, 1)).astype(np.uint8)], axis=-1)


SYNTHETIC_IMAGES = {"gradient": _gradient, "checker": _checker, "rings": _rings}


def init_image(case: Case, cases_dir: Path) -> Any:
    """The case's init image as an RGB PIL image: a shipped file as it is, a synthetic one drawn at the case's size.

    Read with PIL here rather than through the runtime's image loader, so a refactor of the runtime cannot change
    the harness's inputs.
    """
    from PIL import Image

    assert case.init_image is not None
    if case.init_image.startswith(SYNTHETIC_PREFIX):
        draw = SYNTHETIC_IMAGES[case.init_image.removeprefix(SYNTHETIC_PREFIX)]
        return Image.fromarray(draw(case.width, case.height), "RGB")
    return _read_image(case, "init_image", cases_dir / case.init_image, mask=False)


def mask_image(case: Case, cases_dir: Path) -> Any:
    """The case's mask as a PIL image: RGBA when the file has transparency, else luminance (L); read with PIL here,
    like the init image, so a refactor of the runtime cannot change the harness's inputs."""
    assert case.mask_image is not None
    return _read_image(case, "mask_image", cases_dir / case.mask_image, mask=True)


def _read_image(case: Case, field_name: str, path: Path, *, mask: bool) -> Any:
    """A shipped image file as RGB, or for a mask as RGBA (with transparency) or L; GoldenError naming case, field
    and file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if not mask:
                return image.convert("RGB")
            transparent = "A" in image.getbands() or "transparency" in image.info
            return image.convert("RGBA" if transparent else "L")
    except FileNotFoundError:
        raise GoldenError(f"case {case.id!r}: {field_name}: {path}: file not found") from None
    except IsADirectoryError:
        raise GoldenError(f"case {case.id!r}: {field_name}: {path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise GoldenError(f"case {case.id!r}: {field_name}: {path}: not a readable image ({exc})") from None
