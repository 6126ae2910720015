"""Renders every snapshot surface against one checkout of Serena, in its own process; imports nothing from harness.

Usage: python snapshot_worker.py --serena-root DIR --producers FILE --out DIR
`--producers` is the working tree's harness/invariants/snapshots.py, loaded by path: the baseline and the head are
rendered by the same producers, so a difference is the runtime's, not the renderer's. Writes each surface to
<out>/<file name> and done.json: {"rendered": {name: file}, "errors": {name: "Type: message"}}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serena-root", type=Path, required=True)
    parser.add_argument("--producers", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    root = args.serena_root.resolve()
    sys.path.insert(0, str(root))
    import serena

    if not Path(serena.__file__).resolve().is_relative_to(root):
        print(f"snapshot worker: imported serena from {serena.__file__}, not from {root}", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("serena_snapshot_producers", args.producers)
    if spec is None or spec.loader is None:
        print(f"snapshot worker: cannot load {args.producers}", file=sys.stderr)
        return 2
    producers = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = producers  # dataclasses look their module up while the class is built
    spec.loader.exec_module(producers)
    from serena import shared
    from serena.cmd_args import CmdOpts

    args.out.mkdir(parents=True, exist_ok=True)
    rendered: dict[str, str] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        shared.cmd_opts = CmdOpts(data_dir=Path(data_dir))
        for name, snapshot in producers.SNAPSHOTS.items():
            try:
                text = snapshot.produce()
            except Exception as exc:  # noqa: BLE001 - a surface this checkout cannot render is reported, not fatal
                errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                continue
            (args.out / snapshot.filename).write_text(text, encoding="utf-8")
            rendered[name] = snapshot.filename
    done = {"serena": serena.__file__, "rendered": rendered, "errors": errors}
    (args.out / "done.json").write_text(json.dumps(done), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
