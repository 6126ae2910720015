"""Golden cases made through the front ends (the HTTP API, the `serena` CLI) and compared pixel for pixel with the
in-process run: a request field a front end forgets to pass on changes the image, and no golden would see it."""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, assert_never, get_args

from harness.config import HarnessConfig
from harness.errors import CaseErrored
from harness.golden.cases import SYNTHETIC_PREFIX, Case, init_image, load_cases, run_order
from harness.golden.measures import degenerate_reason, mean_abs_difference, measure, phash_distance
from harness.golden.runner import CaseRun, isolated_runtime, one_line, run_case
from harness.golden.selection import Selection
from harness.golden.trace import Trace
from harness.outcome import CheckResult, Outcome

Via = Literal["api", "cli"]
VIAS: tuple[Via, ...] = ("api", "cli")
# what `--via` accepts: one front end, or every one
VIA_CHOICES: tuple[str, ...] = (*VIAS, "all")
# a generation of the golden cases' size takes seconds; this only stops a hung server from hanging the run
REQUEST_TIMEOUT_S = 600.0
# options that decide what the CLI writes: it is read back from the saved files, so they must be lossless PNGs
CLI_SAVE_OPTIONS: dict[str, Any] = {"samples_save": True, "samples_format": "png"}

# (case, cases_dir, threads) -> the case's run through one front end
FrontEnd = Callable[[Case, Path, int], CaseRun]
# called before each case runs: the case, its 1-based position and how many cases the comparison covers
Progress = Callable[[Case, int, int], None]
CaseOutcome = Literal["identical", "differs", "refused", "errored", "not compared"]


class FrontendRefused(CaseErrored):
    """The front end cannot express a field the case uses, so the case is not run through it (never run otherwise)."""


def check_name(via: Via) -> str:
    return f"golden via {via}"


def parse_vias(text: str) -> tuple[Via, ...]:
    """`--via api|cli|all` as the front ends to compare; ValueError naming the value otherwise."""
    if text == "all":
        return VIAS
    for via in VIAS:
        if text == via:
            return (via,)
    raise ValueError(f"must be one of {', '.join(VIA_CHOICES)}, got {text!r}")


def _case_run(case: Case, images: list[Any], infotexts: list[str], seconds: float) -> CaseRun:
    """A CaseRun from a front end's images: measured like the in-process run's, with no traces (no latents)."""
    measures = [measure(image) for image in images]
    return CaseRun(
        case=case,
        images=images,
        measures=measures,
        traces=[Trace() for _ in images],
        infotexts=infotexts,
        seconds=seconds,
        degenerate=[degenerate_reason(image, m) for image, m in zip(images, measures, strict=True)],
    )


