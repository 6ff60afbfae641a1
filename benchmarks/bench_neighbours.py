"""Benchmark of the Items screen's text-space neighbour lookup on ml-latest-small (engine.services.items):

- the first lookup in a fresh workspace, which embeds every item text (MiniLM on the CPU), with its progress lines;
- a second lookup in the same process (the vectors in memory);
- a first lookup in a new process over the same workspace (the embedding cache on disk, no encoder loaded),
  what a researcher waits for after restarting the workbench.

    .venv/bin/python benchmarks/bench_neighbours.py [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def lookup(workspace: Path, show_progress: bool) -> dict[str, float]:
    """Loads the dataset, then times two lookups of one item's neighbours."""
    from engine.config import load_config
    from engine.services import datasets
    from engine.services.items import TextNeighbours
    from engine.workspace import Workspace

    paths = Workspace.at(workspace)
    cfg = load_config(env={}, flags={"data.dataset": "ml-latest-small", "data.data_root": str(DATA)}, keys=("data",))
    dataset = datasets.load(cfg.data, cwd=workspace, cache_dir=paths.dataset_cache)
    space = TextNeighbours(dataset, paths.embedding_cache)
    last = [0.0]

    def report(progress) -> None:
        now = time.perf_counter()
        if show_progress and (now - last[0] > 5 or progress.done in (0, progress.total)):
            eta = "" if progress.eta is None else f", ETA {progress.eta:.0f} s"
            print(f"  {progress.stage}: {progress.done}/{progress.total}{eta}", file=sys.stderr)
            last[0] = now

    start = time.perf_counter()
    space.of(1, 10, on_progress=report)
    first = time.perf_counter() - start
    start = time.perf_counter()
    space.of(2, 10)
    second = time.perf_counter() - start
    return {"items": dataset.num_items, "first_s": round(first, 3), "second_s": round(second, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", help="an existing workspace (default: a fresh temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(lookup(Path(args.workspace), show_progress=False)))
        return
    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="kirec-neighbours-"))
    fresh = lookup(workspace, show_progress=True)
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--child", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    restarted = json.loads(child.stdout)
    restarted["process_s"] = round(time.perf_counter() - started, 3)
    print(
        json.dumps({"fresh_workspace": fresh, "new_process": restarted, "load_average": os.getloadavg()[0]}, indent=1)
    )


if __name__ == "__main__":
    main()
