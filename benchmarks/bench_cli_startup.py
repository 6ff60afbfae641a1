"""Benchmark of what a user waits for at the terminal, each in a fresh interpreter as a shell runs it:

- `kirec --help`;
- a refused setting (`kirec run --set knowledge.fusion=gatee`): one line and exit 2, before torch or the data;
- `kirec recommend` on a finished KIRec run, which reloads it from its checkpoint alone (no LLM, no encoder,
  no reduction): a tiny run on ml-latest-small is trained first, over a seeded semantic table file that is then
  deleted, so the reload cannot have read it.

Figures are medians of the repeats (min and max beside them), with the load average: the machine is shared.

    .venv/bin/python benchmarks/bench_cli_startup.py
    .venv/bin/python benchmarks/bench_cli_startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def kirec(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KIREC_")},
        "PYTHONPATH": str(ROOT),
        "KIREC_DATA": str(DATA),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kirec_tui.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    return time.perf_counter() - started, done


def timed(label: str, args: list[str], cwd: Path, repeats: int, expect: int) -> dict:
    seconds = []
    for _ in range(repeats):
        took, done = kirec(args, cwd)
        if done.returncode != expect:
            raise SystemExit(f"{label}: exit {done.returncode}, expected {expect}:\n{done.stderr[-2000:]}")
        seconds.append(took)
    figure = {
        "command": "kirec " + " ".join(args),
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": repeats,
    }
    print(f"{label:<22} median {figure['median_s']:.2f} s  (min {figure['min_s']:.2f}, max {figure['max_s']:.2f})")
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "cli_startup.json")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kirec-bench-cli-") as folder:
        work = Path(folder)
        table = np.random.default_rng(0).normal(size=(3651, 32)).astype(np.float32)  # ml-latest-small: 3,650 items
        table[0] = 0.0
        np.save(work / "table.npy", table)
        _, trained = kirec(
            [
                "run",
                "--json",
                "--dataset",
                "ml-latest-small",
                "--method",
                "kirec",
                "--epochs",
                "1",
                "--hidden-size",
                "16",
                "--set",
                "knowledge.semantic_table=table.npy",
                "--set",
                "train.num_threads=2",
            ],
            work,
        )
        if trained.returncode != 0:
            raise SystemExit(f"training the run to reload failed:\n{trained.stderr[-2000:]}")
        run_id = json.loads(trained.stdout)["run_id"]
        (work / "table.npy").unlink()  # the reload must come from the checkpoint alone
        results = {
            "help": timed("kirec --help", ["--help"], work, args.repeats, 0),
            "refused_setting": timed(
                "refused setting", ["run", "--set", "knowledge.fusion=gatee"], work, args.repeats, 2
            ),
            "recommend": timed(
                "kirec recommend", ["recommend", "--run", str(run_id), "--user", "1", "-k", "10"], work, args.repeats, 0
            ),
        }
    print(f"load average at the start: {load:.2f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "load_average": load, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