def _png_image(data: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


# -- the HTTP API ------------------------------------------------------------------------------
def api_request(case: Case, cases_dir: Path, threads: int) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body a web-UI client sends for the case (num_threads as an override, as the in-process
    runner passes it)."""
    body: dict[str, Any] = {
        "prompt": case.prompt,
        "negative_prompt": case.negative_prompt,
        "seed": case.seed,
        "steps": case.steps,
        "sampler_name": case.sampler,
        "cfg_scale": case.cfg_scale,
        "width": case.width,
        "height": case.height,
        "batch_size": case.batch_size,
        "n_iter": case.n_iter,
        "override_settings": {**case.override_settings, "num_threads": threads},
        "send_images": True,
        "save_images": False,
        **case.generation,
    }
    if case.denoising_strength is not None:
        body["denoising_strength"] = case.denoising_strength
    if case.mode == "img2img":
        buffer = io.BytesIO()
        init_image(case, cases_dir).save(buffer, "PNG")
        body["init_images"] = [base64.b64encode(buffer.getvalue()).decode("ascii")]
        if case.mask_image is not None:  # the shipped file's bytes, as a client would send them
            body["mask"] = base64.b64encode((cases_dir / case.mask_image).read_bytes()).decode("ascii")
    return f"/sdapi/v1/{case.mode}", body


def _error_detail(status: int, payload: bytes) -> str:
    """The one line an error response carries: its `message` (422), `detail` or `error`, else its start."""
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("message", "detail", "error"):
            if isinstance(document.get(key), str):
                return " ".join(document[key].split())
    text = " ".join(payload.decode("utf-8", "replace").split())
    return text[:300] or f"HTTP {status}"


def _post_json(base_url: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    # no proxy: the server is on loopback, and an HTTP_PROXY in the environment must not reroute the request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise CaseErrored(f"POST {path} answered HTTP {exc.code}: {_error_detail(exc.code, exc.read())}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CaseErrored(f"POST {path} failed: {one_line(exc)}") from None


def _run_via_api(base_url: str, case: Case, cases_dir: Path, threads: int) -> CaseRun:
    path, body = api_request(case, cases_dir, threads)
    started = time.perf_counter()
    answer = _post_json(base_url, path, body)
    seconds = time.perf_counter() - started
    try:
        images = [_png_image(base64.b64decode(text, validate=True)) for text in answer["images"]]
        infotexts = [str(text) for text in json.loads(answer["info"]).get("infotexts", [])]
    except Exception as exc:  # noqa: BLE001 - any malformed answer is the front end's failure on this case
        raise CaseErrored(f"POST {path}: the answer is not a web-UI response ({one_line(exc)})") from None
    return _case_run(case, images, infotexts, seconds)


@contextmanager
def api_frontend() -> Iterator[FrontEnd]:
    """A loopback API server (serena's own app, default limits, strict compat) for the block, on the runtime state
    the caller set up (shared.opts and shared.cmd_opts, e.g. `isolated_runtime`); yields the case runner."""
    from serena.api import background_server, create_app

    with background_server(create_app()) as base_url:
        yield functools.partial(_run_via_api, base_url)


# -- the CLI -----------------------------------------------------------------------------------
def _override_text(value: Any) -> str:
    """An option value as `--override KEY=VALUE` text, the way `Options.parse_value` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def cli_overrides(case: Case, threads: int) -> list[str]:
    """The case's override_settings (and num_threads) as `--override` arguments; FrontendRefused naming the field
    when a value would not read back as the same value, or would stop the CLI from writing lossless PNGs."""
    from serena import shared
    from serena.errors import OptionError

    overrides = {**case.override_settings, "num_threads": threads}
    for key, wanted in CLI_SAVE_OPTIONS.items():
        effective = overrides.get(key, shared.opts.data.get(key))
        if effective != wanted:
            raise FrontendRefused(
                f"cli cannot run field override_settings.{key} = {effective!r}: the CLI's images are read back from "
                f"the files it saves, which needs {key} = {wanted!r}"
            )
    arguments: list[str] = []
    for key, value in overrides.items():
        text = _override_text(value)
        if key in shared.opts:
            try:
                expected = shared.opts.validate(key, value)
            except OptionError:
                expected = None  # the runtime refuses the value either way: the CLI gets to refuse it too
            if expected is not None:
                try:
                    read_back = shared.opts.parse_value(key, text)
                except OptionError:
                    read_back = None
                if read_back != expected:
                    raise FrontendRefused(
                        f"cli cannot express field override_settings.{key} = {value!r}: --override {key}={text} "
                        f"reads back as {read_back!r}"
                    )
        arguments += ["--override", f"{key}={text}"]
    return arguments


def _generation_arguments(case: Case) -> list[str]:
    """The case's GENERATION_FIELDS as CLI flags: --name-with-dashes=VALUE, and --style once per style."""
    arguments = []
    for name, value in case.generation.items():
        if name == "styles":
            arguments += [f"--style={style}" for style in value]
        elif isinstance(value, bool):
            arguments.append(f"--{'' if value else 'no-'}{name.replace('_', '-')}")
        else:
            arguments.append(f"--{name.replace('_', '-')}={_override_text(value)}")
    return arguments


def cli_arguments(
    case: Case,
    *,
    init_path: Path | None,
    out_dir: Path,
    data_dir: Path,
    extensions_dir: Path,
    threads: int,
    mask_path: Path | None = None,
) -> list[str]:
    """argv for `serena` making the case: start-up options pinned to the caller's runtime (device, precision, model,
    a data dir and an extensions folder of our own), then `txt2img` or `img2img` with every case field."""
    from serena import shared

    arguments = [
        f"--data-dir={data_dir}",
        f"--extensions-dir={extensions_dir}",
        f"--styles-file={shared.cmd_opts.resolved_styles_file}",
        f"--device={shared.cmd_opts.device}",
        f"--precision={shared.cmd_opts.precision}",
        f"--model={shared.opts.sd_model_checkpoint}",
        case.mode,
        # KEY=VALUE forms: a prompt that starts with "-" must not read as an option
        f"--prompt={case.prompt}",
        f"--negative-prompt={case.negative_prompt}",
        f"--seed={case.seed}",
        f"--steps={case.steps}",
        f"--sampler={case.sampler}",
        f"--cfg-scale={case.cfg_scale!r}",
        f"--width={case.width}",
        f"--height={case.height}",
        f"--batch-size={case.batch_size}",
        f"--n-iter={case.n_iter}",
        *_generation_arguments(case),
        f"--out={out_dir}",
    ]
    if case.mode == "img2img":
        assert init_path is not None
        arguments.append(f"--init={init_path}")
        if mask_path is not None:
            arguments.append(f"--mask={mask_path}")
    if case.denoising_strength is not None:
        arguments.append(f"--denoising-strength={case.denoising_strength!r}")
    return arguments + cli_overrides(case, threads)


@contextmanager
def _cli_side_effects_undone() -> Iterator[None]:
    """The CLI runs in this process: put back what it changes (start-up options, options, the `serena` logger)."""
    from serena import shared

    logger = logging.getLogger("serena")
    saved_logger = (list(logger.handlers), logger.level, logger.propagate)
    saved_data, saved_cmd, saved_device = dict(shared.opts.data), shared.cmd_opts, shared.device
    try:
        yield
    finally:
        shared.opts.data.update(saved_data)
        shared.cmd_opts, shared.device = saved_cmd, saved_device
        logger.handlers[:] = saved_logger[0]
        logger.setLevel(saved_logger[1])
        logger.propagate = saved_logger[2]


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """`serena` with `argv`, in this process through `serena.cli.main`: (exit code, stdout, stderr)."""
    from serena import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    with _cli_side_effects_undone(), redirect_stdout(stdout), redirect_stderr(stderr):
        code = cli.main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


def _run_via_cli(scratch: Path, case: Case, cases_dir: Path, threads: int) -> CaseRun:
    folder = Path(tempfile.mkdtemp(prefix=f"{case.id}-", dir=scratch))
    out_dir, data_dir, extensions_dir = folder / "out", folder / "data", folder / "extensions"
    for made in (data_dir, extensions_dir):
        made.mkdir()
    init_path = None
    if case.mode == "img2img":
        assert case.init_image is not None
        if case.init_image.startswith(SYNTHETIC_PREFIX):
            init_path = folder / "init.png"
            init_image(case, cases_dir).save(init_path, "PNG")
        else:
            init_path = cases_dir / case.init_image  # the shipped file itself: the CLI reads it its own way
    argv = cli_arguments(
        case,
        init_path=init_path,
        out_dir=out_dir,
        data_dir=data_dir,
        extensions_dir=extensions_dir,
        threads=threads,
        mask_path=None if case.mask_image is None else cases_dir / case.mask_image,  # the shipped file itself
    )
    started = time.perf_counter()
    code, stdout, stderr = run_cli(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no message")
        raise CaseErrored(f"serena {case.mode} exited {code}: {last.strip()}")
    paths = [Path(line.strip()) for line in stdout.splitlines() if line.strip()]
    images, infotexts = [], []
    for path in paths:
        try:
            image = _png_image(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - a path it printed that is no readable image is its failure
            problem = f"serena {case.mode} printed {path}, which is not a readable image ({one_line(exc)})"
            raise CaseErrored(problem) from None
        infotexts.append(str(image.info.get("parameters", "")))
        images.append(image.convert("RGB"))  # pixels only: the file's infotext chunk is not compared
    return _case_run(case, images, infotexts, seconds)


@contextmanager
def cli_frontend() -> Iterator[FrontEnd]:
    """The `serena` CLI, run in this process (so its argument mapping is the one under test, monkeypatches
    included), with a data dir, extensions folder and output folder per case under one scratch folder."""
    with tempfile.TemporaryDirectory(prefix="serena-cli-frontend-") as scratch:
        yield functools.partial(_run_via_cli, Path(scratch))


# -- either ------------------------------------------------------------------------------------
@contextmanager
def open_frontend(via: Via) -> Iterator[FrontEnd]:
    """The case runner of one front end, for a whole run (the API's server is started once)."""
    match via:
        case "api":
            with api_frontend() as run:
                yield run
        case "cli":
            with cli_frontend() as run:
                yield run
        case _:
            assert_never(via)


def run_case_via(case: Case, cases_dir: Path, via: Via, *, threads: int, frontend: FrontEnd | None = None) -> CaseRun:
    """The case's images made through `via` (inside the caller's runtime, like `run_case`); `frontend` from
    `open_frontend(via)` reuses one server for many cases, without it one is opened for this case alone."""
    if frontend is not None:
        return frontend(case, cases_dir, threads)
    with open_frontend(via) as run:
        return run(case, cases_dir, threads)


# -- comparing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageMatch:
    """One image of a case, in process and through a front end: identical pixels, or how far apart."""

    index: int
    in_process_sha256: str
    via_sha256: str
    phash_distance: int
    mean_abs: float

    @property
    def identical(self) -> bool:
        return self.in_process_sha256 == self.via_sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "identical": self.identical,
            "in_process_sha256": self.in_process_sha256,
            "via_sha256": self.via_sha256,
            "phash_distance": self.phash_distance,
            "mean_abs": round(self.mean_abs, 4),
        }


@dataclass(frozen=True)
class CaseComparison:
    """One case through one front end: its outcome, the images compared, and the lines that explain a non-pass."""

    case_id: str
    via: Via
    outcome: CaseOutcome
    images: tuple[ImageMatch, ...] = ()
    problems: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "via": self.via,
            "outcome": self.outcome,
            "images": [image.to_dict() for image in self.images],
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }


def compare_runs(via: Via, in_process: CaseRun, through: CaseRun) -> CaseComparison:
    """The front end's images against the in-process run's, by pixel sha256; distances for those that differ."""
    case_id = in_process.case.id
    matches = tuple(
        ImageMatch(
            index,
            ours.sha256,
            theirs.sha256,
            phash_distance(ours.phash16, theirs.phash16),
            0.0 if ours.sha256 == theirs.sha256 else mean_abs_difference(our_image, their_image),
        )
        for index, (ours, theirs, our_image, their_image) in enumerate(
            zip(in_process.measures, through.measures, in_process.images, through.images, strict=False)
        )
    )
    problems = [
        f"{via}: {case_id} image {match.index} differs from the in-process run (phash16 {match.phash_distance} "
        f"bits, mean abs {match.mean_abs:.3f})"
        for match in matches
        if not match.identical
    ]
    if len(through.images) != len(in_process.images):
        problems.append(
            f"{via}: {case_id} made {len(through.images)} images, the in-process run {len(in_process.images)}"
        )
    return CaseComparison(
        case_id, via, "differs" if problems else "identical", matches, tuple(problems), through.seconds
    )


@dataclass
class FrontendsReport:
    """Every selected case through every chosen front end, judged against the in-process run."""

    vias: tuple[Via, ...]
    selection: Selection
    comparisons: list[CaseComparison] = field(default_factory=list)
    seconds: float = 0.0
    skipped_reason: str | None = None  # why no case was run (the golden run it rode along was skipped)

    def of(self, via: Via) -> list[CaseComparison]:
        return [comparison for comparison in self.comparisons if comparison.via == via]

    def check_result(self, via: Via) -> CheckResult:
        """PASSED when every case's images are pixel-identical; FAILED when one differs or the front end fails on
        it; INCONCLUSIVE when nothing was compared or some case could not be (refused, or the in-process run
        errored)."""
        rows = self.of(via)
        counts = {outcome: sum(row.outcome == outcome for row in rows) for outcome in get_args(CaseOutcome)}
        figures = {
            "via": via,
            "cases": len(rows),
            **{outcome.replace(" ", "_"): count for outcome, count in counts.items()},
            "images": sum(len(row.images) for row in rows),
            "seconds": round(sum(row.seconds for row in rows), 3),
            "rows": [row.to_dict() for row in rows],
        }
        problems = tuple(problem for row in rows for problem in row.problems)
        summary = f"{counts['identical']}/{len(rows)} cases pixel-identical to the in-process run"
        if not rows:
            reason = self.skipped_reason or "no case selected"
            return CheckResult(check_name(via), Outcome.INCONCLUSIVE, summary, reason=reason)
        if counts["differs"] or counts["errored"]:
            return CheckResult(check_name(via), Outcome.FAILED, summary, figures=figures, problems=problems)
        uncompared = counts["refused"] + counts["not compared"]
        if uncompared:
            reason = f"{uncompared} of {len(rows)} cases could not be compared"
            return CheckResult(
                check_name(via), Outcome.INCONCLUSIVE, summary, reason=reason, figures=figures, problems=problems
            )
        return CheckResult(check_name(via), Outcome.PASSED, summary, figures=figures)

    def check_results(self) -> list[CheckResult]:
        return [self.check_result(via) for via in self.vias]

    def to_dict(self) -> dict[str, Any]:
        return {
            "vias": list(self.vias),
            "selection": self.selection.to_dict(),
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "seconds": round(self.seconds, 3),
        }


def compare_frontends(
    cfg: HarnessConfig,
    selection: Selection = Selection(),
    vias: Sequence[Via] = VIAS,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    progress: Progress | None = None,
    case_source: Callable[[Path], list[Case]] = load_cases,
) -> FrontendsReport:
    """Run each selected case in process and through each front end (one API server for the run), in one isolated
    runtime, and compare their images pixel for pixel. (`golden run --via` gets the same report from its own
    in-process runs: `frontends_alongside`.)"""
    started = time.perf_counter()
    cases_dir = cfg.path("golden.cases_dir")
    threads = cfg["golden.num_threads"]
    chosen = selection.apply(case_source(cases_dir))
    report = FrontendsReport(tuple(dict.fromkeys(vias)), selection)
    if not chosen:
        return report  # no server to start: each front end's check is inconclusive, nothing selected
    with isolated_runtime(device, precision, cases_dir), frontends_alongside(report, cases_dir, threads) as observe:
        for position, case in enumerate(run_order(chosen), start=1):
            if progress is not None:
                progress(case, position, len(chosen))
            try:
                in_process: CaseRun | CaseErrored = run_case(case, cases_dir, threads=threads)
            except CaseErrored as exc:
                in_process = exc
            observe(case, in_process)
    sort_comparisons(report, chosen)
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def frontends_alongside(
    report: FrontendsReport, cases_dir: Path, threads: int
) -> Iterator[Callable[[Case, CaseRun | CaseErrored], None]]:
    """Open every front end of `report` (one API server) and yield the observer that makes each case told to it
    through them and compares it with that in-process run (or records it not compared, when that run errored).
    Entered inside the run's isolated runtime."""
    with ExitStack() as stack:
        frontends: dict[Via, FrontEnd] = {}
        broken: dict[Via, str] = {}
        for via in report.vias:
            try:
                frontends[via] = stack.enter_context(open_frontend(via))
            except Exception as exc:  # noqa: BLE001 - a front end that cannot start fails its own check, not the run
                broken[via] = f"the front end did not start: {type(exc).__name__}: {one_line(exc)}"

        def observe(case: Case, in_process: CaseRun | CaseErrored) -> None:
            if isinstance(in_process, CaseErrored):
                line = f"the in-process run errored: {in_process}"
                report.comparisons += [
                    CaseComparison(case.id, via, "not compared", problems=(f"{via}: {case.id} not compared: {line}",))
                    for via in report.vias
                ]
                return
            for via in report.vias:
                if via in broken:
                    problem = broken[via]
                else:
                    try:
                        report.comparisons.append(
                            _compare_one(case, cases_dir, via, threads, frontends[via], in_process)
                        )
                        continue
                    except Exception as exc:  # noqa: BLE001 - told by the golden run: its failure is this check's
                        problem = f"{type(exc).__name__}: {one_line(exc)}"
                report.comparisons.append(
                    CaseComparison(case.id, via, "errored", problems=(f"{via}: {case.id} errored: {problem}",))
                )

        yield observe


class FrontendsAlongside:
    """The front ends' check riding along a golden run: pass `open` as run_goldens' `alongside`, then `finish` with
    why the run skipped its cases, if it did. The report's comparisons come in the cases' listed order."""

    def __init__(self, cfg: HarnessConfig, selection: Selection, vias: Sequence[Via] = VIAS) -> None:
        self.report = FrontendsReport(tuple(dict.fromkeys(vias)), selection)
        self._cases_dir: Path = cfg.path("golden.cases_dir")
        self._threads: int = cfg["golden.num_threads"]

    def open(self) -> AbstractContextManager[Callable[[Case, CaseRun | CaseErrored], None]]:
        return frontends_alongside(self.report, self._cases_dir, self._threads)

    def finish(self, skipped_reason: str | None = None) -> FrontendsReport:
        sort_comparisons(self.report, self.report.selection.apply(load_cases(self._cases_dir)))
        self.report.skipped_reason = skipped_reason
        return self.report


def sort_comparisons(report: FrontendsReport, chosen: Sequence[Case]) -> None:
    """The comparisons in the cases' listed order (they run grouped by model)."""
    listed = {case.id: position for position, case in enumerate(chosen)}
    report.comparisons.sort(key=lambda comparison: listed.get(comparison.case_id, len(listed)))


def _compare_one(
    case: Case, cases_dir: Path, via: Via, threads: int, frontend: FrontEnd, in_process: CaseRun
) -> CaseComparison:
    try:
        through = run_case_via(case, cases_dir, via, threads=threads, frontend=frontend)
    except FrontendRefused as exc:
        return CaseComparison(case.id, via, "refused", problems=(f"{via}: {case.id} refused: {exc}",))
    except CaseErrored as exc:
        return CaseComparison(case.id, via, "errored", problems=(f"{via}: {case.id} errored: {exc}",))
    return compare_runs(via, in_process, through)
