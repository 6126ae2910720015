"""A recorded golden set: `harness/goldens/<key>/manifest.json` plus PNGs and traces; read strictly, written once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, GoldenError
from harness.golden.measures import ImageMeasures, pixel_sha256
from harness.golden.set_key import same_machine_class
from harness.golden.trace import Trace, load_traces, save_traces
from harness.output import finish_file_set, write_file_set

if TYPE_CHECKING:
    from harness.config import HarnessConfig

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
# SSIM's default before `golden calibrate` derives the set's own from its noise floor
DEFAULT_TOLERANCES = {"phash_bits": 8, "mean_abs": 1.0, "ssim": 0.98}


@dataclass(frozen=True)
class Tolerances:
    phash_bits: int  # at most this many of 256 phash16 bits differ
    mean_abs: float  # mean absolute pixel difference (0-255) at most this
    ssim: float = DEFAULT_TOLERANCES["ssim"]  # structural similarity at least this

    def to_dict(self) -> dict[str, Any]:
        return {"phash_bits": self.phash_bits, "mean_abs": self.mean_abs, "ssim": self.ssim}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tolerances:
        return cls(
            phash_bits=int(data["phash_bits"]),
            mean_abs=data["mean_abs"],
            ssim=float(data.get("ssim", DEFAULT_TOLERANCES["ssim"])),
        )

    @classmethod
    def resolve(cls, cfg: HarnessConfig, golden_set: GoldenSet | None) -> Tolerances:
        """The configured overrides (golden.phash_bits, golden.mean_abs, golden.ssim) over the set's own
        tolerances, or over the defaults when no set applies (golden ab compares two fresh runs)."""
        base = golden_set.tolerances if golden_set is not None else cls(**DEFAULT_TOLERANCES)  # type: ignore[arg-type]
        phash_bits, mean_abs, ssim = cfg["golden.phash_bits"], cfg["golden.mean_abs"], cfg["golden.ssim"]
        if ssim is not None and not 0.0 <= ssim <= 1.0:
            raise ConfigError(f"golden.ssim {ssim} is not between 0 and 1")
        return cls(
            phash_bits=base.phash_bits if phash_bits is None else phash_bits,
            mean_abs=base.mean_abs if mean_abs is None else mean_abs,
            ssim=base.ssim if ssim is None else ssim,
        )


ALTERNATE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass
class Alternate:
    """An accepted alternate of a case's images: what another machine class makes, recorded and reviewed as such.

    A run on that machine class is judged against it instead of the primary images (and strictly: drifted applies).
    """

    name: str
    machine: dict[str, Any]
    images: list[tuple[str, ImageMeasures]]
    recorded_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "machine": self.machine,
            "images": [{"file": name, **measures.to_dict()} for name, measures in self.images],
            "recorded_at": self.recorded_at,
        }


@dataclass
class GoldenEntry:
    """One case as recorded: its parameters and digest, and per image the file and its measures."""

    case_id: str
    params: dict[str, Any]
    digest: str
    images: list[tuple[str, ImageMeasures]]
    trace_file: str | None
    recorded_at: str
    machine: dict[str, Any] | None = None  # the machine class it was recorded on (None: the set's recorded_with)
    alternates: list[Alternate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        document = {
            "params": self.params,
            "digest": self.digest,
            "images": [{"file": name, **measures.to_dict()} for name, measures in self.images],
            "trace": self.trace_file,
            "recorded_at": self.recorded_at,
        }
        if self.machine is not None:
            document["machine"] = self.machine
        if self.alternates:
            document["alternates"] = [alternate.to_dict() for alternate in self.alternates]
        return document

    def files(self) -> set[str]:
        """Every file the entry points at: its images, its trace and its alternates' images."""
        names = {name for name, _ in self.images}
        names.update(name for alternate in self.alternates for name, _ in alternate.images)
        if self.trace_file:
            names.add(self.trace_file)
        return names


@dataclass
class GoldenSet:
    """The manifest of one environment key, as read from disk (or empty when none was recorded yet)."""

    folder: Path
    key: str
    tolerances: Tolerances
    entries: dict[str, GoldenEntry] = field(default_factory=dict)
    recorded_with: dict[str, Any] = field(default_factory=dict)
    noise_floor: dict[str, Any] | None = None
    exists: bool = True
    ssim_recorded: bool = False  # the manifest holds an SSIM tolerance (else the default applies)

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def image_path(self, name: str) -> Path:
        return self.folder / name

    def load_image(self, name: str, expected: ImageMeasures) -> Any:
        """A golden PNG, checked against the manifest's pixel sha256; GoldenError for missing/corrupt/altered."""
        from PIL import Image, UnidentifiedImageError

        path = self.image_path(name)
        try:
            with Image.open(path) as image:
                image.load()
                rgb = image.convert("RGB")
        except FileNotFoundError:
            raise GoldenError(f"{path}: golden image listed in {self.manifest_path.name} is missing") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise GoldenError(f"{path}: corrupt golden image ({exc})") from None
        if pixel_sha256(rgb) != expected.sha256:
            raise GoldenError(f"{path}: pixels do not match the manifest's sha256; the golden image was altered")
        return rgb

    def alternate_for(self, entry: GoldenEntry, machine: dict[str, Any] | None) -> Alternate | None:
        """The accepted alternate recorded on `machine`'s class, if the entry has one."""
        if machine is None:
            return None
        return next((a for a in entry.alternates if same_machine_class(a.machine, machine)), None)

    def recorded_on(self, entry: GoldenEntry) -> dict[str, Any]:
        """The fingerprint `entry` was recorded on: its own machine class, else the set's."""
        return entry.machine if entry.machine is not None else self.recorded_with

    def load_traces(self, entry: GoldenEntry) -> list[Trace] | None:
        return load_traces(self.folder / entry.trace_file) if entry.trace_file else None


