"""API request overhead: N direct `process_images` calls vs N HTTP calls of the same txt2img request, one process.

The server is a real uvicorn on loopback (ephemeral port) in a background thread; both sides run after one warm-up
each, interleaved per repetition so background load hits them alike. Prints each side's median, min and p90, their
ratio and the overhead per request, and checks the two sides made the same pixels. The HTTP side includes the
server's PNG encoding, base64 and JSON, and the client's JSON parse, but not decoding the PNG.
Usage: python benchmarks/api_overhead.py [--runs 20] [--size 64] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="requests per side (default 20)")
    parser.add_argument("--size", type=int, default=64, help="width and height (default 64)")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    parser.add_argument("--sampler", default="DDIM")
    parser.add_argument("--threads", type=int, default=1, help="torch threads during generation (default 1)")
    args = parser.parse_args()

    import httpx
    import torch
    from PIL import Image

    import serena
    from serena import shared
    from serena.api import background_server, create_app
    from serena.cmd_args import CmdOpts
    from serena.processing import StableDiffusionProcessingTxt2Img, process_images

    request: dict[str, Any] = {
        "prompt": "a lighthouse at dusk",
        "seed": 1234,
        "steps": args.steps,
        "sampler_name": args.sampler,
        "cfg_scale": 7.5,
        "width": args.size,
        "height": args.size,
    }
    with tempfile.TemporaryDirectory(prefix="serena-bench-") as data_dir:
        shared.cmd_opts = CmdOpts(data_dir=Path(data_dir))
        shared.opts.set("num_threads", args.threads)
        with (
            background_server(create_app()) as base_url,
            httpx.Client(base_url=base_url, timeout=600, trust_env=False) as client,
        ):

            def direct() -> Any:
                return process_images(StableDiffusionProcessingTxt2Img(**request, do_not_save_samples=True)).images[0]

            def over_http() -> dict[str, Any]:
                response = client.post("/sdapi/v1/txt2img", json=request)
                response.raise_for_status()
                return response.json()

            # 1. warm up both sides (model load, first connection), and check they make the same image
            first_image = over_http()["images"][0]
            served = Image.open(io.BytesIO(base64.b64decode(first_image))).convert("RGB")
            same_pixels = direct().tobytes() == served.tobytes()
            # 2. interleave, alternating which goes first
            direct_s: list[float] = []
            http_s: list[float] = []
            for run in range(args.runs):
                order = [(direct, direct_s), (over_http, http_s)]
                for call, times in order if run % 2 == 0 else reversed(order):
                    times.append(timed(call)[0])

    direct_median, http_median = statistics.median(direct_s), statistics.median(http_s)
    print(
        f"api_overhead: txt2img {args.size}x{args.size}, {args.steps} steps, {args.sampler}, "
        f"{args.runs} runs per side, torch threads {args.threads} "
        f"(serena {serena.__version__}, torch {torch.__version__})"
    )
    print(f"{'':30}{'median':>10}{'min':>10}{'p90':>10}")
    for label, times in (("direct process_images", direct_s), ("HTTP POST /sdapi/v1/txt2img", http_s)):
        print(f"{label:30}{statistics.median(times):>9.4f}s{min(times):>9.4f}s{p90(times):>9.4f}s")
    print(
        f"ratio HTTP/direct (medians): {http_median / direct_median:.3f}   "
        f"overhead: {1000 * (http_median - direct_median):+.1f} ms per request   same pixels: {same_pixels}"
    )
    return 0 if same_pixels else 1


if __name__ == "__main__":
    sys.exit(main())