def _require(mapping: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict) or name not in mapping:
        raise GoldenError(f"{where}: missing field {name!r}")
    value = mapping[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise GoldenError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def load_golden_set(goldens_dir: Path, key: str) -> GoldenSet:
    """Read and validate `goldens_dir/key/manifest.json`; a missing manifest gives an empty set (exists=False)."""
    folder = goldens_dir / key
    path = folder / MANIFEST_NAME
    finish_file_set(folder)  # an update killed after it committed: its new set is the set
    if not path.is_file():
        return GoldenSet(folder, key, Tolerances(**DEFAULT_TOLERANCES), exists=False)  # type: ignore[arg-type]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{path}:{exc.lineno}:{exc.colno}: corrupt manifest: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{path}: cannot read manifest ({exc})") from None
    where = str(path)
    version = _require(document, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise GoldenError(f"{where}: schema_version {version} is not supported (expected {SCHEMA_VERSION})")
    if _require(document, "environment_key", str, where) != key:
        raise GoldenError(f"{where}: environment_key {document['environment_key']!r} does not match folder {key!r}")
    tolerance_table = _require(document, "tolerances", dict, where)
    tolerances = Tolerances(
        phash_bits=_require(tolerance_table, "phash_bits", int, f"{where}: tolerances"),
        mean_abs=float(_require(tolerance_table, "mean_abs", (int, float), f"{where}: tolerances")),
        # a set recorded before SSIM has none until `golden calibrate` derives it: the default applies
        ssim=float(
            _require(tolerance_table, "ssim", (int, float), f"{where}: tolerances")
            if "ssim" in tolerance_table
            else DEFAULT_TOLERANCES["ssim"]
        ),
    )
    if not 0.0 <= tolerances.ssim <= 1.0:
        raise GoldenError(f"{where}: tolerances: ssim {tolerances.ssim} is not between 0 and 1")
    entries: dict[str, GoldenEntry] = {}
    for case_id, raw in _require(document, "cases", dict, where).items():
        at = f"{where}: case {case_id!r}"
        images = _load_images(raw, at)
        trace_file = raw.get("trace") if isinstance(raw, dict) else None
        if trace_file is not None and not isinstance(trace_file, str):
            raise GoldenError(f"{at}: field 'trace' must be a file name or null")
        machine = raw.get("machine")
        if machine is not None and not isinstance(machine, dict):
            raise GoldenError(f"{at}: field 'machine' must be a table or absent")
        raw_alternates = raw.get("alternates") or []
        if not isinstance(raw_alternates, list):
            raise GoldenError(f"{at}: field 'alternates' must be a list or absent")
        alternates = [_load_alternate(item, f"{at}: alternate #{n + 1}") for n, item in enumerate(raw_alternates)]
        entries[case_id] = GoldenEntry(
            case_id=case_id,
            params=_require(raw, "params", dict, at),
            digest=_require(raw, "digest", str, at),
            images=images,
            trace_file=trace_file,
            recorded_at=str(raw.get("recorded_at", "")),
            machine=machine,
            alternates=alternates,
        )
    noise_floor = document.get("noise_floor")
    return GoldenSet(
        folder=folder,
        key=key,
        tolerances=tolerances,
        entries=entries,
        recorded_with=dict(document.get("recorded_with") or {}),
        noise_floor=noise_floor if isinstance(noise_floor, dict) else None,
        ssim_recorded="ssim" in tolerance_table,
    )


def _load_images(raw: Any, at: str) -> list[tuple[str, ImageMeasures]]:
    images = []
    for index, image in enumerate(_require(raw, "images", list, at)):
        image_at = f"{at}: image {index}"
        try:
            measures = ImageMeasures.from_dict(image)
        except (KeyError, TypeError, ValueError, IndexError):
            raise GoldenError(f"{image_at}: malformed image measures") from None
        images.append((_require(image, "file", str, image_at), measures))
    return images


def _load_alternate(raw: Any, at: str) -> Alternate:
    name = _require(raw, "name", str, at)
    if not ALTERNATE_NAME.match(name):
        raise GoldenError(f"{at}: name {name!r} must match {ALTERNATE_NAME.pattern}")
    return Alternate(
        name=name,
        machine=_require(raw, "machine", dict, at),
        images=_load_images(raw, f"{at} {name!r}"),
        recorded_at=str(raw.get("recorded_at", "")),
    )


@dataclass
class PendingAlternate:
    case_id: str
    name: str
    machine: dict[str, Any]
    images: list[Any]
    measures: list[ImageMeasures]


@dataclass
class PendingUpdate:
    case_id: str
    params: dict[str, Any]
    digest: str
    images: list[Any]
    measures: list[ImageMeasures]
    traces: list[Trace]
    machine: dict[str, Any] | None = None
    # images left as recorded (index → file and measures): identical or equivalent to what the run made
    keep: dict[int, tuple[str, ImageMeasures]] = field(default_factory=dict)

    def new_name(self, index: int) -> str:
        return f"{self.case_id}-{index}-{self.measures[index].sha256[:12]}.png"


class UpdateQueue:
    """Golden writes, queued during a run and flushed once: new files first, the manifest last (atomically)."""

    def __init__(self, golden_set: GoldenSet) -> None:
        self.golden_set = golden_set
        self.pending: dict[str, PendingUpdate] = {}
        self.alternates: dict[str, PendingAlternate] = {}
        self.removals: set[str] = set()
        self.noise_floor: dict[str, Any] | None = None
        self.recorded_with: dict[str, Any] | None = None
        self.tolerances: Tolerances | None = None

    def queue(self, update: PendingUpdate) -> None:
        self.pending[update.case_id] = update

    def queue_alternate(self, alternate: PendingAlternate) -> None:
        self.alternates[alternate.case_id] = alternate

    def remove(self, case_id: str) -> None:
        self.removals.add(case_id)

    def __bool__(self) -> bool:
        return bool(
            self.pending
            or self.alternates
            or self.removals
            or self.noise_floor is not None
            or self.tolerances is not None
        )

    def flush(self) -> list[Path]:
        """Write everything queued as one file set (harness/output.py): a kill leaves the old set or the new one."""
        import hashlib
        import io

        golden = self.golden_set
        files: dict[Path, bytes] = {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # 1. new files under content-derived names, never overwriting what the old manifest points at
        for update in self.pending.values():
            images = []
            for index, (image, measures) in enumerate(zip(update.images, update.measures, strict=True)):
                if index in update.keep:
                    images.append(update.keep[index])
                    continue
                name = update.new_name(index)
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                files[golden.folder / name] = buffer.getvalue()
                images.append((name, measures))
            trace_name = None
            if any(trace.stages for trace in update.traces):
                data = save_traces(update.traces)
                trace_name = f"{update.case_id}-{hashlib.sha256(data).hexdigest()[:12]}.trace.npz"
                files[golden.folder / trace_name] = data
            previous = golden.entries.get(update.case_id)
            golden.entries[update.case_id] = GoldenEntry(
                update.case_id,
                update.params,
                update.digest,
                images,
                trace_name,
                now,
                update.machine,
                # alternates answer the same parameters: they stay unless the case itself changed
                previous.alternates if previous is not None and previous.digest == update.digest else [],
            )
        for pending in self.alternates.values():
            entry = golden.entries[pending.case_id]
            images = []
            for index, (image, measures) in enumerate(zip(pending.images, pending.measures, strict=True)):
                name = f"{pending.case_id}-{index}-{measures.sha256[:12]}.png"
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                files[golden.folder / name] = buffer.getvalue()
                images.append((name, measures))
            others = [a for a in entry.alternates if a.name != pending.name]
            entry.alternates = sorted(
                [*others, Alternate(pending.name, pending.machine, images, now)], key=lambda a: a.name
            )
        for case_id in self.removals:
            golden.entries.pop(case_id, None)
        if self.noise_floor is not None:
            golden.noise_floor = self.noise_floor
        if self.recorded_with is not None:
            golden.recorded_with = self.recorded_with
        if self.tolerances is not None:
            golden.tolerances = self.tolerances
            golden.ssim_recorded = True
        tolerances = golden.tolerances.to_dict()
        if not golden.ssim_recorded:
            del tolerances["ssim"]
        # 2. the manifest after them, so even a reader racing the write sees old names or new ones, never a mix
        document = {
            "schema_version": SCHEMA_VERSION,
            "environment_key": golden.key,
            "recorded_with": golden.recorded_with,
            "tolerances": tolerances,
            "noise_floor": golden.noise_floor,
            "cases": {case_id: golden.entries[case_id].to_dict() for case_id in sorted(golden.entries)},
        }
        files[golden.manifest_path] = (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8")
        # 3. files no entry points at any more, removed once the new manifest is in place
        referenced = {MANIFEST_NAME}
        for entry in golden.entries.values():
            referenced.update(entry.files())
        unreferenced = [
            path
            for path in (golden.folder.iterdir() if golden.folder.is_dir() else ())
            if path.is_file() and path.name not in referenced and not path.name.startswith(".")
        ]
        write_file_set(golden.folder, files, remove=unreferenced)
        golden.exists = True
        self.pending.clear()
        self.alternates.clear()
        self.removals.clear()
        return list(files)
